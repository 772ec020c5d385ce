"""Alfen Eve (NG9xx platform) "Active load balancing" Modbus TCP simulator, written from
Alfen's document.

Source: Alfen "Implementation of Modbus Slave TCP/IP for Alfen NG9xx platform" v2.3
(2020-10-30, firmware 4.10). Wire addresses as in the document, big-endian, FC 0x03 reads
(contiguous block reads allowed; reserved registers inside a block read 0xFFFF), FC 0x10
writes (a multi-register value in one request). Unit 200 is the station, 1 the socket.

Station (unit 200):
  100  name             17 regs ASCII (2 characters a register, zero-terminated)
  117  manufacturer      5 regs ASCII "Alfen NV"
  123  firmware version 17 regs ASCII
  140  platform type    17 regs ASCII, e.g. NG910
  157  station serial   11 regs ASCII
  1100 station active max current  FLOAT32 A
  1102 board temperature           FLOAT32 degC
  1104 OCPP state U16, 1105 number of sockets U16
Socket (unit 1):
  300  meter state U16 bits: 0x01 initialised, 0x02 updated, 0x04 warning, 0x08 error
  306/308/310 voltage L1-N/L2-N/L3-N FLOAT32 V
  320/322/324 current L1/L2/L3 FLOAT32 A, 326 current sum
  338/340/342 active power L1/L2/L3 FLOAT32 W, 344 sum
  362/366/370 energy delivered L1/L2/L3 FLOAT64 Wh, 374 sum, 390 energy consumed sum
  1200 availability U16 (1 operative, 0 inoperative)
  1201 mode 3 state 5 regs ASCII "A","B1","B2","C1","C2","D1","D2","E","F"
  1206 actual applied max current FLOAT32 A
  1208 remaining validity time U32 s (until the safe current applies)
  1210 Modbus slave max current FLOAT32 A, read/write, FC 0x10 only (0 pauses)
  1212 safe current FLOAT32 A (set in ACE Service Installer, read-only here)
  1214 setpoint accounted for U16, 1215 charge using 1 or 3 phases U16 (read/write)

Field behaviour (not in the document; evcc `charger/alfen.go`, commit 60cde1ccb "fix NaN
values in 1p connection" #4578): on a 1-phase installation the unused phases read NaN in
normal operation. ``set installation_phases 1`` selects that installation. Mode-3 state "E"
(no pilot) appears on some firmware without a vehicle: ``set idle_e 1``.

1-/3-phase switching (1215; evcc `charger/alfen.go` offers it on three-phase installations
and writes the phase count): it needs "Allow 1- and 3-phased charging" in the ACE Service
Installer (the project's reference §4). Chosen here where no source says: without that setting
(``set allow_1p3p 0``) or on a 1-phase installation a write of 1215 is refused with exception
3; after a switch the socket stops charging (mode 3 "C1") for ``switch_pause_s``.

State the test can set: connected, vehicle_a, vehicle_phases, installation_phases, idle_e,
error (meter error bit), energy_wh, validity_s, safe_a, temperature, allow_1p3p,
switch_pause_s. Read back: setpoint_a, validity_left, phases_setting, writes.<register>.
"""

from __future__ import annotations

import math
import time

from pymodbus_common import (NAN32, ExcCodes, Model, ascii_regs, f32_be, f32_from, f64_be, put,
                             regs, run, u32_be)

VOLTAGE = 230.0
STATION_BLOCKS = [(100, 68), (1100, 6)]
SOCKET_BLOCKS = [(300, 92), (1200, 16)]


