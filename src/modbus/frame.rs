//! Modbus frames written by hand: the PDU of the functions the drivers use (FC 01, 03, 04, 05,
//! 06, 16), the RTU frame (address, PDU, CRC-16) and the ASCII frame (':' hex LRC CRLF).
//!
//! tokio-modbus has no ASCII framing, and the RS485 line ([`super::line`]) needs control over
//! timing and resynchronisation that its RTU client does not give, so both serial framings
//! live here, with no I/O. The simulators ([`crate::sim`]) use the server half (request
//! parsing, response encoding) for the ASCII line. Every decoder returns an error on bad input
//! and never panics.

use super::ModbusError;

/// A request the drivers send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// FC 0x01.
    ReadCoils(u16, u16),
    /// FC 0x03.
    ReadHolding(u16, u16),
    /// FC 0x04.
    ReadInput(u16, u16),
    /// FC 0x05.
    WriteCoil(u16, bool),
    /// FC 0x06.
    WriteSingle(u16, u16),
    /// FC 0x10.
    WriteMultiple(u16, Vec<u16>),
}

impl Request {
    /// The function code.
    pub const fn function(&self) -> u8 {
        match self {
            Self::ReadCoils(..) => 0x01,
            Self::ReadHolding(..) => 0x03,
            Self::ReadInput(..) => 0x04,
            Self::WriteCoil(..) => 0x05,
            Self::WriteSingle(..) => 0x06,
            Self::WriteMultiple(..) => 0x10,
        }
    }

    /// The PDU (function code and data).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.function()];
        match self {
            Self::ReadCoils(a, n) | Self::ReadHolding(a, n) | Self::ReadInput(a, n) => {
                out.extend(a.to_be_bytes());
                out.extend(n.to_be_bytes());
            }
            Self::WriteCoil(a, v) => {
                out.extend(a.to_be_bytes());
                out.extend(if *v { [0xFF, 0x00] } else { [0x00, 0x00] });
            }
            Self::WriteSingle(a, v) => {
                out.extend(a.to_be_bytes());
                out.extend(v.to_be_bytes());
            }
            Self::WriteMultiple(a, values) => {
                out.extend(a.to_be_bytes());
                let n = u16::try_from(values.len()).unwrap_or(u16::MAX);
                out.extend(n.to_be_bytes());
                out.push(u8::try_from(values.len().saturating_mul(2)).unwrap_or(u8::MAX));
                for v in values {
                    out.extend(v.to_be_bytes());
                }
            }
        }
        out
    }

    /// Parses a request PDU (server side). `Err(exception code)`: 1 unknown function,
    /// 3 malformed data.
    pub fn parse(pdu: &[u8]) -> Result<Self, u8> {
        let (&fc, rest) = pdu.split_first().ok_or(3u8)?;
        let word = |i: usize| -> Result<u16, u8> {
            match (rest.get(i), rest.get(i + 1)) {
                (Some(h), Some(l)) => Ok(u16::from_be_bytes([*h, *l])),
                _ => Err(3),
            }
        };
        match fc {
            0x01 | 0x03 | 0x04 => {
                let (a, n) = (word(0)?, word(2)?);
                let max = if fc == 0x01 { 2000 } else { 125 };
                if n == 0 || n > max || rest.len() != 4 {
                    return Err(3);
                }
                Ok(match fc {
                    0x01 => Self::ReadCoils(a, n),
                    0x03 => Self::ReadHolding(a, n),
                    _ => Self::ReadInput(a, n),
                })
            }
            0x05 => {
                let (a, v) = (word(0)?, word(2)?);
                match v {
                    0xFF00 => Ok(Self::WriteCoil(a, true)),
                    0x0000 => Ok(Self::WriteCoil(a, false)),
                    _ => Err(3),
                }
            }
            0x06 => Ok(Self::WriteSingle(word(0)?, word(2)?)),
            0x10 => {
                let (a, n) = (word(0)?, word(2)?);
                let bytes = rest.get(4).copied().ok_or(3u8)?;
                if n == 0 || n > 123 || usize::from(bytes) != usize::from(n) * 2 {
                    return Err(3);
                }
                let data = rest.get(5..).ok_or(3u8)?;
                if data.len() != usize::from(bytes) {
                    return Err(3);
                }
                let values = data
                    .chunks_exact(2)
                    .map(|c| match c {
                        [h, l] => u16::from_be_bytes([*h, *l]),
                        _ => 0,
                    })
                    .collect();
                Ok(Self::WriteMultiple(a, values))
            }
            _ => Err(1),
        }
    }
}

