"""KEBA KeContact P30 (c-/x-series) Modbus TCP simulator, written from KEBA's own document.

Source: KEBA "KeContact P30 Charging Station - Modbus TCP Programmers Guide V1.02"
(chapters cited per register below), plus for the failsafe semantics the KEBA "KeContact
P30 UDP Programmers Guide V2.01" (failsafe, p. 34-35). Transport facts: Modbus TCP; every readable value is a UINT32 (two
registers, high word first) and every writeable value a UINT16 (guide ch. 3 and 4 tables).
Unit id 255, function codes 0x03/0x06 only and "no block reads, each value on its own" are
from the later guide V1.07 as summarised by the mbmap-library (third-party; see the
project's reference §1) - this simulator enforces them.

Readable data (guide ch. 3), answered with FC 0x03 and count = 2 only:
  1000  charging state  (3.1)  0 start-up, 1 not ready (no vehicle / locked by authorization),
                               2 ready, waiting for the vehicle, 3 charging, 4 error,
                               5 charging interrupted (temperature or suspended/disabled)
  1004  cable state     (3.2)  0 no cable, 1 cable at station, 3 ... and locked,
                               5 cable at station and vehicle, 7 ... and locked
  1006  error code      (3.3)  0 = no error
  1008/1010/1012 charging current phase 1/2/3 (3.4-3.6), mA
  1014  serial number   (3.7)
  1016  product type and features (3.8), six decimal digits, e.g. 304111
  1018  firmware version (3.9), bytes major.minor.patch, e.g. 0x030A0D00
  1020  active power    (3.10), mW
  1036  total energy    (3.11); the guide says Wh, the station counts 0.1 Wh (see the
                               project's reference §1 / §12.7: KEBA's own UDP guide and every
                               field driver use 0.1 Wh) - this simulator counts 0.1 Wh
  1040/1042/1044 voltage phase 1/2/3 (3.12-3.14), V
  1046  power factor    (3.15), 0.1 %
  1100  max charging current (3.16), mA - what the station currently offers
  1110  max supported current (3.17), mA - DIP switch / cable limit
  The remaining sections of ch. 3 (after 3.17, in register order; section numbers not
  re-checked):
  1500  RFID card (first four UID bytes)
  1502  charged energy of the session, 0.1 Wh
  1550/1552 phase switch source / state
  1600  failsafe current (setting), mA
  1602  failsafe timeout (setting), s

Writeable data (guide ch. 4), FC 0x06 only:
  5004  set charging current (4.1), mA, 6000..63000, RAM only (valid until reboot)
  5010  set energy (4.2), 10 Wh
  5012  unlock plug (4.3) - only when the station is suspended (stop with 5014 first)
  (4.4 ff. in register order; section numbers after 4.3 not re-checked)
  5014  enable/disable charging station, 0 disable, 1 enable
  5016  failsafe current, mA, 0 or 6000..63000
  5018  failsafe timeout, s, 0 = off, else 10..600 (range from the UDP guide)
  5020  failsafe persist, 1 = store 5016/5018 in EEPROM
  5050  phase switch source, 5052 phase switch

Phase switching with the KeContact S10 (register meanings from the project's reference §1:
1550 source, 3 = Modbus; 1552 state, P30: 0 = 1-phase, 1 = 3-phase; 5050 sets the source on a
c-series - the x-series takes it from its web menu; 5052 triggers, 0 = 1-phase, 1 = 3-phase;
evcc's keba-modbus template: the S10 is required, c-series "3" into 5050). Behaviour beyond
the registers, chosen here: without an S10 the source stays 0 and 5052 does nothing; the
trigger counts only while the source is 3; the station stops charging for `switch_pause_s`
after a switch (a real box and car need seconds; the test shortens it).

State the test can set: connected, vehicle_ma (what the vehicle draws at most), phases (1/3,
the vehicle's), error, energy_wh, session_wh, rfid, dip_ma, s10 (0/1), product (304111
c-series, 304011 x-series), source (the x-series web menu), switch_pause_s. Read back:
setpoint_ma, enabled, failsafe_ma, failsafe_s, persisted, unlocked, switched (1/3), source,
writes.<register>.
"""

from __future__ import annotations

import time

from pymodbus_common import ExcCodes, Model, put, regs, run, u32_be

READ_U32 = [1000, 1004, 1006, 1008, 1010, 1012, 1014, 1016, 1018, 1020, 1036, 1040, 1042,
            1044, 1046, 1100, 1110, 1500, 1502, 1550, 1552, 1600, 1602]
WRITE_U16 = [5004, 5010, 5012, 5014, 5016, 5018, 5020, 5050, 5052]
VOLTAGE = 230


