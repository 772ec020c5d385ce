"""A UPnP control point for tests/ssdp.rs, built on async-upnp-client (the library Home
Assistant uses for UPnP/DLNA discovery).

  upnp_peer.py search SECONDS   M-SEARCH ssdp:all, then fetch and parse each description of a
                                knx-echarge device; one JSON line per device found, then "done"
  upnp_peer.py listen           print one JSON line per NOTIFY seen on the SSDP group until
                                stdin closes
"""

import asyncio
import json
import socket
import struct
import sys

from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.search import async_search


async def search(seconds: int) -> None:
    answers = []

    async def on_answer(headers) -> None:
        answers.append({k.lower(): v for k, v in headers.items()})

    await async_search(async_callback=on_answer, timeout=seconds, search_target="ssdp:all")
    by_location = {}
    for a in answers:
        if "knx-echarge" in a.get("server", ""):
            by_location.setdefault(a.get("location"), []).append(a)
    factory = UpnpFactory(AiohttpRequester())
    for location, found in by_location.items():
        device = await factory.async_create_device(location)
        print(
            json.dumps(
                {
                    "location": location,
                    "st": sorted(a.get("st", "") for a in found),
                    "usn": sorted(a.get("usn", "") for a in found),
                    "friendly_name": device.friendly_name,
                    "device_type": device.device_type,
                    "udn": device.udn,
                    "presentation_url": device.presentation_url,
                    "model_number": device.model_number,
                }
            ),
            flush=True,
        )
    print("done", flush=True)


def listen() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("239.255.255.250", 1900))
    mreq = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton("0.0.0.0"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    sock.settimeout(0.2)
    print("listening", flush=True)
    import select

    while True:
        if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.readline():
            return
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            continue
        text = data.decode("utf-8", "replace")
        if not text.startswith("NOTIFY"):
            continue
        headers = {}
        for line in text.split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        print(json.dumps(headers), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "search":
        asyncio.run(search(int(sys.argv[2])))
    else:
        listen()