/// A decoded answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Register values (FC 03/04).
    Registers(Vec<u16>),
    /// Coil values, padded to whole bytes (FC 01).
    Coils(Vec<bool>),
    /// A write was acknowledged (FC 05/06/16).
    Written,
}

impl Response {
    /// The response PDU for `request` (server side).
    pub fn encode(&self, request: &Request) -> Vec<u8> {
        let fc = request.function();
        match (self, request) {
            (Self::Registers(values), _) => {
                let mut out = vec![fc, u8::try_from(values.len() * 2).unwrap_or(u8::MAX)];
                for v in values {
                    out.extend(v.to_be_bytes());
                }
                out
            }
            (Self::Coils(bits), _) => {
                let mut bytes = vec![0u8; bits.len().div_ceil(8)];
                for (i, bit) in bits.iter().enumerate() {
                    if *bit && let Some(b) = bytes.get_mut(i / 8) {
                        *b |= 1 << (i % 8);
                    }
                }
                let mut out = vec![fc, u8::try_from(bytes.len()).unwrap_or(u8::MAX)];
                out.extend(bytes);
                out
            }
            (Self::Written, Request::WriteMultiple(a, values)) => {
                let mut out = vec![fc];
                out.extend(a.to_be_bytes());
                out.extend(
                    u16::try_from(values.len())
                        .unwrap_or(u16::MAX)
                        .to_be_bytes(),
                );
                out
            }
            (Self::Written, _) => request.encode(),
        }
    }
}

/// An exception response PDU.
pub fn exception_pdu(function: u8, code: u8) -> Vec<u8> {
    vec![function | 0x80, code]
}

/// Decodes the response PDU to `request`, checking function, lengths and echoes.
pub fn decode_response(request: &Request, pdu: &[u8]) -> Result<Response, ModbusError> {
    let fc = request.function();
    let (&got, rest) = pdu
        .split_first()
        .ok_or_else(|| ModbusError::Malformed("empty answer".into()))?;
    if got == fc | 0x80 {
        return match rest {
            [code] => Err(ModbusError::Exception(*code)),
            _ => Err(ModbusError::Malformed("exception of wrong length".into())),
        };
    }
    if got != fc {
        return Err(ModbusError::Malformed(format!(
            "function 0x{got:02X} in the answer to 0x{fc:02X}"
        )));
    }
    match request {
        Request::ReadHolding(_, n) | Request::ReadInput(_, n) => {
            let (&count, data) = rest
                .split_first()
                .ok_or_else(|| ModbusError::Malformed("no byte count".into()))?;
            if usize::from(count) != data.len() || usize::from(count) != usize::from(*n) * 2 {
                return Err(ModbusError::Malformed(format!(
                    "{} data bytes (count {count}) for {n} registers",
                    data.len()
                )));
            }
            Ok(Response::Registers(
                data.chunks_exact(2)
                    .map(|c| match c {
                        [h, l] => u16::from_be_bytes([*h, *l]),
                        _ => 0,
                    })
                    .collect(),
            ))
        }
        Request::ReadCoils(_, n) => {
            let (&count, data) = rest
                .split_first()
                .ok_or_else(|| ModbusError::Malformed("no byte count".into()))?;
            if usize::from(count) != data.len() || data.len() != usize::from(*n).div_ceil(8) {
                return Err(ModbusError::Malformed(format!(
                    "{} coil bytes for {n} coils",
                    data.len()
                )));
            }
            Ok(Response::Coils(
                data.iter()
                    .flat_map(|b| (0..8).map(move |i| b & (1 << i) != 0))
                    .collect(),
            ))
        }
        Request::WriteCoil(..) | Request::WriteSingle(..) => {
            let sent = request.encode();
            if pdu == sent.as_slice() {
                Ok(Response::Written)
            } else {
                Err(ModbusError::Malformed("write echo differs".into()))
            }
        }
        Request::WriteMultiple(a, values) => {
            let mut want = vec![fc];
            want.extend(a.to_be_bytes());
            want.extend(
                u16::try_from(values.len())
                    .unwrap_or(u16::MAX)
                    .to_be_bytes(),
            );
            if pdu == want.as_slice() {
                Ok(Response::Written)
            } else {
                Err(ModbusError::Malformed("write-multiple echo differs".into()))
            }
        }
    }
}

