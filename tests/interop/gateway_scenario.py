#!/usr/bin/env python3
"""xknx as a visualisation and push button against the running gateway binary
(tests/gateway_xknx.rs). Tunnels to the gateway's built-in KNXnet/IP server, runs a fixed
scenario, and prints one JSON object with what it saw. Values are decoded with xknx's own
DPT transcoders, so the Rust test checks the gateway's encoding against xknx's.

Usage: gateway_scenario.py PORT
"""

import asyncio
import json
import sys

from xknx import XKNX
from xknx.core.value_reader import ValueReader
from xknx.dpt import DPTArray, DPTBinary, DPTElectricCurrent, DPTLatin1
from xknx.io import ConnectionConfig, ConnectionType
from xknx.telegram import GroupAddress, Telegram
from xknx.telegram.apci import GroupValueWrite

TIMEOUT = 5.0


async def main(port):
    xknx = XKNX(connection_config=ConnectionConfig(
        connection_type=ConnectionType.TUNNELING, gateway_ip="127.0.0.1", gateway_port=port, local_ip="127.0.0.1"))
    seen = asyncio.Queue()
    xknx.telegram_queue.register_telegram_received_cb(lambda t: seen.put_nowait(t))
    await xknx.start()
    out = {"address": str(xknx.current_address)}

    async def read(ga, decode):
        telegram = await ValueReader(xknx, GroupAddress(ga), timeout_in_seconds=TIMEOUT).read()
        return None if telegram is None else decode(telegram.payload.value)

    async def write(ga, value):
        await xknx.cemi_handler.send_telegram(Telegram(destination_address=GroupAddress(ga), payload=GroupValueWrite(value)))

    async def expect_write(ga):
        """The next GroupValue_Write the gateway sends on `ga` (others are skipped)."""
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            try:
                t = await asyncio.wait_for(seen.get(), left)
            except asyncio.TimeoutError:
                return None
            if str(t.destination_address) == ga and isinstance(t.payload, GroupValueWrite):
                return t.payload.value

    bit = lambda v: v.value if isinstance(v, DPTBinary) else None
    text = lambda v: DPTLatin1.from_knx(v)

    # Fault objects (R): the configuration is clean.
    out["fault"] = await read("0/0/8", bit)
    out["last_fault"] = await read("0/0/9", text)
    out["cp2_last_fault"] = await read("2/0/45", text)
    # A push button interrupts charging point 2: the state object (T) follows at once.
    await write("2/0/5", DPTBinary(1))
    out["interruption_state_sent"] = bit(await expect_write("2/0/6"))
    out["interruption_state_read"] = await read("2/0/6", bit)
    # The "all charging points" address 0/1/0 reaches every interruption object.
    await write("0/1/0", DPTBinary(1))
    states = {}
    for cp in range(1, 6):
        states[cp] = await read(f"{cp}/0/6", bit)
    out["all_interrupted"] = states
    # Grid-supporting control on and off: object 2 mirrors it.
    await write("0/0/1", DPTBinary(1))
    out["grid_state_on"] = bit(await expect_write("0/0/2"))
    await write("0/0/1", DPTBinary(0))
    out["grid_state_off"] = bit(await expect_write("0/0/2"))
    # A smart-meter value of the wrong size is rejected; the gateway keeps serving.
    await write("0/0/10", DPTArray((0x0C, 0x1A)))
    await write("0/0/10", DPTElectricCurrent.to_knx(21.5))
    out["still_serving"] = await read("0/0/9", text)
    # An R object without a value answers with its DPT's initial value (DPT 14.019: 0.0 A),
    # as a KNX device does after reset.
    out["setpoint_state_before_any_value"] = await read("1/0/11", DPTElectricCurrent.from_knx)
    await xknx.stop()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
