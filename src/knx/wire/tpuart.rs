//! TP1 frames and the TP-UART host protocol bytes, parsed and emitted without panics.
//!
//! This module owns two byte layouts (source: `docs/knx-wire.md` §5, which
//! took them from thelsing/knx `tpuart_data_link_layer.cpp`/`tp_frame.h` and knxd
//! `tpuart.cpp`; KNX 03.02.02 TP1 communication medium):
//!
//! * the **TP1 frame** as it appears on the bus and on the TP-UART's serial line
//!   ([`TpFrame`]):
//!   - standard: `CTRL SRC SRC DST DST NPCI TPCI APCI… CS`, NPCI = address type (bit 7),
//!     hop count (bits 6–4), length (bits 3–0);
//!   - extended: `CTRL CTRLE SRC SRC DST DST LEN TPCI APCI… CS`, CTRLE = address type,
//!     hop count, extended frame format;
//!   - CTRL = `F0R1PP00` (F 1 = standard, R 0 = repeated, PP priority); the checksum is the
//!     bitwise NOT of the XOR of all preceding bytes;
//! * the **TP-UART host services**: requests the host sends ([`HostRequest`], including the
//!   `80|i byte … 40|i CS` transmit encoding) and the single bytes the chip sends when no
//!   frame is in progress ([`ChipByte`]).
//!
//! This module must not own timing (the 2–2.5 ms end-of-frame gap, the ACK deadline) or the
//! serial port; the driver that does lives elsewhere.

use std::fmt;

use super::apdu::{ApduError, Tpdu};
use super::cemi::{Destination, FrameFormat, LData, LDataService, Priority};
use super::{Reader, Writer};
use crate::knx::address::{GroupAddress, IndividualAddress};