/// The length of a complete RTU response frame (address to CRC), once enough of its start
/// is known: `Ok(None)` = need more bytes.
pub fn rtu_response_len(start: &[u8]) -> Result<Option<usize>, ModbusError> {
    match start {
        [_, fc, ..] if fc & 0x80 != 0 => Ok(Some(5)),
        [] | [_] | [_, 0x01..=0x04] => Ok(None),
        [_, 0x01..=0x04, count, ..] => Ok(Some(3 + usize::from(*count) + 2)),
        [_, 0x05 | 0x06 | 0x0F | 0x10, ..] => Ok(Some(8)),
        [_, fc, ..] => Err(ModbusError::Malformed(format!(
            "unknown function 0x{fc:02X} in an RTU answer"
        ))),
    }
}

/// The length of a complete RTU request frame (server side): `Ok(None)` = need more bytes.
pub fn rtu_request_len(start: &[u8]) -> Result<Option<usize>, u8> {
    match start {
        [_, 0x01..=0x06, ..] => Ok(Some(8)),
        [_, 0x10, _, _, _, _, bytes, ..] => Ok(Some(7 + usize::from(*bytes) + 2)),
        [] | [_] | [_, 0x10, ..] => Ok(None),
        _ => Err(1),
    }
}

/// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for b in data {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// An RTU frame: address, PDU, CRC (low byte first).
pub fn rtu_encode(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pdu.len() + 3);
    out.push(unit);
    out.extend_from_slice(pdu);
    let crc = crc16(&out);
    out.extend(crc.to_le_bytes());
    out
}

/// Checks an RTU frame's CRC; returns (address, PDU).
pub fn rtu_decode(frame: &[u8]) -> Result<(u8, &[u8]), ModbusError> {
    if frame.len() < 4 {
        return Err(ModbusError::Malformed(format!(
            "RTU frame of {} bytes",
            frame.len()
        )));
    }
    let (body, crc) = frame.split_at(frame.len() - 2);
    let got = match crc {
        [lo, hi] => u16::from_le_bytes([*lo, *hi]),
        _ => return Err(ModbusError::Malformed("no CRC".into())),
    };
    let want = crc16(body);
    if got != want {
        return Err(ModbusError::Malformed(format!(
            "CRC 0x{got:04X}, expected 0x{want:04X}"
        )));
    }
    match body.split_first() {
        Some((unit, pdu)) => Ok((*unit, pdu)),
        None => Err(ModbusError::Malformed("empty RTU frame".into())),
    }
}

