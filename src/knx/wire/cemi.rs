//! cEMI (common External Message Interface) frames: the KNX telegram as carried inside
//! KNXnet/IP tunnelling and routing, parsed and emitted without panics.
//!
//! This module owns the cEMI byte layout (KNX 03.06.03 EMI/IMI §4.1.4–4.1.5):
//!
//! ```text
//! code | add-info len | add-info… | ctrl1 | ctrl2 | src hi lo | dst hi lo | len | TPCI APCI data…
//! ```
//!
//! * message codes L_Data.req `0x11`, L_Data.con `0x2E`, L_Data.ind `0x29` (plus the other
//!   codes of 03.06.03 §4.1.3 for logging; their bodies are kept raw);
//! * ctrl1: bit 7 frame type (1 = standard), bit 6 reserved (0), bit 5 repeat (1 = do not
//!   repeat), bit 4 broadcast (0 = system broadcast), bits 3–2 priority, bit 1 ack request,
//!   bit 0 confirm (1 = error);
//! * ctrl2: bit 7 destination address type (1 = group), bits 6–4 hop count, bits 3–0
//!   extended frame format;
//! * `len` is the NPDU length: the number of TPDU octets *after* the TPCI octet
//!   (≤ 15 in a standard frame, ≤ 254 in an extended frame; 255 is reserved).
//!
//! [`CemiPacket`] is the zero-copy view, [`Cemi`]/[`LData`] the representation. The TPDU is
//! decoded by [`super::apdu`]. This module must not route, filter or answer frames.

use std::fmt;

use super::apdu::{ApduError, Tpdu};
use super::{Reader, Writer, fmt_hex};
use crate::knx::address::{GroupAddress, IndividualAddress};

code_enum! {
    /// cEMI message code (03.06.03 §4.1.3).
    pub enum MessageCode: u8 {
        /// L_Data.req: a frame to send.
        LDataReq = 0x11 => "L_Data.req",
        /// L_Data.con: confirmation of a sent frame.
        LDataCon = 0x2E => "L_Data.con",
        /// L_Data.ind: a received frame.
        LDataInd = 0x29 => "L_Data.ind",
        /// L_Busmon.ind: a raw frame seen in bus-monitor mode.
        LBusmonInd = 0x2B => "L_Busmon.ind",
        /// L_Raw.req.
        LRawReq = 0x10 => "L_Raw.req",
        /// L_Raw.ind.
        LRawInd = 0x2D => "L_Raw.ind",
        /// L_Raw.con.
        LRawCon = 0x2F => "L_Raw.con",
        /// L_Poll_Data.req.
        LPollDataReq = 0x13 => "L_Poll_Data.req",
        /// L_Poll_Data.con.
        LPollDataCon = 0x25 => "L_Poll_Data.con",
        /// M_PropRead.req (local device management).
        MPropReadReq = 0xFC => "M_PropRead.req",
        /// M_PropRead.con.
        MPropReadCon = 0xFB => "M_PropRead.con",
        /// M_PropWrite.req.
        MPropWriteReq = 0xF6 => "M_PropWrite.req",
        /// M_PropWrite.con.
        MPropWriteCon = 0xF5 => "M_PropWrite.con",
        /// M_PropInfo.ind.
        MPropInfoInd = 0xF7 => "M_PropInfo.ind",
        /// M_FuncPropCommand.req.
        MFuncPropCommandReq = 0xF8 => "M_FuncPropCommand.req",
        /// M_FuncPropStateRead.req.
        MFuncPropStateReadReq = 0xF9 => "M_FuncPropStateRead.req",
        /// M_FuncPropCommand.con / M_FuncPropStateRead.con.
        MFuncPropCon = 0xFA => "M_FuncPropCommand.con",
        /// M_Reset.req.
        MResetReq = 0xF1 => "M_Reset.req",
        /// M_Reset.ind.
        MResetInd = 0xF0 => "M_Reset.ind",
    }
}