/// Why a TP1 frame or host request could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TpUartError {
    /// The buffer ends before the frame does.
    #[error("TP1 frame truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Bytes follow the checksum.
    #[error("TP1 frame has {0} trailing bytes")]
    Trailing(usize),
    /// The control byte is not a data frame's (`F0R1PP00`).
    #[error("control byte {0:#04x} is not an L_Data frame")]
    Control(u8),
    /// The checksum does not match.
    #[error("checksum {found:#04x}, expected {expected:#04x}")]
    Checksum {
        /// The checksum in the frame.
        found: u8,
        /// The computed checksum.
        expected: u8,
    },
    /// A standard frame has a nonzero extended frame format (emit only).
    #[error("field `{0}` out of range")]
    Field(&'static str),
    /// Length 255 in an extended frame is reserved.
    #[error("length 255 is reserved")]
    LengthEscape,
    /// The TPDU is malformed.
    #[error("TPDU: {0}")]
    Tpdu(#[from] ApduError),
    /// A frame longer than 64 bytes needs U_L_DataOffset, which is not supported.
    #[error("frame of {0} bytes is too long for the TP-UART transmit encoding (max 64)")]
    TooLongToSend(usize),
    /// The output buffer is too small (emit only).
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

/// The TP1 checksum: bitwise NOT of the XOR of `bytes`.
pub fn checksum(bytes: &[u8]) -> u8 {
    !bytes.iter().fold(0u8, |acc, b| acc ^ b)
}

/// A TP1 L_Data frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TpFrame {
    /// Standard or extended frame.
    pub frame_format: FrameFormat,
    /// True when this is a repetition (CTRL bit 5 clear).
    pub repeated: bool,
    /// Priority.
    pub priority: Priority,
    /// Source individual address.
    pub source: IndividualAddress,
    /// Destination (its type is bit 7 of NPCI/CTRLE).
    pub destination: Destination,
    /// Hop count, 0..=7.
    pub hop_count: u8,
    /// Extended frame format, 0..=15 (extended frames only; must be 0 in standard frames).
    pub extended_frame_format: u8,
    /// Transport-layer PDU.
    pub tpdu: Tpdu,
}

impl TpFrame {
    /// The total length of the frame that starts with `prefix`, once enough bytes have arrived
    /// to tell (6 for a standard frame, 7 for an extended one); `None` before that or when
    /// the first byte is not an L_Data control byte.
    pub fn expected_len(prefix: &[u8]) -> Option<usize> {
        let (&ctrl, _) = prefix.split_first()?;
        match ctrl & 0xD3 {
            0x90 => prefix.get(5).map(|npci| 8 + usize::from(npci & 0x0F)),
            0x10 => prefix.get(6).map(|len| 9 + usize::from(*len)),
            _ => None,
        }
    }

    /// Parses one complete frame including its checksum.
    pub fn parse(bytes: &[u8]) -> Result<Self, TpUartError> {
        let available = bytes.len();
        let truncated = |needed| TpUartError::Truncated { needed, available };
        let mut r = Reader::new(bytes);
        let ctrl = r.u8().ok_or(truncated(1))?;
        let frame_format = match ctrl & 0xD3 {
            0x90 => FrameFormat::Standard,
            0x10 => FrameFormat::Extended,
            _ => return Err(TpUartError::Control(ctrl)),
        };
        let (addr_byte, source, destination, len) = match frame_format {
            FrameFormat::Standard => {
                let [s0, s1, d0, d1, npci] = r.array::<5>().ok_or(truncated(7))?;
                let source = u16::from_be_bytes([s0, s1]);
                (npci, source, u16::from_be_bytes([d0, d1]), npci & 0x0F)
            }
            FrameFormat::Extended => {
                let [ctrle, s0, s1, d0, d1, len] = r.array::<6>().ok_or(truncated(8))?;
                if len == 0xFF {
                    return Err(TpUartError::LengthEscape);
                }
                (
                    ctrle,
                    u16::from_be_bytes([s0, s1]),
                    u16::from_be_bytes([d0, d1]),
                    len,
                )
            }
        };
        let header_len = bytes.len() - r.rest_len();
        let total = header_len + usize::from(len) + 2;
        let tpdu = r.take(usize::from(len) + 1).ok_or(truncated(total))?;
        let found = r.u8().ok_or(truncated(total))?;
        let trailing = r.rest_len();
        if trailing != 0 {
            return Err(TpUartError::Trailing(trailing));
        }
        let expected = checksum(bytes.get(..total - 1).unwrap_or(&[]));
        if found != expected {
            return Err(TpUartError::Checksum { found, expected });
        }
        let destination = if addr_byte & 0x80 != 0 {
            Destination::Group(GroupAddress::from_raw(destination))
        } else {
            Destination::Individual(IndividualAddress::from_raw(destination))
        };
        Ok(Self {
            frame_format,
            repeated: ctrl & 0x20 == 0,
            priority: Priority::from_bits(ctrl >> 2),
            source: IndividualAddress::from_raw(source),
            destination,
            hop_count: (addr_byte >> 4) & 0x07,
            extended_frame_format: match frame_format {
                FrameFormat::Standard => 0,
                FrameFormat::Extended => addr_byte & 0x0F,
            },
            tpdu: Tpdu::parse(tpdu)?,
        })
    }

    /// Number of bytes [`TpFrame::emit`] writes (checksum included).
    pub fn buffer_len(&self) -> usize {
        let header = match self.frame_format {
            FrameFormat::Standard => 6,
            FrameFormat::Extended => 7,
        };
        header + self.tpdu.buffer_len() + 1
    }

    /// The control byte as emitted.
    pub fn control(&self) -> u8 {
        let standard = if self.frame_format == FrameFormat::Standard {
            0x80
        } else {
            0
        };
        let not_repeated = if self.repeated { 0 } else { 0x20 };
        standard | not_repeated | 0x10 | (self.priority.bits() << 2)
    }

    /// Writes the frame with its checksum into `buf`; returns the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, TpUartError> {
        if self.hop_count > 7 {
            return Err(TpUartError::Field("hop_count"));
        }
        let max_len = match self.frame_format {
            FrameFormat::Standard if self.extended_frame_format != 0 => {
                return Err(TpUartError::Field("extended_frame_format"));
            }
            FrameFormat::Standard => 15,
            FrameFormat::Extended if self.extended_frame_format > 0x0F => {
                return Err(TpUartError::Field("extended_frame_format"));
            }
            FrameFormat::Extended => 254,
        };
        let len = u8::try_from(self.tpdu.buffer_len() - 1)
            .ok()
            .filter(|len| *len <= max_len)
            .ok_or(TpUartError::Field("tpdu length"))?;
        let needed = self.buffer_len();
        let available = buf.len();
        let too_small = TpUartError::BufferTooSmall { needed, available };
        let group = if self.destination.is_group() { 0x80 } else { 0 };
        let addr_bits = group | (self.hop_count << 4);
        {
            let mut w = Writer::new(buf);
            let header = (|| {
                w.u8(self.control())?;
                if self.frame_format == FrameFormat::Extended {
                    w.u8(addr_bits | self.extended_frame_format)?;
                }
                w.u16(self.source.raw())?;
                w.u16(self.destination.raw())?;
                match self.frame_format {
                    FrameFormat::Standard => w.u8(addr_bits | len),
                    FrameFormat::Extended => w.u8(len),
                }
            })();
            header.ok_or(too_small)?;
            let target = w.reserve(self.tpdu.buffer_len()).ok_or(too_small)?;
            self.tpdu.emit(target)?;
            w.reserve(1).ok_or(too_small)?;
        }
        let body = buf.get(..needed - 1).ok_or(too_small)?;
        let cs = checksum(body);
        let last = buf.get_mut(needed - 1).ok_or(too_small)?;
        *last = cs;
        Ok(needed)
    }

    /// The emitted bytes as a vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TpUartError> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf)?;
        Ok(buf)
    }

    /// The frame as a cEMI L_Data message of the given service (no additional info, no ack
    /// request, normal broadcast).
    pub fn to_ldata(&self, service: LDataService) -> LData {
        let mut ldata = LData::new(service, self.source, self.destination, self.tpdu.clone());
        ldata.frame_format = self.frame_format;
        ldata.do_not_repeat = !self.repeated;
        ldata.priority = self.priority;
        ldata.hop_count = self.hop_count;
        ldata.extended_frame_format = self.extended_frame_format;
        ldata
    }

    /// The TP1 frame for a cEMI L_Data message (additional info, ack request, confirm and
    /// system-broadcast flags have no TP1 equivalent and are dropped).
    pub fn from_ldata(ldata: &LData) -> Self {
        Self {
            frame_format: ldata.frame_format,
            repeated: !ldata.do_not_repeat,
            priority: ldata.priority,
            source: ldata.source,
            destination: ldata.destination,
            hop_count: ldata.hop_count,
            extended_frame_format: match ldata.frame_format {
                FrameFormat::Standard => 0,
                FrameFormat::Extended => ldata.extended_frame_format,
            },
            tpdu: ldata.tpdu.clone(),
        }
    }
}

