#!/usr/bin/env python3
"""An xknx peer for the link interop tests (tests/knx_link.rs), driven line by line.

Modes:
  tunnel   --gateway IP --port P [--local-ip IP]   KNXnet/IP tunnelling client (UDP)
  routing  --local-ip IP [--address 1.1.250]       KNXnet/IP routing (multicast)
  describe --gateway IP --port P [--local-ip IP]   DESCRIPTION_REQUEST via xknx and a raw
                                                   SEARCH_REQUEST parsed by xknx; prints and exits

Output, one line each, flushed:
  READY <individual address>              connected (tunnel: the address the server gave)
  RX <src> <dst> <service> <payload>      a telegram from the bus; payload bin:<n> | arr:<hex> | -
  SENT <dst>                              a write was sent (and, tunnelling, confirmed)
  ENCODED <payload>                       the answer to `encode`: xknx's own encoding
  VALUE <ga> <payload> [<json>]           the answer to `read`; <json>: xknx's decoding with
                                          the DPT given (json.dumps, enums by name)
  NOVALUE <ga>                            `read` got no answer within 5 s
  STATE <state>                           xknx connection state changes
  ERR <text>                              something failed
  DESCRIPTION|SEARCH name=<n> address=<ia> tunnelling=<bool> routing=<bool>   (describe)

Commands on stdin:
  write <ga> bin:<n> | arr:<hex>          GroupValueWrite
  read <ga> [<dpt>]                       GroupValueRead; waits for the GroupValueResponse
  encode <dpt> <json>                     encodes the JSON value with xknx's transcoder for
                                          <dpt> (10.x: {"day": "sunday", "hour": …, "minutes":
                                          …, "seconds": …}); no bus traffic
  quit                                    disconnect and exit
"""

import argparse
import asyncio
import enum
import json
import socket
import struct
import sys

from xknx import XKNX
from xknx.core.value_reader import ValueReader
from xknx.dpt import DPTArray, DPTBase, DPTBinary
from xknx.io import ConnectionConfig, ConnectionType
from xknx.io.self_description import request_description
from xknx.knxip import KNXIPFrame
from xknx.telegram import GroupAddress, Telegram
from xknx.telegram.apci import GroupValueRead, GroupValueResponse, GroupValueWrite


def say(*parts):
    print(*parts, flush=True)


def payload_text(value):
    if isinstance(value, DPTBinary):
        return f"bin:{int(value.value)}"
    if isinstance(value, DPTArray):
        return "arr:" + bytes(value.value).hex()
    return "-"


def telegram_received(telegram):
    payload = telegram.payload
    if isinstance(payload, (GroupValueWrite, GroupValueResponse)):
        text = payload_text(payload.value)
    elif isinstance(payload, GroupValueRead):
        text = "-"
    else:
        text = "-"
    say("RX", telegram.source_address, telegram.destination_address, type(payload).__name__, text)


def parse_value(text):
    kind, _, raw = text.partition(":")
    if kind == "bin":
        return DPTBinary(int(raw))
    if kind == "arr":
        return DPTArray(bytes.fromhex(raw))
    raise ValueError(f"bad value {text!r}")


async def describe(args):
    gateway = await request_description(args.gateway, args.port, local_ip=args.local_ip)
    say(
        "DESCRIPTION",
        f"name={gateway.name}",
        f"address={gateway.individual_address}",
        f"tunnelling={gateway.supports_tunnelling}",
        f"routing={gateway.supports_routing}",
    )
    # SEARCH_REQUEST, unicast to the server, answer parsed by xknx.
    local_ip = args.local_ip or "127.0.0.1"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local_ip, 0))
    sock.settimeout(5)
    ip, port = sock.getsockname()
    body = bytes([8, 1]) + socket.inet_aton(ip) + struct.pack(">H", port)
    sock.sendto(bytes([6, 0x10, 0x02, 0x01]) + struct.pack(">H", 6 + len(body)) + body,
                (args.gateway, args.port))
    data, _ = sock.recvfrom(1024)
    frame, _ = KNXIPFrame.from_knx(data)
    from xknx.io.gateway_scanner import GatewayDescriptor
    descriptor = GatewayDescriptor(
        ip_addr=frame.body.control_endpoint.ip_addr,
        port=frame.body.control_endpoint.port,
    )
    descriptor.parse_dibs(frame.body.dibs)
    say(
        "SEARCH",
        f"name={descriptor.name}",
        f"address={descriptor.individual_address}",
        f"tunnelling={descriptor.supports_tunnelling}",
        f"routing={descriptor.supports_routing}",
    )


def as_json(value):
    if isinstance(value, enum.Enum):
        return value.name
    return str(value)


async def read(xknx, ga, dpt):
    telegram = await ValueReader(xknx, GroupAddress(ga), timeout_in_seconds=5).read()
    if telegram is None:
        say("NOVALUE", ga)
        return
    value = telegram.payload.value
    if dpt is None:
        say("VALUE", ga, payload_text(value))
        return
    decoded = DPTBase.parse_transcoder(dpt).from_knx(value)
    say("VALUE", ga, payload_text(value), json.dumps(decoded, default=as_json))


async def run(args):
    if args.mode == "tunnel":
        config = ConnectionConfig(
            connection_type=ConnectionType.TUNNELING,
            gateway_ip=args.gateway,
            gateway_port=args.port,
            local_ip=args.local_ip,
            auto_reconnect=True,
            auto_reconnect_wait=1,
        )
    else:
        config = ConnectionConfig(
            connection_type=ConnectionType.ROUTING,
            local_ip=args.local_ip,
            individual_address=args.address,
        )
    xknx = XKNX(connection_config=config)
    xknx.connection_manager.register_connection_state_changed_cb(
        lambda state: say("STATE", state.name)
    )
    xknx.telegram_queue.register_telegram_received_cb(telegram_received)
    await xknx.start()
    say("READY", xknx.current_address)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            if words[0] == "encode" and len(words) >= 3:
                try:
                    value = json.loads(line.split(None, 2)[2])
                    encoded = DPTBase.parse_transcoder(words[1]).to_knx(value)
                    say("ENCODED", payload_text(encoded))
                except Exception as err:  # report and keep serving
                    say("ERR", type(err).__name__, err)
                continue
            if words[0] == "read" and len(words) in (2, 3):
                try:
                    await read(xknx, words[1], words[2] if len(words) == 3 else None)
                except Exception as err:  # report and keep serving
                    say("ERR", type(err).__name__, err)
                continue
            if words[0] == "write" and len(words) == 3:
                try:
                    telegram = Telegram(
                        destination_address=GroupAddress(words[1]),
                        payload=GroupValueWrite(parse_value(words[2])),
                    )
                    await xknx.cemi_handler.send_telegram(telegram)
                    say("SENT", words[1])
                except Exception as err:  # report and keep serving
                    say("ERR", type(err).__name__, err)
            else:
                say("ERR", "unknown command", line.strip())
    finally:
        await xknx.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["tunnel", "routing", "describe"])
    parser.add_argument("--gateway")
    parser.add_argument("--port", type=int, default=3671)
    parser.add_argument("--local-ip")
    parser.add_argument("--address", default="1.1.250")
    args = parser.parse_args()
    try:
        asyncio.run(describe(args) if args.mode == "describe" else run(args))
    except Exception as err:
        say("ERR", type(err).__name__, err)
        sys.exit(1)


if __name__ == "__main__":
    main()
