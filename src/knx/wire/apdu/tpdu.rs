//! The transport-layer PDU: the TPCI octet (KNX 03.03.04 §2) and, for data TPDUs, the APDU.

use std::fmt;

use super::{Apdu, ApduError};

/// A transport-layer PDU: the TPCI and, for data TPDUs, the APDU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tpdu {
    /// Unnumbered data, TPCI `000000xx`: T_Data_Group, T_Data_Broadcast or T_Data_Individual
    /// (the destination address tells which).
    Data(Apdu),
    /// T_Data_Tag_Group, TPCI `000001xx`.
    TagGroupData(Apdu),
    /// T_Data_Connected, TPCI `01ssssxx`.
    ConnectedData {
        /// Sequence number, 0..=15.
        sequence: u8,
        /// The APDU.
        apdu: Apdu,
    },
    /// T_Connect (`0x80`).
    Connect,
    /// T_Disconnect (`0x81`).
    Disconnect,
    /// T_ACK (`0xC2 | seq << 2`).
    Ack {
        /// Sequence number, 0..=15.
        sequence: u8,
    },
    /// T_NAK (`0xC3 | seq << 2`).
    Nak {
        /// Sequence number, 0..=15.
        sequence: u8,
    },
}

/// TPCI of T_Connect.
pub const TPCI_CONNECT: u8 = 0x80;
/// TPCI of T_Disconnect.
pub const TPCI_DISCONNECT: u8 = 0x81;
/// TPCI of T_ACK with sequence number 0.
pub const TPCI_ACK: u8 = 0xC2;
/// TPCI of T_NAK with sequence number 0.
pub const TPCI_NAK: u8 = 0xC3;
/// TPCI of T_Data_Connected with sequence number 0.
pub const TPCI_DATA_CONNECTED: u8 = 0x40;
/// TPCI of T_Data_Tag_Group.
pub const TPCI_DATA_TAG_GROUP: u8 = 0x04;

impl Tpdu {
    /// Parses a TPDU starting at the TPCI octet.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let (&tpci, rest) = bytes.split_first().ok_or(ApduError::Empty)?;
        let sequence = (tpci >> 2) & 0x0F;
        let control = |tpdu: Self| {
            if rest.is_empty() {
                Ok(tpdu)
            } else {
                Err(ApduError::ControlTrailing(tpci))
            }
        };
        match tpci >> 6 {
            0b00 => match sequence {
                0 => Ok(Self::Data(Apdu::parse(bytes)?)),
                1 => Ok(Self::TagGroupData(Apdu::parse(bytes)?)),
                _ => Err(ApduError::ReservedTpci(tpci)),
            },
            0b01 => Ok(Self::ConnectedData {
                sequence,
                apdu: Apdu::parse(bytes)?,
            }),
            0b10 => match tpci {
                TPCI_CONNECT => control(Self::Connect),
                TPCI_DISCONNECT => control(Self::Disconnect),
                _ => Err(ApduError::ReservedTpci(tpci)),
            },
            _ => match tpci & 0x03 {
                0b10 => control(Self::Ack { sequence }),
                0b11 => control(Self::Nak { sequence }),
                _ => Err(ApduError::ReservedTpci(tpci)),
            },
        }
    }

    /// The APDU of a data TPDU.
    pub fn apdu(&self) -> Option<&Apdu> {
        match self {
            Self::Data(apdu) | Self::TagGroupData(apdu) | Self::ConnectedData { apdu, .. } => {
                Some(apdu)
            }
            _ => None,
        }
    }

    /// The TPCI bits (upper six bits of the first octet; low two bits zero).
    pub fn tpci(&self) -> u8 {
        match self {
            Self::Data(_) => 0,
            Self::TagGroupData(_) => TPCI_DATA_TAG_GROUP,
            Self::ConnectedData { sequence, .. } => TPCI_DATA_CONNECTED | ((sequence & 0x0F) << 2),
            Self::Connect => TPCI_CONNECT,
            Self::Disconnect => TPCI_DISCONNECT,
            Self::Ack { sequence } => TPCI_ACK | ((sequence & 0x0F) << 2),
            Self::Nak { sequence } => TPCI_NAK | ((sequence & 0x0F) << 2),
        }
    }

    /// Number of bytes [`Tpdu::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        self.apdu().map_or(1, Apdu::buffer_len)
    }

    /// Writes the TPDU into `buf` and returns the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, ApduError> {
        match self {
            Self::ConnectedData { sequence, .. }
            | Self::Ack { sequence }
            | Self::Nak { sequence }
                if *sequence > 0x0F =>
            {
                return Err(ApduError::Field {
                    service: "TPDU",
                    field: "sequence",
                });
            }
            _ => {}
        }
        let available = buf.len();
        let (first, _) = buf.split_first_mut().ok_or(ApduError::BufferTooSmall {
            needed: self.buffer_len(),
            available,
        })?;
        *first = 0;
        let len = match self.apdu() {
            Some(apdu) => apdu.emit(buf)?,
            None => 1,
        };
        if let Some(first) = buf.first_mut() {
            *first |= self.tpci();
        }
        Ok(len)
    }

    /// The emitted bytes as a vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ApduError> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf)?;
        Ok(buf)
    }
}

impl fmt::Display for Tpdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Data(apdu) => write!(f, "{apdu}"),
            Self::TagGroupData(apdu) => write!(f, "T_Data_Tag_Group {apdu}"),
            Self::ConnectedData { sequence, apdu } => {
                write!(f, "T_Data_Connected #{sequence} {apdu}")
            }
            Self::Connect => f.write_str("T_Connect"),
            Self::Disconnect => f.write_str("T_Disconnect"),
            Self::Ack { sequence } => write!(f, "T_ACK #{sequence}"),
            Self::Nak { sequence } => write!(f, "T_NAK #{sequence}"),
        }
    }
}