class AlfenEve(Model):
    """Alfen Eve Modbus TCP simulator."""

    units = [200, 1]

    def __init__(self) -> None:
        self.connected = False
        self.vehicle_a = 16.0
        self.vehicle_phases = 3
        self.installation_phases = 3
        self.idle_e = False
        self.error = False
        self.energy_wh = 2000.0
        self.validity_s = 60
        self.safe_a = 6.0
        self.max_a = 32.0
        self.temperature = 31.5
        self.setpoint_a = 0.0
        self.phases_setting = 3
        self.allow_1p3p = True
        self.switch_pause_s = 0.3
        self._switch_until = 0.0
        self._last_write = time.monotonic()

    def blocks(self):
        return [regs(a, n) for a, n in STATION_BLOCKS + SOCKET_BLOCKS]

    # ---- derived state ------------------------------------------------------------------
    @property
    def validity_left(self) -> int:
        return max(0, math.ceil(self.validity_s - (time.monotonic() - self._last_write)))

    def offered_a(self) -> float:
        a = self.setpoint_a if self.validity_left > 0 else self.safe_a
        return min(a, self.max_a)

    def mode3(self) -> str:
        if self.error:
            return "F"
        if not self.connected:
            return "E" if self.idle_e else "A"
        if self.offered_a() < 6.0:
            return "B1"
        if time.monotonic() < self._switch_until:
            return "C1"
        return "C2" if self.vehicle_a > 0 else "B2"

    def currents(self) -> list[float]:
        if self.mode3() != "C2":
            return [0.0, 0.0, 0.0]
        i = min(self.offered_a(), self.vehicle_a)
        phases = min(self.vehicle_phases, self.installation_phases, self.phases_setting)
        return [i, 0.0, 0.0] if phases == 1 else [i, i, i]

    def render(self) -> dict[int, int]:
        out: dict[int, int] = {}
        if self.current_unit == 200:
            # Reserved registers inside the blocks read 0xFFFF.
            for a, n in STATION_BLOCKS:
                put(out, a, [0xFFFF] * n)
            put(out, 100, ascii_regs("ALF_1000", 17))
            put(out, 117, ascii_regs("Alfen NV", 5))
            put(out, 123, ascii_regs("6.4.0-4210", 17))
            put(out, 140, ascii_regs("NG910", 17))
            put(out, 157, ascii_regs("ACE0654321", 11))
            put(out, 1100, f32_be(self.max_a))
            put(out, 1102, f32_be(self.temperature))
            put(out, 1104, [3 if self.mode3() == "C2" else 0, 1])
            return out
        for a, n in SOCKET_BLOCKS:
            put(out, a, [0xFFFF] * n)
        c = self.currents()
        one_phase = self.installation_phases == 1
        put(out, 300, [0x08 if self.error else 0x03])
        for k in range(3):
            unused = one_phase and k > 0

            def val(v: float, unused: bool = unused) -> list[int]:
                return NAN32 if unused else f32_be(v)

            put(out, 306 + 2 * k, val(VOLTAGE))
            put(out, 320 + 2 * k, val(c[k]))
            put(out, 338 + 2 * k, val(c[k] * VOLTAGE))
            put(out, 362 + 4 * k, f64_be(self.energy_wh / 3))
        put(out, 318, f32_be(0.0))
        put(out, 326, f32_be(sum(c)))
        put(out, 344, f32_be(sum(c) * VOLTAGE))
        put(out, 374, f64_be(self.energy_wh))
        put(out, 390, f64_be(0.0))
        put(out, 1200, [1])
        put(out, 1201, ascii_regs(self.mode3(), 5))
        put(out, 1206, f32_be(self.offered_a()))
        put(out, 1208, u32_be(self.validity_left))
        put(out, 1210, f32_be(self.setpoint_a))
        put(out, 1212, f32_be(self.safe_a))
        put(out, 1214, [1, self.phases_setting])
        return out

    # ---- requests -------------------------------------------------------------------------
    def check(self, fc, address, count, values):
        blocks = STATION_BLOCKS if self.current_unit == 200 else SOCKET_BLOCKS
        if fc == 3:
            if not any(a <= address and address + count <= a + n for a, n in blocks):
                return ExcCodes.ILLEGAL_ADDRESS
            return None
        if fc in (6, 16) and self.current_unit == 200:
            return ExcCodes.ILLEGAL_ADDRESS
        if fc == 16 and address == 1210 and len(values) == 2:
            a = f32_from([int(v) for v in values])
            if math.isnan(a) or a < 0 or 0 < a < 6 or a > self.max_a:
                return ExcCodes.ILLEGAL_VALUE
            return None
        if fc in (6, 16) and address == 1215 and len(values) == 1:
            if not self.allow_1p3p or self.installation_phases == 1:
                return ExcCodes.ILLEGAL_VALUE
            return None if int(values[0]) in (1, 3) else ExcCodes.ILLEGAL_VALUE
        return ExcCodes.ILLEGAL_ADDRESS if fc in (6, 16) else ExcCodes.ILLEGAL_FUNCTION

    def write(self, fc, address, values):
        if address == 1210:
            self.setpoint_a = f32_from(values)
            self._last_write = time.monotonic()
        elif address == 1215:
            if values[0] != self.phases_setting and self.connected:
                self._switch_until = time.monotonic() + self.switch_pause_s
            self.phases_setting = values[0]

    def advance(self, seconds: float) -> None:
        self.energy_wh += sum(self.currents()) * VOLTAGE * seconds / 3600.0


if __name__ == "__main__":
    run(AlfenEve())
