"""Encode a sweep of values for every DPT of the group-object table with xknx, the KNX library
behind Home Assistant, and print them as JSON for the Rust cross-check (tests/dpt_xknx.rs).

Each vector: {"dpt": "9.001", "value": <value>, "bytes": "0c1a" | null, "short": 1 | null,
"error": true | false}. 1-bit DPTs carry their value in the APCI ("short").
"""
import json
import random
import sys

from xknx.dpt import DPTBase, DPTBinary, DPTTime
from xknx.dpt.dpt_10 import KNXDay, KNXTime

BOOL_DPTS = ["1.001", "1.002", "1.010", "1.011", "1.017"]
rng = random.Random(20261121)


def encode(dpt, value):
    transcoder = DPTBase.parse_transcoder(dpt)
    try:
        if dpt == "10.001":
            day = KNXDay(value["weekday"]) if value["weekday"] else KNXDay.NO_DAY
            payload = DPTTime.to_knx(KNXTime(hour=value["hour"], minutes=value["minute"], seconds=value["second"], day=day))
        else:
            payload = transcoder.to_knx(value)
    except Exception:  # xknx refuses the value: we must refuse it too
        return {"dpt": dpt, "value": value, "bytes": None, "short": None, "error": True}
    if isinstance(payload, DPTBinary):
        return {"dpt": dpt, "value": value, "bytes": None, "short": int(payload.value), "error": False}
    return {"dpt": dpt, "value": value, "bytes": bytes(payload.value).hex(), "short": None, "error": False}


def floats9(lo, hi, n):
    edges = [0.0, 0.01, -0.01, 20.48, 21.0, 101.0, -101.0, 0.005, 1262.5, -1262.5, 670433.28, -671088.64, 670760.96, -671088.65]
    return edges + [round(rng.uniform(lo, hi), 2) for _ in range(n)] + [rng.randint(-20000, 20000) / 100 for _ in range(n)]


vectors = []
for dpt in BOOL_DPTS:
    vectors += [encode(dpt, v) for v in (False, True)]
vectors += [encode("5.010", v) for v in (0, 1, 5, 11, 255, 256, -1)]
vectors += [encode("7.012", v) for v in (0, 1, 6000, 16000, 32000, 65535, 65536, -1)]
vectors += [encode("9.001", v) for v in floats9(-273.0, 670433.28, 300)]
vectors += [encode("9.021", v) for v in [0.0, 6000.0, 16000.0, 32000.0, 63999.5, -1.0] + [round(rng.uniform(0, 64000), 1) for _ in range(200)]]
vectors += [encode("9.024", v) for v in [0.0, 1.38, 3.68, 4.14, 11.04, 22.08, -5.0] + [round(rng.uniform(-50, 50), 3) for _ in range(200)]]
times = [{"weekday": None, "hour": 0, "minute": 0, "second": 0}, {"weekday": 1, "hour": 7, "minute": 30, "second": 5},
         {"weekday": 7, "hour": 23, "minute": 59, "second": 59}, {"weekday": None, "hour": 24, "minute": 0, "second": 0}]
vectors += [encode("10.001", v) for v in times]
ints = [0, 1, -1, 123456, 2147483647, -2147483648, 2147483648, -2147483649]
for dpt in ("13.010", "13.013", "13.100"):
    vectors += [encode(dpt, v) for v in ints]
f32s = [0.0, 6.0, 16.0, 0.1, 0.001, 32.5, -3.25, 12345.678, 3.4e38, 1e-30]
vectors += [encode("14.019", v) for v in f32s + [rng.uniform(0, 80) for _ in range(100)]]
vectors += [encode("14.056", v) for v in f32s + [rng.uniform(-22000, 22000) for _ in range(100)]]
texts = ["", "No error", "Conf Charger", "Conf NoCharger", "Grüße", "ÄÖÜäöüß°µ½", "12345678901234", "123456789012345", "€uro"]
vectors += [encode("16.001", v) for v in texts]

json.dump(vectors, sys.stdout)
