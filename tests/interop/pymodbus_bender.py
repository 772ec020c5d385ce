"""Bender CC612/CC613 charge controller Modbus TCP simulator (register address set
"Ebee/Bender/MENNEKES"), written from Bender's document.

Source: Bender "Charge Controller Modbus TCP API" v5.32 (bender.de/docs/charge-controller/
5.32/APIs/Modbus-API), sections 2-5, and the CC613 configuration-interface list "Modbus
Slave Registers" (registers 100-138). Holding registers, FC 0x03 reads, FC 0x10 writes (FC
0x06 accepted); 16-bit values, 32-bit values high word first; undefined registers inside a
range read 0; any unit id answers.

Read:
  100  firmware version      2 regs ASCII, e.g. "5.33"
  104  OCPP CP status        U16, OCPP 1.6 ChargePointStatus: 0 Available, 1 Occupied,
                             2 Reserved, 3 Unavailable, 4 Faulted, 5 Preparing, 6 Charging,
                             7 SuspendedEVSE, 8 SuspendedEV, 9 Finishing
  105/107/109/111 error codes 1-4, 2 regs each (bit fields)
  120  protocol version      2 regs ASCII, e.g. "0.14"
  122  vehicle state         U16 1 A, 2 B, 3 C, 4 D, 5 E
  123  CP state (hex)        U16 0x0A..0x0F
  124  availability          U16 0 operative, 1 inoperative (read/write)
  131  safe current A (r/w), 132 communication timeout s (r/w)
  133  hardware current limit A, 134 operator current limit A
  140  relay state, 142 charge point model 10 regs ASCII (missing on legacy firmware)
  200/202/204 energy L1-L3 Wh, 206/208/210 power L1-L3 W, 212/214/216 current L1-L3 mA,
  218  total energy Wh, 220 total power W, 222/224/226 voltage L1-L3 V (all U32)
  705  session energy (legacy) / 716 session energy, Wh; 706 signalled current A;
  709  charging duration (legacy) / 718, s
  720  user id (RFID)        10 regs ASCII
  730  EV SoC %, 740 smart vehicle detected, 741 EVCCID 6 regs ASCII (ISO 15118)
Write:
  1000 HEMS current limit A (0 = pause); must be renewed within the communication timeout,
       else the safe current applies.

Field behaviour (evcc `charger/bender.go`, nymea register files): a meter-less controller reads
0xFFFFFFFF in every meter register (``set metered 0``); legacy firmware lacks the model text
and 716/718 (``set firmware legacy``).

State the test can set: connected, vehicle_ma, full (SuspendedEV), metered, firmware
("5.33" or "legacy"), error, energy_wh, rfid. Read back: hems_a, safe_a, timeout_s,
failsafe_active, writes.<register>.
"""

from __future__ import annotations

import time

from pymodbus_common import ExcCodes, Model, ascii_regs, put, regs, run, u32_be

VOLTAGE = 230
BLOCKS = [(100, 52), (200, 28), (705, 6), (716, 4), (720, 10), (730, 17), (1000, 3)]
INVALID = 0xFFFF_FFFF


