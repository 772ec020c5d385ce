"""Carlo Gavazzi EM24_E1 (Ethernet) energy analyser, Modbus TCP simulator, written from the
manufacturer's protocol document.

Source: Carlo Gavazzi "EM24_E1 (Ethernet) COMMUNICATION PROTOCOL", version 0 revision 1.2:
its Modbus function list (function codes 0x03 and 0x04 read the same registers; data are
INT32 with the **least significant word first**) and its instantaneous-variables and meters
tables (section numbers not re-checked; the table values were read through the project's
reference §11b, which cites the document and the Tinkerforge/openWB/evcc transcriptions).
Register addresses are the document's hexadecimal "physical addresses" (= wire addresses).

  0x0000/02/04  V L1-N / L2-N / L3-N   INT32  0.1 V
  0x0006/08/0A  V L1-L2 / L2-L3 / L3-L1 INT32 0.1 V
  0x000C/0E/10  A L1 / L2 / L3          INT32  0.001 A
  0x0012/14/16  W L1 / L2 / L3          INT32  0.1 W
  0x0018..0x0027 VA and var L1..L3 (served as 0)
  0x0028        W sum                   INT32  0.1 W
  0x002A..0x0033 VA/var sum, PF, ...    (served as 0)
  0x0033        Hz                      INT16  0.1 Hz
  0x0034        kWh (+) TOT             INT32  0.1 kWh   (EM24-DIN: 0x003E)
  0x0036..0x004D further meters (served as 0)
  0x004E        kWh (-) TOT             INT32  0.1 kWh   (EM24-DIN: 0x005C)

Registers 0x0000..0x004F are served; anything else answers exception 0x02. Unit id 1 by
default (``--unit``).

State the test can set: i1 i2 i3 (A), p1 p2 p3 (W), kwh_import, kwh_export, volts, hz.
"""

from __future__ import annotations

from pymodbus_common import ExcCodes, Model, put, regs, run, u32_le


class Em24Ethernet(Model):
    """Carlo Gavazzi EM24_E1 Modbus TCP simulator."""

    unit = 1

    def __init__(self) -> None:
        self.i1 = 0.0
        self.i2 = 0.0
        self.i3 = 0.0
        self.p1 = 0.0
        self.p2 = 0.0
        self.p3 = 0.0
        self.kwh_import = 0.0
        self.kwh_export = 0.0
        self.volts = 230.0
        self.hz = 50.0

    def blocks(self):
        return [regs(0x0000, 0x50)]

    def render(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for k, v in enumerate([self.volts] * 3):
            put(out, 0x0000 + 2 * k, u32_le(round(v * 10)))
        for k, v in enumerate([self.volts * 1.732] * 3):
            put(out, 0x0006 + 2 * k, u32_le(round(v * 10)))
        for k, v in enumerate([self.i1, self.i2, self.i3]):
            put(out, 0x000C + 2 * k, u32_le(round(v * 1000)))
        for k, v in enumerate([self.p1, self.p2, self.p3]):
            put(out, 0x0012 + 2 * k, u32_le(round(v * 10)))
        put(out, 0x0028, u32_le(round((self.p1 + self.p2 + self.p3) * 10)))
        out[0x0033] = round(self.hz * 10)
        put(out, 0x0034, u32_le(round(self.kwh_import * 10)))
        put(out, 0x004E, u32_le(round(self.kwh_export * 10)))
        return out

    def check(self, fc, address, count, values):
        # A meter: read only.
        return None if fc in (3, 4) else ExcCodes.ILLEGAL_FUNCTION


if __name__ == "__main__":
    run(Em24Ethernet())