/// LRC of Modbus ASCII: two's complement of the byte sum.
pub fn lrc(data: &[u8]) -> u8 {
    data.iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// An ASCII frame: ':' + upper-case hex of (address, PDU, LRC) + CR LF.
pub fn ascii_encode(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(pdu.len() + 2);
    body.push(unit);
    body.extend_from_slice(pdu);
    body.push(lrc(&body));
    let mut out = Vec::with_capacity(body.len() * 2 + 3);
    out.push(b':');
    for b in body {
        out.extend(format!("{b:02X}").bytes());
    }
    out.extend(b"\r\n");
    out
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes an ASCII frame (':' … CR LF, the colon and line end included); checks the LRC and
/// returns (address, PDU).
pub fn ascii_decode(frame: &[u8]) -> Result<(u8, Vec<u8>), ModbusError> {
    let inner = frame
        .strip_prefix(b":")
        .and_then(|f| f.strip_suffix(b"\r\n"))
        .ok_or_else(|| ModbusError::Malformed("ASCII frame without ':' or CR LF".into()))?;
    if inner.len() % 2 != 0 || inner.len() < 6 {
        return Err(ModbusError::Malformed(format!(
            "ASCII frame of {} hex digits",
            inner.len()
        )));
    }
    let mut bytes = Vec::with_capacity(inner.len() / 2);
    for pair in inner.chunks_exact(2) {
        match pair {
            [h, l] => match (hex_digit(*h), hex_digit(*l)) {
                (Some(h), Some(l)) => bytes.push(h << 4 | l),
                _ => return Err(ModbusError::Malformed("non-hex character".into())),
            },
            _ => return Err(ModbusError::Malformed("odd hex digits".into())),
        }
    }
    let (got, body) = bytes
        .split_last()
        .ok_or_else(|| ModbusError::Malformed("empty ASCII frame".into()))?;
    let want = lrc(body);
    if *got != want {
        return Err(ModbusError::Malformed(format!(
            "LRC 0x{got:02X}, expected 0x{want:02X}"
        )));
    }
    match body.split_first() {
        Some((unit, pdu)) => Ok((*unit, pdu.to_vec())),
        None => Err(ModbusError::Malformed("empty ASCII frame".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rtu_golden_vectors() {
        // Read holding registers 0x006B, 3 registers from unit 0x11 (Modbus spec example).
        let frame = rtu_encode(0x11, &Request::ReadHolding(0x006B, 3).encode());
        assert_eq!(frame, [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]);
        // Unit 1, read 2 holding registers at 0: 01 03 00 00 00 02 C4 0B.
        assert_eq!(
            rtu_encode(1, &Request::ReadHolding(0, 2).encode()),
            [0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B]
        );
        let (unit, pdu) = rtu_decode(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B]).unwrap();
        assert_eq!((unit, pdu), (1, &[0x03, 0x00, 0x00, 0x00, 0x02][..]));
        assert!(rtu_decode(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0C]).is_err());
    }

    #[test]
    fn ascii_golden_vectors() {
        // Modbus over serial line spec example: unit 0x11, FC 03, 0x006B, 3 registers, LRC 0x7E.
        let frame = ascii_encode(0x11, &Request::ReadHolding(0x006B, 3).encode());
        assert_eq!(frame, b":1103006B00037E\r\n");
        assert_eq!(
            ascii_decode(b":1103006B00037E\r\n").unwrap(),
            (0x11, vec![0x03, 0x00, 0x6B, 0x00, 0x03])
        );
        assert_eq!(
            ascii_decode(b":1103006b00037e\r\n").unwrap().0,
            0x11,
            "lower-case hex is accepted"
        );
        assert!(ascii_decode(b":1103006B00037F\r\n").is_err(), "bad LRC");
        assert!(ascii_decode(b":1103006B00037\r\n").is_err(), "odd digits");
        assert!(ascii_decode(b"1103006B00037E\r\n").is_err(), "no colon");
        assert!(ascii_decode(b":11G3006B00037E\r\n").is_err(), "not hex");
        assert!(ascii_decode(b":\r\n").is_err());
    }

    #[test]
    fn responses_decode_and_check() {
        let req = Request::ReadHolding(100, 2);
        assert_eq!(
            decode_response(&req, &[0x03, 0x04, 0x00, 0x01, 0x00, 0x02]),
            Ok(Response::Registers(vec![1, 2]))
        );
        assert_eq!(
            decode_response(&req, &[0x83, 0x02]),
            Err(ModbusError::Exception(2))
        );
        assert!(matches!(
            decode_response(&req, &[0x03, 0x02, 0x00, 0x01]),
            Err(ModbusError::Malformed(_))
        ));
        assert!(matches!(
            decode_response(&req, &[0x04, 0x04, 0, 1, 0, 2]),
            Err(ModbusError::Malformed(_))
        ));
        let w = Request::WriteMultiple(0x4100, vec![0, 16000]);
        assert_eq!(
            decode_response(&w, &[0x10, 0x41, 0x00, 0x00, 0x02]),
            Ok(Response::Written)
        );
        let c = Request::ReadCoils(400, 3);
        assert_eq!(
            decode_response(&c, &[0x01, 0x01, 0b101]),
            Ok(Response::Coils(vec![
                true, false, true, false, false, false, false, false
            ]))
        );
    }

    #[test]
    fn server_side_round_trip() {
        for req in [
            Request::ReadCoils(1, 9),
            Request::ReadHolding(0x4000, 8),
            Request::ReadInput(4, 15),
            Request::WriteCoil(400, true),
            Request::WriteSingle(5004, 16000),
            Request::WriteMultiple(1210, vec![0x4180, 0]),
        ] {
            assert_eq!(Request::parse(&req.encode()), Ok(req.clone()));
            let resp = match &req {
                Request::ReadHolding(_, n) | Request::ReadInput(_, n) => {
                    Response::Registers((0..*n).collect())
                }
                Request::ReadCoils(_, n) => Response::Coils((0..*n).map(|i| i % 2 == 0).collect()),
                _ => Response::Written,
            };
            let decoded = decode_response(&req, &resp.encode(&req)).unwrap();
            match (decoded, resp) {
                (Response::Coils(got), Response::Coils(want)) => {
                    assert_eq!(got.get(..want.len()), Some(want.as_slice()));
                }
                (got, want) => assert_eq!(got, want),
            }
        }
        assert_eq!(Request::parse(&[0x2B, 0x0E]), Err(1));
        assert_eq!(Request::parse(&[0x03, 0x00]), Err(3));
    }

    #[test]
    fn rtu_lengths() {
        assert_eq!(rtu_response_len(&[1]), Ok(None));
        assert_eq!(rtu_response_len(&[1, 0x83]), Ok(Some(5)));
        assert_eq!(rtu_response_len(&[1, 0x03]), Ok(None));
        assert_eq!(rtu_response_len(&[1, 0x03, 4]), Ok(Some(9)));
        assert_eq!(rtu_response_len(&[1, 0x10]), Ok(Some(8)));
        assert!(rtu_response_len(&[1, 0x42]).is_err());
        assert_eq!(rtu_request_len(&[1, 0x03]), Ok(Some(8)));
        assert_eq!(rtu_request_len(&[1, 0x10, 0, 0, 0, 2, 4]), Ok(Some(13)));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ascii_decode(&bytes);
            let _ = rtu_decode(&bytes);
            let _ = rtu_response_len(&bytes);
            let _ = rtu_request_len(&bytes);
            let _ = Request::parse(&bytes);
            for req in [Request::ReadHolding(0, 3), Request::ReadCoils(0, 9), Request::WriteSingle(1, 2), Request::WriteMultiple(1, vec![1, 2])] {
                let _ = decode_response(&req, &bytes);
            }
        }

        #[test]
        fn ascii_round_trips(unit: u8, pdu in proptest::collection::vec(any::<u8>(), 1..100)) {
            let frame = ascii_encode(unit, &pdu);
            prop_assert_eq!(ascii_decode(&frame).unwrap(), (unit, pdu.clone()));
            let rtu = rtu_encode(unit, &pdu);
            let (u, p) = rtu_decode(&rtu).unwrap();
            prop_assert_eq!((u, p.to_vec()), (unit, pdu));
        }
    }
}
