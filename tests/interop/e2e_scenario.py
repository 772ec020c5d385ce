#!/usr/bin/env python3
"""End-to-end scenario against the running gateway binary (tests/e2e_xknx.rs): xknx tunnels to
the gateway's KNXnet/IP server and acts as the smart meter (0/0/10..12, DPT 14.019, every 1 s)
and as the visualisation. Group addresses follow the demo rule: object N < 50 -> 0/0/N,
charging point n's object 50n + k -> n/0/k.

Coordination with the Rust side for the vanishing charging point: the script prints
`VANISH` and waits for a line on stdin (the simulator is then offline), later `RETURN`
likewise. The last stdout line is one JSON object with the observations.

Usage: e2e_scenario.py PORT VANISHING_CP DRAW_FILE
"""

import asyncio
import json
import sys
import time

from xknx import XKNX
from xknx.dpt import DPTArray, DPTBinary, DPTElectricCurrent, DPTLatin1
from xknx.io import ConnectionConfig, ConnectionType
from xknx.telegram import GroupAddress, Telegram
from xknx.telegram.apci import GroupValueRead, GroupValueResponse, GroupValueWrite

CPS = range(1, 6)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


async def main(port, vanishing, draw_file):
    xknx = XKNX(connection_config=ConnectionConfig(
        connection_type=ConnectionType.TUNNELING, gateway_ip="127.0.0.1", gateway_port=port, local_ip="127.0.0.1"))
    latest = {}  # ga -> (payload value, monotonic time)
    history = {}  # ga -> [(time, payload value)]

    def on_telegram(t):
        if isinstance(t.payload, (GroupValueWrite, GroupValueResponse)):
            ga = str(t.destination_address)
            now = time.monotonic()
            latest[ga] = (t.payload.value, now)
            history.setdefault(ga, []).append((now, t.payload.value))

    xknx.telegram_queue.register_telegram_received_cb(on_telegram)
    await xknx.start()
    out = {}

    async def send(ga, payload):
        await xknx.cemi_handler.send_telegram(Telegram(destination_address=GroupAddress(ga), payload=payload))

    async def write(ga, value):
        await send(ga, GroupValueWrite(value))

    bit = lambda v: v.value if isinstance(v, DPTBinary) else None
    byte = lambda v: v.value[0] if isinstance(v, DPTArray) and len(v.value) == 1 else None
    amps = lambda v: DPTElectricCurrent.from_knx(v) if isinstance(v, DPTArray) and len(v.value) == 4 else None
    text = lambda v: DPTLatin1.from_knx(v) if isinstance(v, DPTArray) else None

    def value(ga, decode):
        got = latest.get(ga)
        return None if got is None else decode(got[0])

    async def wait_for(ga, decode, pred, timeout, read_every=1.0):
        """Waits until the latest value on `ga` satisfies `pred`; asks with a read now and then.
        Returns (seconds waited or None, last decoded value)."""
        start = time.monotonic()
        next_read = start
        while True:
            now = time.monotonic()
            v = value(ga, decode)
            if v is not None and pred(v):
                return round(now - start, 3), v
            if now - start > timeout:
                return None, v
            if read_every and now >= next_read:
                await send(ga, GroupValueRead())
                next_read = now + read_every
            await asyncio.sleep(0.05)

    sp = lambda cp: f"{cp}/0/11"

    # The smart meter: sends the phase currents every second while `meter["on"]`. Like a real
    # meter it measures the house plus what the vehicles draw.
    meter = {"house": 10.0, "on": True}

    def phase_currents():
        """The house plus what the vehicles draw per phase, as published by the Rust side
        from the simulators (DRAW_FILE: three numbers, amperes)."""
        try:
            with open(draw_file) as f:
                draw = [float(x) for x in f.read().split()]
        except (OSError, ValueError):
            draw = []
        if len(draw) != 3:
            draw = [0.0, 0.0, 0.0]
        return [meter["house"] + d for d in draw]

    async def send_meter_now():
        for ga, a in zip(("0/0/10", "0/0/11", "0/0/12"), phase_currents()):
            await write(ga, DPTElectricCurrent.to_knx(a))

    async def meter_task():
        while True:
            if meter["on"]:
                await send_meter_now()
            await asyncio.sleep(1.0)

    def setpoints():
        return {str(cp): value(sp(cp), amps) for cp in CPS}

    async def settle(timeout=20.0, quiet=2.0, tolerance=0.5):
        """Until every setpoint state is known and none moved by more than `tolerance` for
        `quiet` seconds (the reported setpoints jitter by a few milliamperes)."""
        start = time.monotonic()
        ref, moved = {}, start
        while time.monotonic() - start < timeout:
            now = time.monotonic()
            for cp in CPS:
                v = value(sp(cp), amps)
                if v is None:
                    await send(sp(cp), GroupValueRead())
                elif cp not in ref or abs(v - ref[cp]) > tolerance:
                    ref[cp], moved = v, now
            if len(ref) == 5 and now - moved >= quiet:
                return True
            await asyncio.sleep(0.25)
        return False

    task = asyncio.create_task(meter_task())

    # 1. Load step: the house load goes from 10 A to 25 A per phase (the
    # available current from 50 A to 35 A: every charging point from 10 A to 7 A).
    # The meter sends every second: the setpoints must come to rest at 10 A before the step
    # (settled_low) and at 7 A after it, with no swing. drop_secs is the moment from which
    # each one stays at or below the new fair share (7 A + 0.5 A).
    out["settled_low"] = await settle(timeout=8.0)
    t_low = time.monotonic()
    await asyncio.sleep(3.0)
    out["setpoints_low"] = setpoints()
    out["peak_low"] = {str(cp): max((amps(v) for (t, v) in history.get(sp(cp), []) if t >= t_low - 3.0), default=None) for cp in CPS}
    t0 = time.monotonic()
    meter["house"] = 25.0
    await send_meter_now()
    window = 6.0
    await asyncio.sleep(window)
    drops = {}
    for cp in CPS:
        # The value in force at the step counts as a report at 0 s.
        earlier = [amps(v) for (t, v) in history.get(sp(cp), []) if t < t0]
        reports = [(0.0, earlier[-1])] if earlier else []
        reports += [(t - t0, amps(v)) for (t, v) in history.get(sp(cp), []) if t0 <= t <= t0 + window]
        above = [dt for (dt, a) in reports if a is not None and a > 7.5]
        last_above = max(above, default=None)
        # From the first report after the last one above the band, it stays in the band.
        after = [dt for (dt, a) in reports if last_above is None or dt > last_above]
        drops[str(cp)] = round(after[0], 3) if after else None
    out["drop_secs"] = drops
    out["cp1_history"] = [(round(t - t0, 2), amps(v)) for (t, v) in history.get(sp(1), [])][-16:]
    out["setpoints_high"] = setpoints()

    # 2. Grid-supporting control.
    await write("0/0/1", DPTBinary(1))
    out["grid_on"] = await wait_for("0/0/2", bit, lambda v: v == 1, 3.0)
    t0 = time.monotonic()
    limited = {}
    while time.monotonic() - t0 < 3.0 and len(limited) < 5:
        for cp in CPS:
            a = value(sp(cp), amps)
            if str(cp) not in limited and a is not None and a <= 6.0:
                limited[str(cp)] = round(time.monotonic() - t0, 3)
        await asyncio.sleep(0.05)
    out["grid_limited_secs"] = limited
    out["grid_setpoints"] = setpoints()
    await write("0/0/1", DPTBinary(0))
    out["grid_off"] = await wait_for("0/0/2", bit, lambda v: v == 0, 3.0)

    # 3. Interruption of charging point 2 while the others continue.
    await write("2/0/5", DPTBinary(1))
    out["cp2_interrupted"] = await wait_for("2/0/6", bit, lambda v: v == 1, 3.0)
    out["cp2_state"] = await wait_for("2/0/0", byte, lambda v: v == 11, 5.0)
    for cp in (1, 3):
        await send(f"{cp}/0/0", GroupValueRead())
    await asyncio.sleep(0.5)
    out["other_states"] = {str(cp): value(f"{cp}/0/0", byte) for cp in CPS if cp != 2}
    await write("2/0/5", DPTBinary(0))
    out["cp2_resumed"] = await wait_for("2/0/6", bit, lambda v: v == 0, 3.0)

    # 4. The smart meter falls silent and comes back.
    out["fault_before_silence"] = await wait_for("0/0/8", bit, lambda v: True, 3.0)
    out["last_fault_before_silence"] = await wait_for("0/0/9", text, lambda v: True, 3.0)
    meter["on"] = False
    t0 = time.monotonic()
    out["silent_text"] = await wait_for("0/0/9", text, lambda v: v == "SmartMeterTOut", 12.0)
    out["silent_fault"] = await wait_for("0/0/8", bit, lambda v: v == 1, 2.0)
    out["silent_setpoints"] = setpoints()
    out["silent_secs"] = round(time.monotonic() - t0, 3)
    meter["on"] = True
    await send_meter_now()
    out["meter_back"] = await wait_for("0/0/8", bit, lambda v: v == 0, 5.0)
    # Every charging point charges again once the meter is back. (A silence that begins just
    # after a transient — here cp 2's interruption — may leave the safe emergency a cautious
    # estimate by which one point waits; it is admitted again on the returning values.)
    t0 = time.monotonic()
    out["all_charging_after_meter"] = None
    while time.monotonic() - t0 < 10.0:
        now = setpoints()
        if all(v is not None and v >= 5.9 for v in now.values()):
            out["all_charging_after_meter"] = round(time.monotonic() - t0, 3)
            break
        await asyncio.sleep(0.1)
    out["setpoints_after_meter"] = setpoints()
    # Whether they come to rest before the next step (recorded, not asserted: issue 15).
    out["settled_after_meter"] = await settle(timeout=10.0)

    # 5. A charging point vanishes (the Rust side takes its simulator offline) and returns.
    f, lf = f"{vanishing}/0/44", f"{vanishing}/0/45"
    print("VANISH", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    out["vanished_text"] = await wait_for(lf, text, lambda v: v == "NotReachable", 15.0)
    out["vanished_fault"] = await wait_for(f, bit, lambda v: v == 1, 3.0)
    # The others meanwhile: their setpoint states as last sent, and their fault objects (asked
    # for now) still 0.
    out["others_while_vanished"] = {str(cp): value(sp(cp), amps) for cp in CPS if cp != vanishing}
    out["others_fault_while_vanished"] = {
        str(cp): (await wait_for(f"{cp}/0/44", bit, lambda v: v == 0, 2.0))[1] for cp in CPS if cp != vanishing
    }
    print("RETURN", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    out["returned_fault"] = await wait_for(f, bit, lambda v: v == 0, 15.0)

    task.cancel()
    await xknx.stop()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
