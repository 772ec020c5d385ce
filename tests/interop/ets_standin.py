"""An ETS stand-in: commissions the gateway the way ETS does an MV-07B0 device.

Written from the KNX management procedures (03.05.02) as xknx 4 implements them and from the
load procedures of the MV-07B0 mask in knx_master.xml (`<Procedure ProcedureType="Load"
ProcedureSubType="all|par|grp">`), with the bytes of each LdCtrl step as
docs/device-management.md lists them. It tunnels to the gateway's built-in KNXnet/IP server.

usage: ets_standin.py PORT OLD_IA NEW_IA DOWNLOAD.json
DOWNLOAD.json: {"all": {"1": hex, "2": hex, "3": hex, "4": hex, "app_id": hex,
                        "checks": [{"write": GA, "value": 0|1, "read": GA, "expect": 0|1}]},
                "par": {...}, "grp": {...}}  (tables as ETS would write them)
After each download, without a restart, every check writes a switching value to a group
address and reads another one back (a newly linked address must move its object at once).
Prints one JSON line per step; exits non-zero on the first failure. The KNXnet/IP server is
at 127.0.0.1 unless ETS_GATEWAY_IP names another (knxd in a network namespace, for the TP
line), reached from ETS_LOCAL_IP.
"""

import asyncio
import json
import os
import sys

from xknx import XKNX
from xknx.core.value_reader import ValueReader
from xknx.dpt import DPTBinary
from xknx.io import ConnectionConfig, ConnectionType
from xknx.management import procedures as p
from xknx.exceptions import ManagementConnectionError
from xknx.telegram import GroupAddress, IndividualAddress, Telegram
from xknx.telegram.apci import GroupValueWrite

PID_LOAD_STATE = 5
PID_TABLE_REFERENCE = 7
PID_SERIAL = 11
PID_PROG_VERSION = 13
PID_PROG_MODE = 54
PID_MAX_APDU = 56
PID_MCB = 27


def say(step, **kw):
    print(json.dumps({"step": step, **kw}), flush=True)


async def load_control(conn, obj, event, *rest):
    data = bytes([event, *rest]).ljust(10, b"\0")
    answer = await p.dmp_interface_object_write_r(conn, obj, PID_LOAD_STATE, data)
    return answer[0]


async def unload(conn, obj):
    try:
        return await load_control(conn, obj, 4)
    except ManagementConnectionError:
        # LdCtrlMapError 0xC0040008 -> 0: a missing object (5, the PEI program) is tolerated.
        return None


async def load(conn, obj, table):
    """LdCtrlLoad + LdCtrlRelSegment + LdCtrlWriteRelMem (with read-back)."""
    assert await load_control(conn, obj, 1) == 2, f"load {obj}"
    size = len(table).to_bytes(4, "big")
    assert await load_control(conn, obj, 3, 0x0B, *size, 0, 0) == 2, f"alloc {obj}"
    base = int.from_bytes(await p.dmp_interface_object_read_r(conn, obj, PID_TABLE_REFERENCE), "big")
    await p.dmp_mem_write_r_co(conn, base, table, verify=True)
    return base


async def complete(conn, obj):
    assert await load_control(conn, obj, 2) == 1, f"load completed {obj}"


async def download(conn, kind, tables):
    """The load procedure of `kind` (all, par, grp) in ETS's order."""
    t = {int(k): bytes.fromhex(v) for k, v in tables.items() if k.isdigit()}
    objs = {"all": [4, 3, 2, 1], "par": [4], "grp": [3, 2, 1]}[kind]
    if kind != "grp":
        await unload(conn, 5)
    for o in objs:
        assert await unload(conn, o) == 0, f"unload {o}"
    order = {"all": [4, 3, 1, 2], "par": [4], "grp": [3, 1, 2]}[kind]
    for o in order:
        await load(conn, o, t[o])
    if kind != "grp":
        app_id = bytes.fromhex(tables["app_id"])
        assert await p.dmp_interface_object_write_r(conn, 4, PID_PROG_VERSION, app_id) == app_id
    for o in objs:
        await complete(conn, o)
    mcb = (await p.dmp_interface_object_read_r(conn, objs[-1], PID_MCB)).hex()
    say("download", kind=kind, mcb=mcb)


async def group_checks(xknx, kind, checks):
    """Group telegrams right after a download: the new links must work without a restart."""
    for check in checks:
        await xknx.telegrams.put(
            Telegram(
                destination_address=GroupAddress(check["write"]),
                payload=GroupValueWrite(DPTBinary(check["value"])),
            )
        )
        # Time for the write to take effect and for what it makes the gateway send to pass.
        await asyncio.sleep(0.5)
        answer = await ValueReader(xknx, GroupAddress(check["read"]), timeout_in_seconds=3).read()
        await asyncio.sleep(0.5)
        got = None if answer is None else answer.payload.value.value
        say("group_check", kind=kind, write=check["write"], read=check["read"], got=got)
        assert got == check["expect"], f"{kind}: {check} got {got}"


async def main():
    port, old, new, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    with open(path) as f:
        downloads = json.load(f)
    xknx = XKNX(
        connection_config=ConnectionConfig(
            connection_type=ConnectionType.TUNNELING,
            gateway_ip=os.environ.get("ETS_GATEWAY_IP", "127.0.0.1"),
            gateway_port=port,
            local_ip=os.environ.get("ETS_LOCAL_IP", "127.0.0.1"),
        )
    )
    await xknx.start()
    try:
        say("progmode_before", devices=[str(a) for a in await p.nm_individual_address_read(xknx)])
        # ETS switches programming mode through the device object (PID 54).
        async with xknx.management.connection(IndividualAddress(old)) as conn:
            await p.dmp_interface_object_write_r(conn, 0, PID_PROG_MODE, b"\x01")
        found = await p.nm_individual_address_read(xknx)
        say("progmode", devices=[str(a) for a in found])
        await p.nm_individual_address_write(xknx, new)
        say("address_written", address=new)
        after = await p.nm_individual_address_read(xknx)
        say("progmode_after", devices=[str(a) for a in after])
        async with xknx.management.connection(IndividualAddress(new)) as conn:
            mask = await p.dmp_connect_r_co(conn)
            serial = (await p.dmp_interface_object_read_r(conn, 0, PID_SERIAL)).hex()
            max_apdu = int.from_bytes(await p.dmp_interface_object_read_r(conn, 0, PID_MAX_APDU), "big")
            level = await p.dmp_authorize_r_co(conn, 0xFFFFFFFF)
            say("device", mask=f"{mask:04x}", serial=serial, max_apdu=max_apdu, level=level)
            for kind in ("all", "par", "grp"):
                await download(conn, kind, downloads[kind])
                await group_checks(xknx, kind, downloads[kind].get("checks", []))
            await p.dm_restart_r_co(conn)
        say("done")
    finally:
        await xknx.stop()


if __name__ == "__main__":
    asyncio.run(main())