class KebaP30(Model):
    """KEBA KeContact P30 Modbus TCP simulator."""

    unit = 255

    def __init__(self) -> None:
        self.connected = False
        self.vehicle_ma = 32000
        self.phases = 3
        self.error = 0
        self.energy_wh = 0.0
        self.session_wh = 0.0
        self.rfid = 0
        self.dip_ma = 32000
        self.serial = 18416854
        self.product = 304111
        self.firmware = 0x030A0D00
        # Written by the gateway.
        self.setpoint_ma = 32000  # after boot: the DIP limit
        self.enabled = True
        self.failsafe_ma = 0
        self.failsafe_s = 0
        self.persisted = 0
        self.unlocked = 0
        self.energy_limit = 0
        self._last_failsafe_write = time.monotonic()
        # KeContact S10 phase switch.
        self.s10 = True
        self.source = 0
        self.switched = 3
        self.switch_pause_s = 0.3
        self._switch_until = 0.0

    def blocks(self):
        return [regs(a, 2) for a in READ_U32] + [regs(a, 1) for a in WRITE_U16]

    # ---- derived state --------------------------------------------------------------------
    def failsafe_active(self) -> bool:
        return (self.failsafe_s > 0
                and time.monotonic() - self._last_failsafe_write > self.failsafe_s)

    def offered_ma(self) -> int:
        want = self.failsafe_ma if self.failsafe_active() else self.setpoint_ma
        return min(want, self.dip_ma)

    def switching(self) -> bool:
        return time.monotonic() < self._switch_until

    def charging_state(self) -> int:
        if self.error:
            return 4
        if not self.connected:
            return 1
        if not self.enabled or self.offered_ma() == 0:
            return 5
        if self.switching():
            return 2
        if self.vehicle_ma > 0:
            return 3
        return 2

    def cable_state(self) -> int:
        if not self.connected:
            return 0
        return 5 if self.unlocked else 7

    def currents(self) -> list[int]:
        if self.charging_state() != 3:
            return [0, 0, 0]
        i = min(self.offered_ma(), self.vehicle_ma)
        one = self.phases == 1 or (self.s10 and self.switched == 1)
        return [i, 0, 0] if one else [i, i, i]

    def render(self) -> dict[int, int]:
        c = self.currents()
        power_mw = sum(c) * VOLTAGE
        values = {
            1000: self.charging_state(), 1004: self.cable_state(), 1006: self.error,
            1008: c[0], 1010: c[1], 1012: c[2], 1014: self.serial, 1016: self.product,
            1018: self.firmware, 1020: power_mw, 1036: round(self.energy_wh * 10),
            1040: VOLTAGE, 1042: VOLTAGE, 1044: VOLTAGE, 1046: 1000 if power_mw else 0,
            1100: self.offered_ma(), 1110: self.dip_ma, 1500: self.rfid,
            1502: round(self.session_wh * 10), 1550: self.source if self.s10 else 0,
            1552: 1 if self.s10 and self.switched == 3 else 0,
            1600: self.failsafe_ma, 1602: self.failsafe_s,
        }
        out: dict[int, int] = {}
        for addr, v in values.items():
            put(out, addr, u32_be(v))
        return out

    # ---- requests ---------------------------------------------------------------------------
    def check(self, fc, address, count, values):
        if fc == 3:
            # Guide ch. 2: each value on its own, two registers, only the readable range.
            if address not in READ_U32 or count != 2:
                return ExcCodes.ILLEGAL_ADDRESS
            return None
        if fc == 6:
            if address not in WRITE_U16:
                return ExcCodes.ILLEGAL_ADDRESS
            v = int(values[0])
            if address == 5004 and not 6000 <= v <= 63000:
                return ExcCodes.ILLEGAL_VALUE
            if address == 5014 and v not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            if address == 5016 and not (v == 0 or 6000 <= v <= 63000):
                return ExcCodes.ILLEGAL_VALUE
            if address == 5018 and not (v == 0 or 10 <= v <= 600):
                return ExcCodes.ILLEGAL_VALUE
            if address == 5050 and v > 4:
                return ExcCodes.ILLEGAL_VALUE
            if address == 5052 and v not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            return None
        return ExcCodes.ILLEGAL_FUNCTION

    def write(self, fc, address, values):
        v = values[0]
        if address == 5004:
            self.setpoint_ma = v
        elif address == 5010:
            self.energy_limit = v
        elif address == 5012:
            # Guide 4.3: only possible while suspended.
            if self.charging_state() != 3 and self.connected:
                self.unlocked = 1
        elif address == 5014:
            self.enabled = bool(v)
        elif address == 5016:
            self.failsafe_ma = v
        elif address == 5018:
            self.failsafe_s = v
            self._last_failsafe_write = time.monotonic()
        elif address == 5020:
            self.persisted += 1
        elif address == 5050:
            # c-series only (product digit 4 = 1); the x-series keeps its web-menu setting.
            if self.s10 and (self.product // 100) % 10 == 1:
                self.source = v
        elif address == 5052:
            want = 3 if v == 1 else 1
            if self.s10 and self.source == 3 and want != self.switched:
                self.switched = want
                if self.connected:
                    self._switch_until = time.monotonic() + self.switch_pause_s

    def advance(self, seconds: float) -> None:
        wh = sum(self.currents()) * VOLTAGE / 1000.0 * seconds / 3600.0
        self.energy_wh += wh
        self.session_wh += wh


if __name__ == "__main__":
    run(KebaP30())