/// Why a cEMI frame could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CemiError {
    /// The buffer is empty.
    #[error("empty cEMI frame")]
    Empty,
    /// The buffer ends before a field that must be present.
    #[error("cEMI frame truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The NPDU length field disagrees with the number of TPDU bytes in the buffer.
    #[error("NPDU length {declared} but {actual} TPDU bytes follow the TPCI")]
    Length {
        /// The length field.
        declared: u8,
        /// Bytes actually present after the TPCI octet.
        actual: usize,
    },
    /// Control field 1 has its reserved bit 6 set.
    #[error("reserved bit set in control field 1 ({0:#04x})")]
    ReservedControl(u8),
    /// A standard frame carries more than 15 octets after the TPCI.
    #[error("standard frame with NPDU length {0} (max 15)")]
    StandardTooLong(u8),
    /// NPDU length 255 is reserved (escape).
    #[error("NPDU length 255 is reserved")]
    LengthEscape,
    /// The TPDU is malformed.
    #[error("TPDU: {0}")]
    Tpdu(#[from] ApduError),
    /// A representation field is out of range (emit only).
    #[error("field `{0}` out of range")]
    Field(&'static str),
    /// [`Cemi::Other`] with an L_Data message code (emit only; use [`Cemi::LData`]).
    #[error("message code {0:#04x} must be emitted as L_Data")]
    LDataCode(u8),
    /// The output buffer is too small (emit only).
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

/// Which L_Data service a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LDataService {
    /// L_Data.req (`0x11`).
    Req,
    /// L_Data.con (`0x2E`).
    Con,
    /// L_Data.ind (`0x29`).
    Ind,
}

impl LDataService {
    /// The message code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Req => 0x11,
            Self::Con => 0x2E,
            Self::Ind => 0x29,
        }
    }

    /// The service for an L_Data message code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0x11 => Some(Self::Req),
            0x2E => Some(Self::Con),
            0x29 => Some(Self::Ind),
            _ => None,
        }
    }
}

/// Standard or extended frame (ctrl1 bit 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameFormat {
    /// Standard frame: at most 15 octets after the TPCI.
    Standard,
    /// Extended frame: at most 254 octets after the TPCI.
    Extended,
}

impl FrameFormat {
    /// Largest NPDU length (octets after the TPCI) of the format.
    pub const fn max_npdu_len(self) -> u8 {
        match self {
            Self::Standard => 15,
            Self::Extended => 254,
        }
    }
}

/// Frame priority (ctrl1 bits 3–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// `00` system.
    System,
    /// `01` normal.
    Normal,
    /// `10` urgent.
    Urgent,
    /// `11` low (the usual priority of group telegrams).
    Low,
}

impl Priority {
    /// The priority from its two bits.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => Self::System,
            1 => Self::Normal,
            2 => Self::Urgent,
            _ => Self::Low,
        }
    }

    /// The two bits of the priority.
    pub const fn bits(self) -> u8 {
        match self {
            Self::System => 0,
            Self::Normal => 1,
            Self::Urgent => 2,
            Self::Low => 3,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::System => "system",
            Self::Normal => "normal",
            Self::Urgent => "urgent",
            Self::Low => "low",
        })
    }
}

/// Destination of a frame: group or individual address (ctrl2 bit 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A group address (multicast; 0/0/0 is broadcast).
    Group(GroupAddress),
    /// An individual address (point-to-point).
    Individual(IndividualAddress),
}

impl Destination {
    /// The raw 16-bit address.
    pub const fn raw(self) -> u16 {
        match self {
            Self::Group(ga) => ga.raw(),
            Self::Individual(ia) => ia.raw(),
        }
    }

    /// True for a group address.
    pub const fn is_group(self) -> bool {
        matches!(self, Self::Group(_))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group(ga) => write!(f, "{ga}"),
            Self::Individual(ia) => write!(f, "{ia}"),
        }
    }
}

/// Offset of ctrl1 relative to the end of the additional info.
const LDATA_HEADER_LEN: usize = 7;

/// A zero-copy view of a cEMI frame.
///
/// [`CemiPacket::new_checked`] validates the additional-info length and, for L_Data frames,
/// the header and NPDU length, so the accessors never panic. The L_Data accessors return
/// meaningful values only when [`CemiPacket::is_ldata`] is true (zero otherwise).
#[derive(Debug, Clone)]
pub struct CemiPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> CemiPacket<T> {
    /// Wraps a buffer without checking it (accessors still never panic, but may return
    /// zeros for missing fields).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking its lengths.
    pub fn new_checked(buffer: T) -> Result<Self, CemiError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the lengths: the additional info must fit, and an L_Data frame must have its
    /// full header and exactly `len + 1` TPDU bytes.
    pub fn check_len(&self) -> Result<(), CemiError> {
        let bytes = self.buffer.as_ref();
        let available = bytes.len();
        let mut r = Reader::new(bytes);
        let code = r.u8().ok_or(CemiError::Empty)?;
        if LDataService::from_code(code).is_none() {
            return Ok(());
        }
        let info_len = r.u8().ok_or(CemiError::Truncated {
            needed: 2,
            available,
        })?;
        let header_end = 2 + usize::from(info_len) + LDATA_HEADER_LEN;
        r.take(usize::from(info_len)).ok_or(CemiError::Truncated {
            needed: 2 + usize::from(info_len),
            available,
        })?;
        let [_, _, _, _, _, _, npdu_len] =
            r.array::<LDATA_HEADER_LEN>().ok_or(CemiError::Truncated {
                needed: header_end + 1,
                available,
            })?;
        let tpdu = r.rest();
        if npdu_len == 0xFF {
            return Err(CemiError::LengthEscape);
        }
        if tpdu.is_empty() {
            return Err(CemiError::Truncated {
                needed: header_end + 1,
                available,
            });
        }
        if tpdu.len() != usize::from(npdu_len) + 1 {
            return Err(CemiError::Length {
                declared: npdu_len,
                actual: tpdu.len() - 1,
            });
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, index: usize) -> u8 {
        self.buffer.as_ref().get(index).copied().unwrap_or(0)
    }

    /// The message code.
    pub fn message_code(&self) -> MessageCode {
        MessageCode::from(self.byte(0))
    }

    /// True for L_Data.req/con/ind.
    pub fn is_ldata(&self) -> bool {
        LDataService::from_code(self.byte(0)).is_some()
    }

    /// Everything after the message code.
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(1..).unwrap_or(&[])
    }