impl fmt::Display for TpFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TP1 {} -> {} {} hops {}",
            self.source, self.destination, self.priority, self.hop_count
        )?;
        if self.repeated {
            f.write_str(" repeated")?;
        }
        write!(f, ": {}", self.tpdu)
    }
}

/// A request from the host to the TP-UART (TP-UART2 codes; NCN5120 differs for SetAddress).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostRequest {
    /// U_Reset.req `01`.
    Reset,
    /// U_State.req `02`.
    State,
    /// U_Busmon.req `05`: enter bus-monitor mode.
    ActivateBusmon,
    /// U_AckInformation `10 | 04 NACK | 02 BUSY | 01 ADDRESSED`.
    AckInformation {
        /// Answer NACK.
        nack: bool,
        /// Answer BUSY.
        busy: bool,
        /// The frame is addressed to us (send ACK).
        addressed: bool,
    },
    /// U_ProductID.req `20` (TP-UART2).
    ProductId,
    /// U_SetAddress `28 hh ll` (TP-UART2): the chip then ACKs frames to this address itself.
    SetAddress(IndividualAddress),
}

impl HostRequest {
    /// The bytes to send.
    pub fn to_bytes(self) -> Vec<u8> {
        match self {
            Self::Reset => vec![0x01],
            Self::State => vec![0x02],
            Self::ActivateBusmon => vec![0x05],
            Self::AckInformation {
                nack,
                busy,
                addressed,
            } => vec![0x10 | (u8::from(nack) << 2) | (u8::from(busy) << 1) | u8::from(addressed)],
            Self::ProductId => vec![0x20],
            Self::SetAddress(ia) => {
                let [hi, lo] = ia.raw().to_be_bytes();
                vec![0x28, hi, lo]
            }
        }
    }
}

