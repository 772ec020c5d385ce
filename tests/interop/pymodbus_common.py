"""Shared plumbing of the independent pymodbus simulators (tests/interop/pymodbus_*.py).

Each simulator is a plain asyncio Modbus TCP server (pymodbus 3.16 ``ModbusTcpServer``) on
loopback. Its registers are declared as pymodbus ``SimData`` blocks (addresses not declared
answer exception 0x02). The model's state lives in a Python object; a ``SimDevice`` action
renders that state into the registers before every request, checks the request against the
manufacturer's rules (function codes, read granularity, value ranges) and applies writes to
the state. Nothing here knows the Rust code.

Command line: ``python pymodbus_<model>.py --port P`` (P = 0 picks a free port). Prints
``READY <port>`` once listening.

stdin protocol, one command a line, one answer line each:

* ``set <name> <value>`` -> ``OK`` (or ``ERR <why>``): change the simulated state;
* ``get <name>``         -> ``VALUE <value>``: read back the state (e.g. what the gateway wrote);
* ``advance <seconds>``  -> ``OK``: let simulated time pass (energy accumulates);
* ``quit``               -> ``OK``, then exit.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

__all__ = ["ExcCodes", "Model", "regs", "run"]

NAN32 = [0x7FC0, 0x0000]


def regs(address: int, count: int) -> SimData:
    """``count`` registers from ``address``, initially 0."""
    return SimData(address=address, count=count, values=0, datatype=DataType.REGISTERS)


class Model:
    """A simulated device: subclasses declare ``unit``, ``blocks()``, ``render()``,
    ``check()`` and ``write()``, and keep their state as attributes. A device answering
    several unit ids (Alfen: station 200, sockets 1 and 2) lists them in ``units``; the unit
    of the request being served is ``self.current_unit``."""

    unit = 1
    units: list[int] = []
    current_unit = 0

    def blocks(self) -> list[SimData]:
        raise NotImplementedError

    def render(self) -> dict[int, int]:
        """Register address -> 16-bit value, for every register the state defines."""
        raise NotImplementedError

    def check(self, fc: int, address: int, count: int, values) -> ExcCodes | None:
        """Reject a request the device would reject (None = accept)."""
        return None

    def write(self, fc: int, address: int, values: list[int]) -> None:
        """Apply an accepted write to the state."""

    def advance(self, seconds: float) -> None:
        """Simulated time passes."""

    # ---- stdin commands -----------------------------------------------------------------
    def command(self, line: str) -> str:
        parts = line.split()
        if not parts:
            return "ERR empty"
        try:
            if parts[0] == "set" and len(parts) == 3:
                name, raw = parts[1], parts[2]
                if not hasattr(self, name) or name.startswith("_"):
                    return f"ERR unknown {name}"
                old = getattr(self, name)
                if isinstance(old, bool):
                    setattr(self, name, raw not in ("0", "false"))
                elif isinstance(old, int):
                    setattr(self, name, int(raw, 0))
                elif isinstance(old, float):
                    setattr(self, name, float(raw))
                else:
                    setattr(self, name, raw)
                return "OK"
            if parts[0] == "get" and len(parts) == 2:
                name = parts[1]
                if name.startswith("writes."):
                    return f"VALUE {self.writes.get(int(name[7:]), 0)}"
                if not hasattr(self, name) or name.startswith("_"):
                    return f"ERR unknown {name}"
                value = getattr(self, name)
                if isinstance(value, bool):
                    value = int(value)
                return f"VALUE {value}"
            if parts[0] == "advance" and len(parts) == 2:
                self.advance(float(parts[1]))
                return "OK"
        except (ValueError, AttributeError) as e:
            return f"ERR {e}"
        return f"ERR bad command {line!r}"

    # ---- request hook -------------------------------------------------------------------
    writes: dict[int, int]

    def action_for(self, unit: int):
        async def action(fc, start_address, address, count, registers, set_values):
            self.current_unit = unit
            return await self.action(fc, start_address, address, count, registers, set_values)

        return action

    async def action(self, fc, start_address, address, count, registers, set_values):
        # pymodbus reads the registers back after a write (FC 6/16) with no values: that is
        # not a request of its own.
        readback = set_values is None and fc in (5, 6, 15, 16)
        if not readback:
            exc = self.check(fc, address, count, set_values)
            if exc is not None:
                return exc
        if set_values:
            values = [int(v) for v in set_values]
            for i in range(len(values)):
                self.writes[address + i] = self.writes.get(address + i, 0) + 1
            self.write(fc, address, values)
        for addr, value in self.render().items():
            off = addr - start_address
            if 0 <= off < len(registers):
                registers[off] = value & 0xFFFF
        # pymodbus stores the written values after this hook and echoes them in the reply,
        # as a device echoes the request; write-only registers are never read back.
        return None


def u32_be(value: int) -> list[int]:
    value &= 0xFFFF_FFFF
    return [value >> 16, value & 0xFFFF]


def f32_be(value: float) -> list[int]:
    import struct
    return u32_be(struct.unpack(">I", struct.pack(">f", value))[0])


def f64_be(value: float) -> list[int]:
    import struct
    raw = struct.pack(">d", value)
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, 8, 2)]


def f32_from(words: list[int]) -> float:
    import struct
    return struct.unpack(">f", struct.pack(">HH", words[0] & 0xFFFF, words[1] & 0xFFFF))[0]


def u32_le(value: int) -> list[int]:
    value &= 0xFFFF_FFFF
    return [value & 0xFFFF, value >> 16]


def put(out: dict[int, int], address: int, words: list[int]) -> None:
    for i, w in enumerate(words):
        out[address + i] = w & 0xFFFF


def ascii_regs(text: str, count: int) -> list[int]:
    raw = text.encode("ascii")[: 2 * count].ljust(2 * count, b"\0")
    return [(raw[2 * i] << 8) | raw[2 * i + 1] for i in range(count)]


def _stdin_loop(model: Model, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            print("OK", flush=True)
            break
        fut = asyncio.run_coroutine_threadsafe(_run_command(model, line), loop)
        print(fut.result(), flush=True)
    loop.call_soon_threadsafe(stop.set)


async def _run_command(model: Model, line: str) -> str:
    # Runs on the event loop, so it never interleaves with a request.
    return model.command(line)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serve(model: Model, port: int) -> None:
    model.writes = {}
    units = model.units or [model.unit]
    devices = [SimDevice(id=u, simdata=model.blocks(), action=model.action_for(u)) for u in units]
    server = ModbusTcpServer(devices, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_stdin_loop, args=(model, loop, stop), daemon=True).start()
    await stop.wait()
    await server.shutdown()


def run(model: Model) -> None:
    parser = argparse.ArgumentParser(description=type(model).__doc__)
    parser.add_argument("--port", type=int, default=502)
    args = parser.parse_args()
    port = args.port or _free_port()
    asyncio.run(_serve(model, port))
