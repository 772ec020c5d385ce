#!/usr/bin/env python3
"""xknx's GatewayScanner (what Home Assistant's KNX setup runs) against the running gateway
binary (tests/gateway_xknx.rs): SEARCH_REQUEST and SEARCH_REQUEST_EXTENDED go to the
KNXnet/IP discovery address 224.0.23.12:3671 from LOCAL_IP. Prints one JSON list with every
gateway that answered (other KNX software on the host may answer too; the test picks its own
by port).

Usage: gateway_discovery.py LOCAL_IP
"""

import asyncio
import json
import sys

from xknx import XKNX
from xknx.io import GatewayScanner


async def main(local_ip):
    xknx = XKNX()
    scanner = GatewayScanner(xknx, local_ip=local_ip, timeout_in_seconds=3.0)
    found = await scanner.scan()
    print(json.dumps([
        {
            "ip": g.ip_addr,
            "port": g.port,
            "name": g.name,
            "individual_address": str(g.individual_address),
            "tunnelling": g.supports_tunnelling,
            "routing": g.supports_routing,
        }
        for g in found
    ]))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