/// Encodes a complete TP1 frame (checksum included) for transmission through the TP-UART:
/// every byte *i* is preceded by `80 | i`, the last one (the checksum) by `40 | i`.
/// Frames longer than 64 bytes need U_L_DataOffset and are refused.
pub fn encode_transmit(frame: &[u8]) -> Result<Vec<u8>, TpUartError> {
    if frame.len() > 64 {
        return Err(TpUartError::TooLongToSend(frame.len()));
    }
    let last = frame.len().saturating_sub(1);
    let mut out = Vec::with_capacity(frame.len() * 2);
    for (i, byte) in frame.iter().enumerate() {
        let index = u8::try_from(i).map_err(|_| TpUartError::TooLongToSend(frame.len()))? & 0x3F;
        out.push(if i == last {
            0x40 | index
        } else {
            0x80 | index
        });
        out.push(*byte);
    }
    Ok(out)
}

/// A byte from the TP-UART received while no frame is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChipByte {
    /// U_Reset.ind `03`.
    ResetInd,
    /// U_State.ind `xxxxx111`; the upper five bits are error flags (`80` slave collision,
    /// `40` receive error, `20` transmit error, `10` protocol error, `08` temperature warning).
    StateInd(u8),
    /// L_Data.con positive `8B`.
    DataConfirmPositive,
    /// L_Data.con negative `0B`.
    DataConfirmNegative,
    /// Start of a standard L_Data frame (`10x1xx00`).
    StandardFrameStart(u8),
    /// Start of an extended L_Data frame (`00x1xx00`).
    ExtendedFrameStart(u8),
    /// L_Poll_Data.ind `F0`.
    PollDataInd,
    /// A layer-2 ACK seen on the bus `CC`.
    Ack,
    /// A layer-2 NACK seen on the bus `0C`.
    Nack,
    /// A layer-2 BUSY seen on the bus `C0`.
    Busy,
    /// Anything else (chip-specific indications).
    Other(u8),
}

impl ChipByte {
    /// Classifies the first byte of a chip message.
    pub const fn classify(byte: u8) -> Self {
        match byte {
            0x03 => Self::ResetInd,
            0x8B => Self::DataConfirmPositive,
            0x0B => Self::DataConfirmNegative,
            0xF0 => Self::PollDataInd,
            0xCC => Self::Ack,
            0x0C => Self::Nack,
            0xC0 => Self::Busy,
            b if b & 0xD3 == 0x90 => Self::StandardFrameStart(b),
            b if b & 0xD3 == 0x10 => Self::ExtendedFrameStart(b),
            b if b & 0x07 == 0x07 => Self::StateInd(b),
            b => Self::Other(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knx::wire::apdu::tests::arb_tpdu;
    use crate::knx::wire::apdu::{Apdu, Payload};
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// 1.1.10 writes "on" to 1/2/3 on TP1 (the TP1 twin of the cEMI golden vector).
    const GROUP_WRITE_TP1: [u8; 9] = [
        0xBC, // CTRL 1011 1100: standard, not repeated, low priority
        0x11, 0x0A, // source 1.1.10
        0x0A, 0x03, // destination 1/2/3
        0xE1, // NPCI: group, hop count 6, length 1
        0x00, 0x81, // T_Data_Group, GroupValue_Write 1
        0x31, // checksum: NOT(BC^11^0A^0A^03^E1^00^81) = NOT(CE) = 31
    ];

    #[test]
    fn group_write_frame() {
        let frame = TpFrame::parse(&GROUP_WRITE_TP1).unwrap();
        assert_eq!(frame.frame_format, FrameFormat::Standard);
        assert!(!frame.repeated);
        assert_eq!(
            frame.tpdu,
            Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1)))
        );
        assert_eq!(frame.to_bytes().unwrap(), GROUP_WRITE_TP1);
        assert_eq!(TpFrame::expected_len(&GROUP_WRITE_TP1[..6]), Some(9));
        assert_eq!(TpFrame::expected_len(&GROUP_WRITE_TP1[..5]), None);
        // cEMI conversion gives exactly the cEMI golden vector.
        let cemi = crate::knx::wire::cemi::Cemi::LData(frame.to_ldata(LDataService::Ind));
        assert_eq!(
            cemi.to_bytes().unwrap(),
            crate::knx::wire::cemi::tests::GROUP_WRITE_IND
        );
        let crate::knx::wire::cemi::Cemi::LData(ldata) = cemi else {
            unreachable!()
        };
        assert_eq!(TpFrame::from_ldata(&ldata), frame);
    }

