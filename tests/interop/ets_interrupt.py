"""ETS interrupted, and ETS resetting: what a download cut short and a master reset leave.

Uses the steps of the ETS stand-in (ets_standin.py: the MV-07B0 load procedure as
docs/device-management.md lists it, driven by xknx 4's management procedures).

usage: ets_interrupt.py PORT ADDRESS MODE [ARG]
  partial TABLES.json   Unload 4, 3, 2, 1, then Load and write the parameters (object 4) and
                        the group object table (object 3) of TABLES (as ets_standin.py's
                        DOWNLOAD.json["all"]), print {"step": "partial"} and wait for a line on
                        stdin (the test may kill the gateway meanwhile); then disconnect
                        (T_Disconnect between Load and LoadCompleted) and run TABLES' checks.
  check TABLES.json     only the group checks of TABLES.
  reset CODE            master reset with erase CODE; prints the error code (or "refused").
Prints one JSON line per step.
"""

import asyncio
import json
import sys

from xknx import XKNX
from xknx.exceptions import ManagementConnectionError
from xknx.io import ConnectionConfig, ConnectionType
from xknx.management import procedures as p
from xknx.telegram import IndividualAddress

from ets_standin import group_checks, load, say, unload


async def partial(xknx, address, tables):
    t = {int(k): bytes.fromhex(v) for k, v in tables.items() if k.isdigit()}
    async with xknx.management.connection(IndividualAddress(address)) as conn:
        await p.dmp_connect_r_co(conn)
        await p.dmp_authorize_r_co(conn, 0xFFFFFFFF)
        await unload(conn, 5)
        for o in (4, 3, 2, 1):
            assert await unload(conn, o) == 0, f"unload {o}"
        for o in (4, 3):
            await load(conn, o, t[o])
        say("partial")
        # The test decides what happens now (kill -9 of the gateway, or nothing).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    say("disconnected")


async def reset(xknx, address, code):
    try:
        async with xknx.management.connection(IndividualAddress(address)) as conn:
            answer = await p.dm_restart_r_co(conn, master_reset=True, erase_code=code)
            say("reset", code=code, error=answer.error_code)
    except ManagementConnectionError as e:
        say("reset", code=code, error="refused", why=str(e))


async def main():
    port, address, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    xknx = XKNX(
        connection_config=ConnectionConfig(
            connection_type=ConnectionType.TUNNELING,
            gateway_ip="127.0.0.1",
            gateway_port=port,
            local_ip="127.0.0.1",
        )
    )
    await xknx.start()
    try:
        if mode == "reset":
            await reset(xknx, address, int(sys.argv[4]))
        else:
            with open(sys.argv[4]) as f:
                tables = json.load(f)
            if mode == "partial":
                await partial(xknx, address, tables)
            await group_checks(xknx, mode, tables.get("checks", []))
        say("done")
    finally:
        await xknx.stop()


asyncio.run(main())