    fn info_len(&self) -> usize {
        usize::from(self.byte(1))
    }

    /// The raw additional information (L_Data only), without its length byte.
    pub fn additional_info(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(2..2 + self.info_len())
            .unwrap_or(&[])
    }

    fn field(&self, offset: usize) -> u8 {
        self.byte(2 + self.info_len() + offset)
    }

    /// Control field 1.
    pub fn control1(&self) -> u8 {
        self.field(0)
    }

    /// Control field 2.
    pub fn control2(&self) -> u8 {
        self.field(1)
    }

    /// The source individual address.
    pub fn source(&self) -> IndividualAddress {
        IndividualAddress::from_raw(u16::from_be_bytes([self.field(2), self.field(3)]))
    }

    /// The destination, group or individual per ctrl2 bit 7.
    pub fn destination(&self) -> Destination {
        let raw = u16::from_be_bytes([self.field(4), self.field(5)]);
        if self.control2() & 0x80 != 0 {
            Destination::Group(GroupAddress::from_raw(raw))
        } else {
            Destination::Individual(IndividualAddress::from_raw(raw))
        }
    }

    /// The NPDU length field (TPDU octets after the TPCI).
    pub fn npdu_len(&self) -> u8 {
        self.field(6)
    }

    /// The raw TPDU (from the TPCI octet to the end).
    pub fn tpdu(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(2 + self.info_len() + LDATA_HEADER_LEN..)
            .unwrap_or(&[])
    }
}

/// An L_Data frame (req, con or ind).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LData {
    /// Request, confirmation or indication.
    pub service: LDataService,
    /// The raw additional information (TLV blocks), at most 255 bytes; usually empty.
    pub additional_info: Vec<u8>,
    /// Standard or extended frame (ctrl1 bit 7).
    pub frame_format: FrameFormat,
    /// ctrl1 bit 5 set: "do not repeat" (on .req) / "not a repetition" (on .ind).
    pub do_not_repeat: bool,
    /// ctrl1 bit 4 clear: system broadcast.
    pub system_broadcast: bool,
    /// Priority (ctrl1 bits 3–2).
    pub priority: Priority,
    /// Layer-2 acknowledge requested (ctrl1 bit 1).
    pub ack_request: bool,
    /// Confirm flag (ctrl1 bit 0): on L_Data.con, true = the frame was not sent.
    pub confirm_error: bool,
    /// Hop count, 0..=7 (ctrl2 bits 6–4).
    pub hop_count: u8,
    /// Extended frame format, 0..=15 (ctrl2 bits 3–0).
    pub extended_frame_format: u8,
    /// Source individual address.
    pub source: IndividualAddress,
    /// Destination address (its type is ctrl2 bit 7).
    pub destination: Destination,
    /// Transport-layer PDU.
    pub tpdu: Tpdu,
}

impl LData {
    /// A frame with the usual defaults: no additional info, do-not-repeat, normal broadcast,
    /// low priority, no ack request, hop count 6, and a standard frame unless the TPDU needs
    /// an extended one. For a group write this gives ctrl1 `BC`, ctrl2 `E0`.
    pub fn new(
        service: LDataService,
        source: IndividualAddress,
        destination: Destination,
        tpdu: Tpdu,
    ) -> Self {
        let frame_format = if tpdu.buffer_len() > 16 {
            FrameFormat::Extended
        } else {
            FrameFormat::Standard
        };
        Self {
            service,
            additional_info: Vec::new(),
            frame_format,
            do_not_repeat: true,
            system_broadcast: false,
            priority: Priority::Low,
            ack_request: false,
            confirm_error: false,
            hop_count: 6,
            extended_frame_format: 0,
            source,
            destination,
            tpdu,
        }
    }