    #[test]
    fn frame_errors() {
        let mut bad = GROUP_WRITE_TP1;
        bad[8] ^= 1;
        assert_eq!(
            TpFrame::parse(&bad),
            Err(TpUartError::Checksum {
                found: 0x30,
                expected: 0x31
            })
        );
        assert!(matches!(
            TpFrame::parse(&GROUP_WRITE_TP1[..8]),
            Err(TpUartError::Truncated { .. })
        ));
        assert_eq!(TpFrame::parse(&[0xCC]), Err(TpUartError::Control(0xCC)));
        let mut long = GROUP_WRITE_TP1.to_vec();
        long.push(0);
        assert_eq!(TpFrame::parse(&long), Err(TpUartError::Trailing(1)));
    }

    #[test]
    fn transmit_encoding() {
        let encoded = encode_transmit(&GROUP_WRITE_TP1).unwrap();
        assert_eq!(&encoded[..4], &[0x80, 0xBC, 0x81, 0x11]);
        assert_eq!(&encoded[encoded.len() - 2..], &[0x48, 0x31]);
        assert!(encode_transmit(&[0; 65]).is_err());
        assert_eq!(
            HostRequest::SetAddress(IndividualAddress::from_raw(0x110A)).to_bytes(),
            [0x28, 0x11, 0x0A]
        );
        assert_eq!(
            HostRequest::AckInformation {
                nack: false,
                busy: false,
                addressed: true
            }
            .to_bytes(),
            [0x11]
        );
    }

    #[test]
    fn chip_bytes() {
        assert_eq!(ChipByte::classify(0x03), ChipByte::ResetInd);
        assert_eq!(ChipByte::classify(0x07), ChipByte::StateInd(0x07));
        assert_eq!(ChipByte::classify(0x8B), ChipByte::DataConfirmPositive);
        assert_eq!(ChipByte::classify(0x0B), ChipByte::DataConfirmNegative);
        assert_eq!(ChipByte::classify(0xBC), ChipByte::StandardFrameStart(0xBC));
        assert_eq!(ChipByte::classify(0xB0), ChipByte::StandardFrameStart(0xB0));
        assert_eq!(ChipByte::classify(0x3C), ChipByte::ExtendedFrameStart(0x3C));
        assert_eq!(ChipByte::classify(0xCC), ChipByte::Ack);
        assert_eq!(ChipByte::classify(0xF0), ChipByte::PollDataInd);
    }

    fn arb_frame() -> impl Strategy<Value = TpFrame> {
        (
            any::<bool>(),
            any::<bool>(),
            0u8..4,
            any::<u16>(),
            any::<(bool, u16)>(),
            0u8..8,
            0u8..16,
            arb_tpdu(),
        )
            .prop_map(
                |(ext, repeated, prio, src, (group, dst), hops, eff, tpdu)| {
                    let extended = ext || tpdu.buffer_len() > 16;
                    TpFrame {
                        frame_format: if extended {
                            FrameFormat::Extended
                        } else {
                            FrameFormat::Standard
                        },
                        repeated,
                        priority: Priority::from_bits(prio),
                        source: IndividualAddress::from_raw(src),
                        destination: if group {
                            Destination::Group(GroupAddress::from_raw(dst))
                        } else {
                            Destination::Individual(IndividualAddress::from_raw(dst))
                        },
                        hop_count: hops,
                        extended_frame_format: if extended { eff } else { 0 },
                        tpdu,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn tp_round_trip(frame in arb_frame()) {
            let bytes = frame.to_bytes().unwrap();
            prop_assert_eq!(TpFrame::expected_len(&bytes), Some(bytes.len()));
            prop_assert_eq!(TpFrame::parse(&bytes).unwrap(), frame);
        }

        #[test]
        fn tp_parse_arbitrary_bytes(bytes in vec(any::<u8>(), 0..40)) {
            let _ = TpFrame::expected_len(&bytes);
            if let Ok(frame) = TpFrame::parse(&bytes) {
                prop_assert_eq!(frame.to_bytes().unwrap(), bytes);
                let _ = frame.to_string();
            }
        }

        #[test]
        fn tp_parse_frames_with_valid_checksum(body in vec(any::<u8>(), 0..30)) {
            // Arbitrary bodies with a correct checksum reach the TPDU parser.
            let mut bytes = body.clone();
            bytes.push(checksum(&body));
            if let Ok(frame) = TpFrame::parse(&bytes) {
                prop_assert_eq!(frame.to_bytes().unwrap(), bytes);
            }
        }
    }
}
