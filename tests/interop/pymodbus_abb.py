"""ABB Terra AC wallbox Modbus TCP simulator, written from ABB's document.

Source: ABB "Terra AC Charger Modbus Communication" v1.11
(library.e.abb.com/public/982c2befa2734d259e66d76fa4a7ba77/
ABB_Terra_AC_Charger_ModbusCommunication_v1.11.pdf). Holding registers read with FC 0x03;
32-bit values high word first; the current limit is written as two registers with FC 0x10.

Read:
  0x4000 serial number 4 regs; 0x4004 firmware version 2 regs (bytes major.minor.patch)
  0x4006 max rated / user-settable current U32 mA
  0x4008 error code U32 bit mask: 0x0002 residual current, 0x0004 PE missing, 0x0008 over-
         voltage, 0x0010 under-voltage, 0x0020 overcurrent, 0x0040 severe overcurrent,
         0x0080 over-temperature, 0x0400 relay fault, 0x0800 internal communication,
         0x1000 E-lock failure, 0x2000 missing phase, 0x4000 Modbus communication lost
  0x400A socket lock state U32: 0x0000 no cable, 0x0001 cable at station unlocked, 0x0011
         locked, 0x0101 cable at station and EV unlocked, 0x0111 ... locked
  0x400C charging state 2 regs: 0x400C availability (0 available); high byte of 0x400D:
         bits 0-6 = 0 idle (A), 1 B1 pending authorisation, 2 B2 EVSE ready, 3 C1 EV ready,
         4 C2 charging, 5 other / session stopped; bit 7 = charging below the commanded current
  0x400E current charging current limit U32 mA
  0x4010/0x4012/0x4014 current L1-L3 U32 mA; 0x4016/0x4018/0x401A voltage L1-L3 U32 0.1 V
  0x401C active power U32 W; 0x401E energy delivered in the session U32 Wh
  0x4020 communication timeout U16 s; 0x4022 current limit set by Modbus U32 mA;
  0x4024 fallback limit U16 A
Write:
  0x4100 set charging current limit U32 mA, FC 0x10 with two registers (0 pauses, else >= 6 A)
  0x4103 lock/unlock socket cable U16 (0 unlock, 1 lock)
  0x4105 start/stop session U16 (0 start, 1 stop)
  0x4106 communication timeout U16 s; 0x4109 fallback limit U16 A

Field behaviour (evcc `charger/abb.go` lines 130-138): state 5 "session stopped" stays after
the vehicle left; only the socket lock tells whether a vehicle is there.

State the test can set: connected, vehicle_ma, error, session_wh, rated_ma. Read back:
limit_ma, stopped, locked, timeout_s, fallback_a, writes.<register>.
"""

from __future__ import annotations

from pymodbus_common import ExcCodes, Model, put, regs, run, u32_be

VOLTAGE = 230
READ = (0x4000, 0x26)
WRITE = {0x4100: 2, 0x4103: 1, 0x4105: 1, 0x4106: 1, 0x4109: 1}


class AbbTerraAc(Model):
    """ABB Terra AC Modbus TCP simulator."""

    unit = 1

    def __init__(self) -> None:
        self.connected = False
        self.after_session = False
        self.vehicle_ma = 16000
        self.error = 0
        self.session_wh = 0
        self.rated_ma = 32000
        # Written by the gateway.
        self.limit_ma = 32000
        self.stopped = False
        self.locked = True
        self.timeout_s = 0
        self.fallback_a = 0

    def blocks(self):
        return [regs(*READ)] + [regs(a, n) for a, n in WRITE.items()]

    def set_connected(self, value: bool) -> None:
        if self.connected and not value:
            self.after_session = True
        if value:
            self.after_session = False
            self.stopped = False

    def command(self, line: str) -> str:
        parts = line.split()
        if parts[:2] == ["set", "connected"] and len(parts) == 3:
            self.set_connected(parts[2] not in ("0", "false"))
        return super().command(line)

    def charging(self) -> bool:
        return (self.connected and not self.stopped and not self.error
                and self.limit_ma >= 6000 and self.vehicle_ma > 0)

    def state(self) -> int:
        if not self.connected:
            return 5 if self.after_session else 0
        if self.stopped:
            return 5
        if self.charging():
            return 4
        return 2 if self.limit_ma >= 6000 else 3

    def currents(self) -> list[int]:
        if not self.charging():
            return [0, 0, 0]
        i = min(self.limit_ma, self.vehicle_ma, self.rated_ma)
        return [i, i, i]

    def render(self) -> dict[int, int]:
        out: dict[int, int] = {}
        put(out, 0x4000, [0x0012, 0x3456, 0x7890, 0xABCD])
        put(out, 0x4004, [0x0107, 0x0200])
        put(out, 0x4006, u32_be(self.rated_ma))
        put(out, 0x4008, u32_be(self.error))
        lock = 0
        if self.connected:
            lock = 0x0111 if self.locked else 0x0101
        put(out, 0x400A, u32_be(lock))
        put(out, 0x400C, [0, self.state() << 8])
        put(out, 0x400E, u32_be(self.limit_ma if not self.stopped else 0))
        c = self.currents()
        for k in range(3):
            put(out, 0x4010 + 2 * k, u32_be(c[k]))
            put(out, 0x4016 + 2 * k, u32_be(VOLTAGE * 10))
        put(out, 0x401C, u32_be(round(sum(c) * VOLTAGE / 1000)))
        put(out, 0x401E, u32_be(self.session_wh))
        put(out, 0x4020, [self.timeout_s])
        put(out, 0x4022, u32_be(self.limit_ma))
        put(out, 0x4024, [self.fallback_a])
        return out

    def check(self, fc, address, count, values):
        if fc in (3, 4):
            if not (READ[0] <= address and address + count <= READ[0] + READ[1]):
                return ExcCodes.ILLEGAL_ADDRESS
            return None
        if fc == 16 and address == 0x4100 and len(values) == 2:
            ma = (int(values[0]) << 16) | int(values[1])
            if ma != 0 and not 6000 <= ma <= self.rated_ma:
                return ExcCodes.ILLEGAL_VALUE
            return None
        if fc in (6, 16) and address in WRITE and WRITE[address] == 1 and len(values) == 1:
            v = int(values[0])
            if address in (0x4103, 0x4105) and v not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            return None
        if fc in (6, 16):
            return ExcCodes.ILLEGAL_ADDRESS
        return ExcCodes.ILLEGAL_FUNCTION

    def write(self, fc, address, values):
        if address == 0x4100:
            self.limit_ma = (values[0] << 16) | values[1]
        elif address == 0x4103:
            self.locked = values[0] == 1
        elif address == 0x4105:
            self.stopped = values[0] == 1
        elif address == 0x4106:
            self.timeout_s = values[0]
        elif address == 0x4109:
            self.fallback_a = values[0]


if __name__ == "__main__":
    run(AbbTerraAc())