    /// Control field 1 as emitted.
    pub fn control1(&self) -> u8 {
        let mut c = self.priority.bits() << 2;
        if self.frame_format == FrameFormat::Standard {
            c |= 0x80;
        }
        if self.do_not_repeat {
            c |= 0x20;
        }
        if !self.system_broadcast {
            c |= 0x10;
        }
        if self.ack_request {
            c |= 0x02;
        }
        if self.confirm_error {
            c |= 0x01;
        }
        c
    }

    /// Control field 2 as emitted.
    pub fn control2(&self) -> u8 {
        let group = if self.destination.is_group() { 0x80 } else { 0 };
        group | ((self.hop_count & 0x07) << 4) | (self.extended_frame_format & 0x0F)
    }

    fn parse_body(service: LDataService, packet: &CemiPacket<&[u8]>) -> Result<Self, CemiError> {
        let c1 = packet.control1();
        let c2 = packet.control2();
        if c1 & 0x40 != 0 {
            return Err(CemiError::ReservedControl(c1));
        }
        let frame_format = if c1 & 0x80 != 0 {
            FrameFormat::Standard
        } else {
            FrameFormat::Extended
        };
        let npdu_len = packet.npdu_len();
        if npdu_len > frame_format.max_npdu_len() {
            return Err(CemiError::StandardTooLong(npdu_len));
        }
        Ok(Self {
            service,
            additional_info: packet.additional_info().to_vec(),
            frame_format,
            do_not_repeat: c1 & 0x20 != 0,
            system_broadcast: c1 & 0x10 == 0,
            priority: Priority::from_bits(c1 >> 2),
            ack_request: c1 & 0x02 != 0,
            confirm_error: c1 & 0x01 != 0,
            hop_count: (c2 >> 4) & 0x07,
            extended_frame_format: c2 & 0x0F,
            source: packet.source(),
            destination: packet.destination(),
            tpdu: Tpdu::parse(packet.tpdu())?,
        })
    }

    /// Number of bytes the frame takes (including message code).
    pub fn buffer_len(&self) -> usize {
        2 + self.additional_info.len() + LDATA_HEADER_LEN + self.tpdu.buffer_len()
    }

    fn write(&self, buf: &mut [u8]) -> Result<usize, CemiError> {
        let info_len = u8::try_from(self.additional_info.len())
            .map_err(|_| CemiError::Field("additional_info"))?;
        if self.hop_count > 7 {
            return Err(CemiError::Field("hop_count"));
        }
        if self.extended_frame_format > 0x0F {
            return Err(CemiError::Field("extended_frame_format"));
        }
        let npdu_len = self.tpdu.buffer_len().saturating_sub(1);
        let npdu_len = u8::try_from(npdu_len)
            .ok()
            .filter(|len| *len <= self.frame_format.max_npdu_len())
            .ok_or(CemiError::Field("tpdu length"))?;
        let needed = self.buffer_len();
        let too_small = CemiError::BufferTooSmall {
            needed,
            available: buf.len(),
        };
        let mut w = Writer::new(buf);
        let header = (|| {
            w.u8(self.service.code())?;
            w.u8(info_len)?;
            w.bytes(&self.additional_info)?;
            w.u8(self.control1())?;
            w.u8(self.control2())?;
            w.u16(self.source.raw())?;
            w.u16(self.destination.raw())?;
            w.u8(npdu_len)
        })();
        header.ok_or(too_small)?;
        let start = w.position();
        let tpdu_buf = w.reserve(self.tpdu.buffer_len()).ok_or(too_small)?;
        let written = self.tpdu.emit(tpdu_buf)?;
        Ok(start + written)
    }
}

impl fmt::Display for LData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {} {} hops {}",
            MessageCode::from(self.service.code()),
            self.source,
            self.destination,
            self.priority,
            self.hop_count
        )?;
        if self.frame_format == FrameFormat::Extended {
            f.write_str(" ext")?;
        }
        if self.confirm_error {
            f.write_str(" confirm-error")?;
        }
        write!(f, ": {}", self.tpdu)
    }
}

/// A cEMI message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cemi {
    /// L_Data.req/con/ind, fully decoded.
    LData(LData),
    /// Any other message code, with the bytes after the code kept raw.
    Other {
        /// The message code (never an L_Data code).
        code: MessageCode,
        /// Bytes after the message code.
        body: Vec<u8>,
    },
}

impl Cemi {
    /// Parses a cEMI message. The buffer must hold exactly one message.
    pub fn parse(bytes: &[u8]) -> Result<Self, CemiError> {
        let packet = CemiPacket::new_checked(bytes)?;
        Self::parse_packet(&packet)
    }

