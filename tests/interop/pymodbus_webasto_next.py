"""Webasto Next (also Ampure NEXT) Modbus TCP simulator, written from Webasto's register list.

Source: "Modbus Specification Webasto NEXT" - register list rev. 3.00 (2022-04-27), register
set "TQ-DM100", mode "HEMS activated". Each register below is a row of that list (cited by
its address); where the list was read through a third party it says so. Transport: Modbus
TCP, unit id 255, big-endian, holding registers (FC 0x03; evcc also reads the currents with
FC 0x04, so this simulator answers FC 0x04 for the same registers).

Read (FC 0x03/0x04):
  1000  charge point state  U16  0 no vehicle, 1 vehicle attached / no permission,
                                 3 charging, 4 charging paused, 7 charging error, 8 reserved
  1001  charge state        U16  0 idle, 1 charging
  1002  EVSE state          U16  0 starting, 1 running, 2 error
  1004  cable state         U16  0 no cable, 1 cable attached no car, 2 car attached,
                                 3 car attached and locked
  1006  EVSE error code     U16  0 = no error
  1008/1010/1012 current L1/L2/L3  U16 mA
  1020  active power total  U32 W
  1024/1028/1032 active power L1/L2/L3  U32 W
  1036  energy meter        U32 Wh
  1100/1102/1104/1106/1108  max current hardware / min current / max station / max cable /
                            max EV   U16 A
  1502  charged energy of the session  Wh (U16 per the nymea register file, third party)
  1508  charging time       U32 s
  1600  user id (IdTag/RFID) 10 registers ASCII
  1620  smart vehicle detected U16
Read/write:
  2000  safe current        U16 A   FC 0x10 (current when the life bit is not renewed)
  2002  communication timeout U16 s FC 0x10
Write:
  5000  set charge power    U32 W   FC 0x10
  5004  set charge current  U16 A   FC 0x06/0x10 (0 = pause)
  5006  start/cancel session U16    FC 0x06: 0 none, 1 start, 2 cancel
  6000  life bit            U16     FC 0x06: the master writes 1, the station resets it to 0;
                                    if not renewed within 2002 s the safe current applies

Assumption (not in the list): registers the list leaves out inside the blocks
1000-1037, 1100-1109, 1500-1509, 1600-1620 and 2000-2003 (the odd addresses between U16
values, reserved words) read as 0 so that block reads over them work; everything else
answers exception 0x02.

State the test can set: connected, vehicle_ma, phases (1/3), error, evse_error (EVSE state 2),
energy_wh, session_wh, rfid, hw_max_a, cable_max_a. Read back: setpoint_a, session
(0 none 1 started 2 cancelled), safe_a, timeout_s, lifebit, lifebit_writes, failsafe_active,
writes.<register>.
"""

from __future__ import annotations

import time

from pymodbus_common import ExcCodes, Model, ascii_regs, put, regs, run, u32_be

VOLTAGE = 230
READ_BLOCKS = [(1000, 38), (1100, 10), (1500, 10), (1600, 21), (2000, 4)]
WRITE_FC = {2000: {16}, 2001: {16}, 2002: {16}, 2003: {16}, 5000: {16}, 5001: {16},
            5004: {6, 16}, 5006: {6}, 6000: {6}}