class BenderCc(Model):
    """Bender CC612/613 Modbus TCP simulator."""

    unit = 255

    def __init__(self) -> None:
        self.connected = False
        self.vehicle_ma = 16000
        self.full = False
        self.metered = True
        self.firmware = "5.33"
        self.error = 0
        self.energy_wh = 4000
        self.session_wh = 0
        self.rfid = ""
        self.hw_a = 32
        # Written by the gateway.
        self.hems_a = 32
        self.available = 0
        self.safe_a = 6
        self.timeout_s = 0
        self._last_hems = time.monotonic()

    def blocks(self):
        return [regs(a, n) for a, n in BLOCKS]

    @property
    def failsafe_active(self) -> bool:
        return self.timeout_s > 0 and time.monotonic() - self._last_hems > self.timeout_s

    def offered_a(self) -> int:
        if self.available:
            return 0
        return min(self.safe_a if self.failsafe_active else self.hems_a, self.hw_a)

    def vehicle_state(self) -> int:
        if self.error:
            return 5
        if not self.connected:
            return 1
        if self.offered_a() >= 6 and not self.full and self.vehicle_ma > 0:
            return 3
        return 2

    def ocpp(self) -> int:
        if self.error:
            return 4
        if self.available:
            return 3
        if not self.connected:
            return 0
        if self.vehicle_state() == 3:
            return 6
        if self.full:
            return 8
        return 7 if self.offered_a() < 6 else 5

    def currents(self) -> list[int]:
        if self.vehicle_state() != 3:
            return [0, 0, 0]
        i = min(self.offered_a() * 1000, self.vehicle_ma)
        return [i, i, i]

    def render(self) -> dict[int, int]:
        legacy = self.firmware == "legacy"
        out: dict[int, int] = {}
        put(out, 100, ascii_regs("4.81" if legacy else self.firmware, 2))
        put(out, 104, [self.ocpp()])
        put(out, 105, u32_be(self.error))
        put(out, 120, ascii_regs("0.14", 2))
        vs = self.vehicle_state()
        put(out, 122, [vs, 0x09 + vs, self.available])
        put(out, 131, [self.safe_a, self.timeout_s, self.hw_a, self.hw_a])
        put(out, 140, [1 if vs == 3 else 0])
        if not legacy:
            put(out, 142, ascii_regs("CC613-ELPU", 10))
        c = self.currents()
        p = [round(i * VOLTAGE / 1000) for i in c]
        for k in range(3):
            put(out, 200 + 2 * k, u32_be(self.energy_wh // 3 if self.metered else INVALID))
            put(out, 206 + 2 * k, u32_be(p[k] if self.metered else INVALID))
            put(out, 212 + 2 * k, u32_be(c[k] if self.metered else INVALID))
            put(out, 222 + 2 * k, u32_be(VOLTAGE if self.metered else INVALID))
        put(out, 218, u32_be(self.energy_wh if self.metered else INVALID))
        put(out, 220, u32_be(sum(p) if self.metered else INVALID))
        put(out, 705, u32_be(self.session_wh))
        put(out, 706, [self.offered_a()])
        put(out, 709, u32_be(0))
        if not legacy:
            put(out, 716, u32_be(self.session_wh))
            put(out, 718, u32_be(0))
        put(out, 720, ascii_regs(self.rfid if self.connected else "", 10))
        put(out, 741, ascii_regs("", 6))
        put(out, 1000, [self.hems_a])
        return out

    def check(self, fc, address, count, values):
        legacy = self.firmware == "legacy"
        if fc == 3:
            if not any(a <= address and address + count <= a + n for a, n in BLOCKS):
                return ExcCodes.ILLEGAL_ADDRESS
            if legacy and (address < 720 and address + count > 716 or
                           address < 152 and address + count > 142):
                return ExcCodes.ILLEGAL_ADDRESS
            return None
        if fc in (6, 16):
            for i, v in enumerate(values):
                a = address + i
                v = int(v)
                if a == 1000 and not (v == 0 or 6 <= v <= 80):
                    return ExcCodes.ILLEGAL_VALUE
                if a == 124 and v not in (0, 1):
                    return ExcCodes.ILLEGAL_VALUE
                if a == 131 and not 6 <= v <= 80:
                    return ExcCodes.ILLEGAL_VALUE
                if a not in (124, 131, 132, 1000):
                    return ExcCodes.ILLEGAL_ADDRESS
            return None
        return ExcCodes.ILLEGAL_FUNCTION

    def write(self, fc, address, values):
        for i, v in enumerate(values):
            a = address + i
            if a == 1000:
                self.hems_a = v
                self._last_hems = time.monotonic()
            elif a == 124:
                self.available = v
            elif a == 131:
                self.safe_a = v
            elif a == 132:
                self.timeout_s = v

    def advance(self, seconds: float) -> None:
        wh = int(sum(self.currents()) * VOLTAGE / 1000.0 * seconds / 3600.0)
        self.energy_wh += wh
        self.session_wh += wh


if __name__ == "__main__":
    run(BenderCc())