    /// Decodes a checked packet view.
    pub fn parse_packet(packet: &CemiPacket<&[u8]>) -> Result<Self, CemiError> {
        let code = packet.byte(0);
        match LDataService::from_code(code) {
            Some(service) => Ok(Self::LData(LData::parse_body(service, packet)?)),
            None => Ok(Self::Other {
                code: MessageCode::from(code),
                body: packet.body().to_vec(),
            }),
        }
    }

    /// Number of bytes [`Cemi::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::LData(ldata) => ldata.buffer_len(),
            Self::Other { body, .. } => 1 + body.len(),
        }
    }

    /// Writes the message into `buf` and returns the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, CemiError> {
        match self {
            Self::LData(ldata) => ldata.write(buf),
            Self::Other { code, body } => {
                let code = u8::from(*code);
                if LDataService::from_code(code).is_some() {
                    return Err(CemiError::LDataCode(code));
                }
                let needed = self.buffer_len();
                let available = buf.len();
                let mut w = Writer::new(buf);
                w.u8(code)
                    .and_then(|()| w.bytes(body))
                    .ok_or(CemiError::BufferTooSmall { needed, available })?;
                Ok(w.position())
            }
        }
    }

    /// The emitted bytes as a vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CemiError> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf)?;
        Ok(buf)
    }
}

impl fmt::Display for Cemi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LData(ldata) => write!(f, "{ldata}"),
            Self::Other { code, body } => {
                write!(f, "{code} [")?;
                fmt_hex(f, body)?;
                f.write_str("]")
            }
        }
    }
}

impl From<LData> for Cemi {
    fn from(ldata: LData) -> Self {
        Self::LData(ldata)
    }
}

/// The body of a cEMI local device management frame (M_PropRead.req/.con,
/// M_PropWrite.req/.con; KNX 03.06.03 §4.1.7), after the message code:
///
/// ```text
/// interface object type (u16) | object instance (u8) | property id (u8) | NoE (4 bits) start index (12 bits) | data…
/// ```
///
/// A negative .con has number of elements 0 and one data byte, the error code
/// ([`PropFrame::error`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PropFrame {
    /// Interface object type (0 = device object).
    pub object_type: u16,
    /// Object instance (1 = the first).
    pub instance: u8,
    /// Property id.
    pub property_id: u8,
    /// Number of elements (0–15).
    pub count: u8,
    /// Start index (0–4095; 0 reads the current number of elements).
    pub start_index: u16,
    /// The elements (or the error code of a negative .con).
    pub data: Vec<u8>,
}

/// Length of the [`PropFrame`] header after the message code.
const PROP_HEADER_LEN: usize = 6;

impl PropFrame {
    /// Parses the body after the message code.
    pub fn parse(body: &[u8]) -> Result<Self, CemiError> {
        let mut r = Reader::new(body);
        let (Some(object_type), Some(instance), Some(property_id), Some(noe_six)) =
            (r.u16(), r.u8(), r.u8(), r.u16())
        else {
            return Err(CemiError::Truncated {
                needed: PROP_HEADER_LEN,
                available: body.len(),
            });
        };
        Ok(Self {
            object_type,
            instance,
            property_id,
            count: u8::try_from(noe_six >> 12).unwrap_or(0),
            start_index: noe_six & 0x0FFF,
            data: body.get(PROP_HEADER_LEN..).unwrap_or_default().to_vec(),
        })
    }

    /// The body after the message code.
    pub fn to_body(&self) -> Result<Vec<u8>, CemiError> {
        if self.count > 0x0F {
            return Err(CemiError::Field("count"));
        }
        if self.start_index > 0x0FFF {
            return Err(CemiError::Field("start_index"));
        }
        let mut body = Vec::with_capacity(PROP_HEADER_LEN + self.data.len());
        body.extend_from_slice(&self.object_type.to_be_bytes());
        body.push(self.instance);
        body.push(self.property_id);
        body.extend_from_slice(&((u16::from(self.count) << 12) | self.start_index).to_be_bytes());
        body.extend_from_slice(&self.data);
        Ok(body)
    }

    /// The negative confirmation of this request: number of elements 0, the error code as
    /// the only data byte (03.06.03 §4.1.7).
    #[must_use]
    pub fn error(&self, code: PropError) -> Self {
        Self {
            count: 0,
            data: vec![u8::from(code)],
            ..self.clone()
        }
    }
}