class WebastoNext(Model):
    """Webasto Next Modbus TCP simulator."""

    unit = 255

    def __init__(self) -> None:
        self.connected = False
        self.vehicle_ma = 32000
        self.phases = 3
        self.error = 0
        self.evse_error = False
        self.energy_wh = 0
        self.session_wh = 0
        self.charging_s = 0
        self.rfid = ""
        self.hw_max_a = 32
        self.min_a = 6
        self.cable_max_a = 32
        # Written by the gateway.
        self.setpoint_a = 0
        self.power_limit_w = 0
        self.session = 0
        self.safe_a = 6
        self.timeout_s = 0
        self.lifebit = 0
        self.lifebit_writes = 0
        self._last_life = time.monotonic()
        self._session_energy = 0.0

    def blocks(self):
        return [regs(a, n) for a, n in READ_BLOCKS] + [regs(5000, 8), regs(6000, 1)]

    # ---- derived state ------------------------------------------------------------------
    @property
    def failsafe_active(self) -> bool:
        return self.timeout_s > 0 and time.monotonic() - self._last_life > self.timeout_s

    def offered_a(self) -> int:
        a = self.safe_a if self.failsafe_active else self.setpoint_a
        return min(a, self.hw_max_a, self.cable_max_a)

    def cp_state(self) -> int:
        if self.error or self.evse_error:
            return 7
        if not self.connected:
            return 0
        if self.session == 2:
            return 1
        if self.offered_a() < self.min_a or self.vehicle_ma == 0:
            return 4
        return 3

    def currents(self) -> list[int]:
        if self.cp_state() != 3:
            return [0, 0, 0]
        i = min(self.offered_a() * 1000, self.vehicle_ma)
        return [i, 0, 0] if self.phases == 1 else [i, i, i]

    def render(self) -> dict[int, int]:
        c = self.currents()
        p = [round(i * VOLTAGE / 1000) for i in c]
        out: dict[int, int] = {
            1000: self.cp_state(),
            1001: 1 if self.cp_state() == 3 else 0,
            1002: 2 if self.evse_error else 1,
            1004: 3 if self.connected else 0,
            1006: self.error,
            1008: c[0], 1010: c[1], 1012: c[2],
            1100: self.hw_max_a, 1102: self.min_a, 1104: self.hw_max_a,
            1106: self.cable_max_a if self.connected else 0,
            1108: round(self.vehicle_ma / 1000) if self.connected else 0,
            1502: int(self.session_wh) & 0xFFFF,
            1620: 0,
            2000: self.safe_a, 2002: self.timeout_s,
        }
        put(out, 1020, u32_be(sum(p)))
        put(out, 1024, u32_be(p[0]))
        put(out, 1028, u32_be(p[1]))
        put(out, 1032, u32_be(p[2]))
        put(out, 1036, u32_be(int(self.energy_wh)))
        put(out, 1508, u32_be(self.charging_s))
        put(out, 1600, ascii_regs(self.rfid, 10))
        return out

    # ---- requests -------------------------------------------------------------------------
    def check(self, fc, address, count, values):
        if fc in (3, 4):
            if not any(a <= address and address + count <= a + n for a, n in READ_BLOCKS):
                return ExcCodes.ILLEGAL_ADDRESS
            return None
        if fc in (6, 16):
            for i in range(len(values)):
                if fc not in WRITE_FC.get(address + i, set()):
                    return ExcCodes.ILLEGAL_ADDRESS
            if address == 5006 and int(values[0]) not in (0, 1, 2):
                return ExcCodes.ILLEGAL_VALUE
            if address <= 5004 < address + len(values):
                a = int(values[5004 - address])
                if a != 0 and not self.min_a <= a <= self.hw_max_a:
                    return ExcCodes.ILLEGAL_VALUE
            return None
        return ExcCodes.ILLEGAL_FUNCTION

    def write(self, fc, address, values):
        for i, v in enumerate(values):
            a = address + i
            if a == 2000:
                self.safe_a = v
            elif a == 2002:
                self.timeout_s = v
            elif a == 5000:
                self.power_limit_w = (v << 16) | (self.power_limit_w & 0xFFFF)
            elif a == 5001:
                self.power_limit_w = (self.power_limit_w & 0xFFFF_0000) | v
            elif a == 5004:
                self.setpoint_a = v
            elif a == 5006:
                if v in (1, 2):
                    self.session = v
            elif a == 6000:
                self.lifebit_writes += 1
                self._last_life = time.monotonic()
                # The station resets the bit once it has seen it.
                self.lifebit = 0

    def advance(self, seconds: float) -> None:
        if self.cp_state() == 3:
            self.charging_s += int(seconds)
        wh = sum(self.currents()) * VOLTAGE / 1000.0 * seconds / 3600.0
        self.energy_wh += int(wh)
        self.session_wh += int(wh)


if __name__ == "__main__":
    run(WebastoNext())