code_enum! {
    /// Error codes of a negative M_PropRead.con / M_PropWrite.con (KNX 03.06.03
    /// §4.1.7).
    pub enum PropError: u8 {
        /// Unspecified error.
        Unspecified = 0x00 => "unspecified error",
        /// Write value out of range.
        OutOfRange = 0x01 => "out of range",
        /// Memory error.
        Memory = 0x04 => "memory error",
        /// Write to a read-only or write-protected property.
        ReadOnly = 0x05 => "read only",
        /// Illegal command.
        IllegalCommand = 0x06 => "illegal command",
        /// The property (or object) does not exist.
        VoidDp = 0x07 => "void DP",
        /// Type conflict.
        TypeConflict = 0x08 => "type conflict",
        /// Start index or number of elements outside the property's array.
        IndexRange = 0x09 => "property index range error",
        /// The value cannot be written now.
        TemporarilyNotWriteable = 0x0A => "value temporarily not writeable",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::knx::wire::apdu::tests::arb_tpdu;
    use crate::knx::wire::apdu::{Apdu, Payload, PropertyRef};
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// A real L_Data.ind group write: 1.1.10 writes "on" to 1/2/3.
    pub(crate) const GROUP_WRITE_IND: [u8; 11] = [
        0x29, // message code L_Data.ind
        0x00, // additional info length 0
        0xBC, // ctrl1 1011 1100: standard, do-not-repeat, broadcast, low priority, no ack
        0xE0, // ctrl2 1110 0000: group destination, hop count 6, EFF 0
        0x11, 0x0A, // source 1.1.10 (area 1, line 1, device 10)
        0x0A, 0x03, // destination 1/2/3 = 00001 010 00000011
        0x01, // NPDU length: 1 octet after the TPCI
        0x00, // TPCI T_Data_Group, APCI high bits 00
        0x81, // APCI GroupValue_Write (10) + 6-bit value 1
    ];

    fn ga(main: u8, middle: u8, sub: u8) -> Destination {
        Destination::Group(GroupAddress::three_level(main, middle, sub).unwrap())
    }

    #[test]
    fn group_write_indication() {
        let cemi = Cemi::parse(&GROUP_WRITE_IND).unwrap();
        let expected = LData::new(
            LDataService::Ind,
            IndividualAddress::from_raw(0x110A),
            ga(1, 2, 3),
            Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1))),
        );
        assert_eq!(cemi, Cemi::LData(expected));
        assert_eq!(cemi.to_bytes().unwrap(), GROUP_WRITE_IND);
        assert_eq!(
            cemi.to_string(),
            "L_Data.ind 1.1.10 -> 1/2/3 low hops 6: A_GroupValue_Write 0x01"
        );
        let packet = CemiPacket::new_checked(&GROUP_WRITE_IND[..]).unwrap();
        assert_eq!(packet.message_code(), MessageCode::LDataInd);
        assert_eq!(packet.tpdu(), [0x00, 0x81]);
        assert_eq!(packet.npdu_len(), 1);
    }

    #[test]
    fn group_write_two_byte_float_with_additional_info() {
        let bytes = [
            0x11, // L_Data.req
            0x04, // 4 bytes of additional info
            0x03, 0x02, 0x01, 0x02, // type 03 (bus monitor info) len 2 — kept raw
            0xBC, 0xE0, // ctrl1, ctrl2
            0x00, 0x00, // source 0.0.0 (filled in by the interface)
            0x08, 0x01, // destination 1/0/1
            0x03, // NPDU length 3
            0x00, 0x80, // T_Data_Group, GroupValue_Write, long value follows
            0x0C, 0x1A, // DPT 9: 21.00
        ];
        let Cemi::LData(ldata) = Cemi::parse(&bytes).unwrap() else {
            panic!("not L_Data")
        };
        assert_eq!(ldata.service, LDataService::Req);
        assert_eq!(ldata.additional_info, [0x03, 0x02, 0x01, 0x02]);
        assert_eq!(ldata.destination, ga(1, 0, 1));
        assert_eq!(
            ldata.tpdu,
            Tpdu::Data(Apdu::GroupValueWrite(Payload::Long(vec![0x0C, 0x1A])))
        );
        assert_eq!(Cemi::LData(ldata).to_bytes().unwrap(), bytes);
    }

    #[test]
    fn connected_property_read_to_individual() {
        let bytes = [
            0x11, 0x00, // L_Data.req, no additional info
            0xB0, // standard, do-not-repeat, broadcast, system priority
            0x60, // individual destination, hop count 6
            0x00, 0x01, // source 0.0.1
            0x11, 0x0A, // destination 1.1.10
            0x05, // NPDU length 5
            0x43, 0xD5, // T_Data_Connected #0, PropertyValue_Read
            0x04, 0x07, 0x10, 0x01, // obj 4, PID 7, NoE 1, start 1
        ];
        let Cemi::LData(ldata) = Cemi::parse(&bytes).unwrap() else {
            panic!("not L_Data")
        };
        assert_eq!(ldata.priority, Priority::System);
        assert_eq!(
            ldata.destination,
            Destination::Individual(IndividualAddress::from_raw(0x110A))
        );
        assert_eq!(
            ldata.tpdu,
            Tpdu::ConnectedData {
                sequence: 0,
                apdu: Apdu::PropertyValueRead(PropertyRef {
                    object_index: 4,
                    property_id: 7,
                    count: 1,
                    start_index: 1
                })
            }
        );
    }

    #[test]
    fn t_connect() {
        // L_Data.req T_Connect to 1.1.10: NPDU length 0, TPDU = 0x80.
        let bytes = [0x11, 0x00, 0xB0, 0x60, 0x00, 0x01, 0x11, 0x0A, 0x00, 0x80];
        let cemi = Cemi::parse(&bytes).unwrap();
        assert!(matches!(&cemi, Cemi::LData(l) if l.tpdu == Tpdu::Connect));
        assert_eq!(cemi.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn extended_frame() {
        let tpdu = Tpdu::Data(Apdu::GroupValueWrite(Payload::Long(vec![0x55; 200])));
        let ldata = LData::new(
            LDataService::Req,
            IndividualAddress::from_raw(0x1101),
            ga(2, 0, 0),
            tpdu,
        );
        assert_eq!(ldata.frame_format, FrameFormat::Extended);
        let bytes = Cemi::LData(ldata.clone()).to_bytes().unwrap();
        assert_eq!(bytes.get(2), Some(&0x3C)); // ctrl1 without the standard-frame bit
        assert_eq!(bytes.get(8), Some(&201)); // NPDU length
        assert_eq!(Cemi::parse(&bytes).unwrap(), Cemi::LData(ldata));
        // The same length flagged as a standard frame is rejected.
        let mut bad = bytes.clone();
        if let Some(c1) = bad.get_mut(2) {
            *c1 |= 0x80;
        }
        assert_eq!(Cemi::parse(&bad), Err(CemiError::StandardTooLong(201)));
    }

    #[test]
    fn malformed_frames() {
        assert_eq!(Cemi::parse(&[]), Err(CemiError::Empty));
        // Additional info longer than the buffer.
        assert!(matches!(
            Cemi::parse(&[0x29, 0x10, 0x00]),
            Err(CemiError::Truncated { .. })
        ));
        // Length field says 2 but only 1 byte follows the TPCI.
        let mut bad = GROUP_WRITE_IND;
        bad[8] = 0x02;
        assert_eq!(
            Cemi::parse(&bad),
            Err(CemiError::Length {
                declared: 2,
                actual: 1
            })
        );
        // Reserved ctrl1 bit.
        let mut bad = GROUP_WRITE_IND;
        bad[2] |= 0x40;
        assert_eq!(Cemi::parse(&bad), Err(CemiError::ReservedControl(0xFC)));
        // Trailing byte.
        let mut long = GROUP_WRITE_IND.to_vec();
        long.push(0);
        assert!(Cemi::parse(&long).is_err());
    }

    #[test]
    fn other_message_codes_round_trip() {
        // M_PropRead.req for the cEMI server object: kept raw.
        let bytes = [0xFC, 0x00, 0x08, 0x01, 0x34, 0x10, 0x01];
        let cemi = Cemi::parse(&bytes).unwrap();
        assert_eq!(
            cemi,
            Cemi::Other {
                code: MessageCode::MPropReadReq,
                body: bytes[1..].to_vec()
            }
        );
        assert_eq!(cemi.to_bytes().unwrap(), bytes);
        let bad = Cemi::Other {
            code: MessageCode::LDataInd,
            body: vec![],
        };
        assert_eq!(bad.to_bytes(), Err(CemiError::LDataCode(0x29)));
        assert_eq!(u8::from(MessageCode::from(0x42)), 0x42);
    }

    fn destination() -> impl Strategy<Value = Destination> {
        prop_oneof![
            any::<u16>().prop_map(|r| Destination::Group(GroupAddress::from_raw(r))),
            any::<u16>().prop_map(|r| Destination::Individual(IndividualAddress::from_raw(r))),
        ]
    }

    /// Every valid L_Data representation.
    pub(crate) fn arb_ldata() -> impl Strategy<Value = LData> {
        (
            prop_oneof![
                Just(LDataService::Req),
                Just(LDataService::Con),
                Just(LDataService::Ind)
            ],
            vec(any::<u8>(), 0..6),
            any::<[bool; 5]>(),
            0u8..4,
            0u8..8,
            0u8..16,
            any::<u16>(),
            destination(),
            arb_tpdu(),
        )
            .prop_map(|(service, info, flags, prio, hops, eff, src, dst, tpdu)| {
                let [
                    extended,
                    do_not_repeat,
                    system_broadcast,
                    ack_request,
                    confirm_error,
                ] = flags;
                let mut ldata = LData::new(service, IndividualAddress::from_raw(src), dst, tpdu);
                if extended {
                    ldata.frame_format = FrameFormat::Extended;
                }
                ldata.additional_info = info;
                ldata.do_not_repeat = do_not_repeat;
                ldata.system_broadcast = system_broadcast;
                ldata.ack_request = ack_request;
                ldata.confirm_error = confirm_error;
                ldata.priority = Priority::from_bits(prio);
                ldata.hop_count = hops;
                ldata.extended_frame_format = eff;
                ldata
            })
    }

    pub(crate) fn arb_cemi() -> impl Strategy<Value = Cemi> {
        prop_oneof![
            4 => arb_ldata().prop_map(Cemi::LData),
            1 => (any::<u8>(), vec(any::<u8>(), 0..10))
                .prop_filter("not L_Data", |(code, _)| LDataService::from_code(*code).is_none())
                .prop_map(|(code, body)| Cemi::Other { code: MessageCode::from(code), body }),
        ]
    }

    proptest! {
        #[test]
        fn cemi_round_trip(cemi in arb_cemi()) {
            let bytes = cemi.to_bytes().unwrap();
            prop_assert_eq!(bytes.len(), cemi.buffer_len());
            prop_assert_eq!(Cemi::parse(&bytes).unwrap(), cemi);
        }

        #[test]
        fn cemi_parse_arbitrary_bytes(bytes in vec(any::<u8>(), 0..48)) {
            if let Ok(cemi) = Cemi::parse(&bytes) {
                prop_assert_eq!(cemi.to_bytes().unwrap(), bytes);
                let _ = cemi.to_string();
            }
        }

        #[test]
        fn cemi_parse_arbitrary_tpdu(
            code in prop_oneof![Just(0x11u8), Just(0x29), Just(0x2E)],
            info in vec(any::<u8>(), 0..4),
            header in any::<[u8; 6]>(),
            tpdu in vec(any::<u8>(), 1..24),
        ) {
            // Consistent lengths around arbitrary control fields and TPDUs reach every
            // L_Data and TPDU branch.
            let mut bytes = vec![code, u8::try_from(info.len()).unwrap()];
            bytes.extend(&info);
            bytes.extend(header);
            bytes.push(u8::try_from(tpdu.len() - 1).unwrap());
            bytes.extend(&tpdu);
            if let Ok(cemi) = Cemi::parse(&bytes) {
                prop_assert_eq!(cemi.to_bytes().unwrap(), bytes);
                let _ = cemi.to_string();
            }
        }

        #[test]
        fn cemi_parse_mutated_frame(index in 0usize..11, value in any::<u8>(), cut in 0usize..12) {
            // Mutations of a valid frame: never panic, and canonical when accepted.
            let mut bytes = GROUP_WRITE_IND.to_vec();
            if let Some(b) = bytes.get_mut(index) {
                *b = value;
            }
            bytes.truncate(cut);
            if let Ok(cemi) = Cemi::parse(&bytes) {
                prop_assert_eq!(&cemi.to_bytes().unwrap(), &bytes);
            }
            let view = CemiPacket::new_unchecked(&bytes[..]);
            let _ = (view.source(), view.destination(), view.tpdu(), view.additional_info());
        }
    }

    #[test]
    fn prop_frames_round_trip() {
        // M_PropRead.req of the serial number (object type 0, instance 1, PID 11, 1 element
        // from index 1), KNX 03.06.03 §4.1.7.
        let body = [0x00, 0x00, 0x01, 0x0B, 0x10, 0x01];
        let frame = PropFrame::parse(&body).unwrap();
        assert_eq!(
            frame,
            PropFrame {
                object_type: 0,
                instance: 1,
                property_id: 11,
                count: 1,
                start_index: 1,
                data: Vec::new(),
            }
        );
        assert_eq!(frame.to_body().unwrap(), body);
        let error = frame.error(PropError::VoidDp);
        assert_eq!(
            error.to_body().unwrap(),
            [0x00, 0x00, 0x01, 0x0B, 0x00, 0x01, 0x07]
        );
        assert!(PropFrame::parse(&body[..5]).is_err());
        let too_many = PropFrame { count: 16, ..frame };
        assert_eq!(too_many.to_body(), Err(CemiError::Field("count")));
    }

    proptest! {
        #[test]
        fn prop_frame_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(frame) = PropFrame::parse(&bytes) {
                prop_assert_eq!(frame.to_body().unwrap(), bytes);
            }
        }
    }
}
