//! TPCI/APCI: the transport-layer control octet ([`Tpdu`]) and the application-layer services
//! ([`Apdu`]) carried in a KNX frame, parsed and emitted without panics.
//!
//! This module owns the byte layout that starts at the TPCI octet of a frame (the octet after
//! the cEMI/TP1 length field). The first octet is shared: its upper six bits are the TPCI, its
//! lower two bits are the upper two bits of the 10-bit APCI. [`Apdu::parse`] ignores the TPCI
//! bits of that octet and [`Apdu::emit`] writes them as zero; [`Tpdu`] adds them.
//!
//! Codes and layouts (sources: KNX 03.03.04 transport layer §2, 03.03.07 application layer
//! §3; cross-checked against thelsing/knx `src/knx/knx_types.h` and xknx `xknx/telegram/apci.py`):
//!
//! * TPCI: unnumbered data `000000xx` (T_Data_Group/Broadcast/Individual), tag group
//!   `000001xx`, connected data `01ssssxx`, T_Connect `0x80`, T_Disconnect `0x81`,
//!   T_ACK `0xC2 | s<<2`, T_NAK `0xC3 | s<<2`.
//! * APCI: see the `APCI_*` constants; services with a 4-bit code carry 6 bits of data in the
//!   low bits of the second octet (short group values, memory count, descriptor type).
//!
//! Only canonical encodings parse: reserved bits must be zero and counts must match the data,
//! so that `emit(parse(b)) == b`. A 10-bit APCI that is not a known service becomes
//! [`Apdu::Unknown`] with its data. This module must not decide how to *answer* a service.
//!
//! Files, each owning one thing: `service.rs` the service table (code, constant and name of
//! every service, written once; adding a service starts there), `codec.rs` the layout of each
//! service's data (one decode and one encode arm per service), `fields.rs` the records several
//! services share, `display.rs` the log format, `tpdu.rs` the TPCI octet, `error.rs` the
//! errors.

mod codec;
mod display;
mod error;
mod fields;
mod service;
mod tpdu;

pub use error::ApduError;
pub use fields::{
    Payload, PropertyDescription, PropertyExtDescription, PropertyExtRef, PropertyExtSelector,
    PropertyRef,
};
pub use service::*;
pub use tpdu::{
    TPCI_ACK, TPCI_CONNECT, TPCI_DATA_CONNECTED, TPCI_DATA_TAG_GROUP, TPCI_DISCONNECT, TPCI_NAK,
    Tpdu,
};

use crate::knx::address::IndividualAddress;
use crate::knx::wire::{Reader, Writer};
use codec::{Emit, Measure};

/// An application-layer service (APCI plus its data).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Apdu {
    /// A_GroupValue_Read (`00 00`).
    GroupValueRead,
    /// A_GroupValue_Response (`00 40|v` or `00 40 data…`).
    GroupValueResponse(Payload),
    /// A_GroupValue_Write (`00 80|v` or `00 80 data…`).
    GroupValueWrite(Payload),
    /// A_IndividualAddress_Write with the new address (`00 C0 hh ll`).
    IndividualAddressWrite(IndividualAddress),
    /// A_IndividualAddress_Read (`01 00`).
    IndividualAddressRead,
    /// A_IndividualAddress_Response (`01 40`); the address is the frame's source.
    IndividualAddressResponse,
    /// A_MemoryExt_Write: count (1), 24-bit address, data (count bytes).
    MemoryExtWrite {
        /// 24-bit memory address.
        address: u32,
        /// Data to write (at most 255 bytes).
        data: Vec<u8>,
    },
    /// A_MemoryExt_WriteResponse: return code, 24-bit address, optional CRC/extra bytes.
    MemoryExtWriteResponse {
        /// Return code (0 = success).
        return_code: u8,
        /// 24-bit memory address.
        address: u32,
        /// Bytes after the address (the CRC in verify mode), usually empty.
        data: Vec<u8>,
    },
    /// A_MemoryExt_Read: count, 24-bit address.
    MemoryExtRead {
        /// Number of bytes to read.
        count: u8,
        /// 24-bit memory address.
        address: u32,
    },
    /// A_MemoryExt_ReadResponse: return code, 24-bit address, data.
    MemoryExtReadResponse {
        /// Return code (0 = success).
        return_code: u8,
        /// 24-bit memory address.
        address: u32,
        /// Data read.
        data: Vec<u8>,
    },
    /// A_Memory_Read: count (6 bits in the APCI), 16-bit address (`02 0n AA AA`).
    MemoryRead {
        /// Number of bytes, 0..=63.
        count: u8,
        /// Memory address.
        address: u16,
    },
    /// A_Memory_Response: count (= data length, ≤ 63), address, data.
    MemoryResponse {
        /// Memory address.
        address: u16,
        /// Data read (empty signals an error).
        data: Vec<u8>,
    },
    /// A_Memory_Write: count (= data length, ≤ 63), address, data (`02 8n AA AA data…`).
    MemoryWrite {
        /// Memory address.
        address: u16,
        /// Data to write.
        data: Vec<u8>,
    },
    /// A_UserMemory_Read: address extension (4 bits) + count (4 bits), 16-bit address.
    UserMemoryRead {
        /// Number of bytes, 0..=15.
        count: u8,
        /// 20-bit address (extension << 16 | address).
        address: u32,
    },
    /// A_UserMemory_Response: like the read, then the data (count = data length).
    UserMemoryResponse {
        /// 20-bit address.
        address: u32,
        /// Data read, at most 15 bytes.
        data: Vec<u8>,
    },
    /// A_UserMemory_Write: like the read, then the data (count = data length).
    UserMemoryWrite {
        /// 20-bit address.
        address: u32,
        /// Data to write, at most 15 bytes.
        data: Vec<u8>,
    },
    /// A_FunctionPropertyCommand: object index, PID, data.
    FunctionPropertyCommand {
        /// Interface object index.
        object_index: u8,
        /// Property id.
        property_id: u8,
        /// Service data.
        data: Vec<u8>,
    },
    /// A_FunctionPropertyState_Read: object index, PID, data.
    FunctionPropertyStateRead {
        /// Interface object index.
        object_index: u8,
        /// Property id.
        property_id: u8,
        /// Service data.
        data: Vec<u8>,
    },
    /// A_FunctionPropertyState_Response: object index, PID, optional return code, data.
    FunctionPropertyStateResponse {
        /// Interface object index.
        object_index: u8,
        /// Property id.
        property_id: u8,
        /// Return code; absent when the property does not exist (then `data` is empty).
        return_code: Option<u8>,
        /// Result data.
        data: Vec<u8>,
    },
    /// A_DeviceDescriptor_Read with the descriptor type (6 bits), e.g. `03 00` for DD0.
    DeviceDescriptorRead {
        /// Descriptor type, 0..=63.
        descriptor_type: u8,
    },
    /// A_DeviceDescriptor_Response, e.g. `03 40 07 B0` (DD0 = mask version 07B0).
    DeviceDescriptorResponse {
        /// Descriptor type, 0..=63.
        descriptor_type: u8,
        /// The descriptor.
        data: Vec<u8>,
    },
    /// A_Restart, basic restart (`03 80`).
    Restart,
    /// A_Restart master reset (`03 81 erase channel`).
    RestartMasterReset {
        /// Erase code (1 confirmed restart … 7 factory reset without IA).
        erase_code: u8,
        /// Channel number.
        channel: u8,
    },
    /// A_Restart_Response (`03 A1 err tt tt`).
    RestartResponse {
        /// Error code (0 = success).
        error_code: u8,
        /// Process time in seconds.
        process_time: u16,
    },
    /// A_Authorize_Request (`03 D1 00 kk kk kk kk`).
    AuthorizeRequest {
        /// The key.
        key: u32,
    },
    /// A_Authorize_Response (`03 D2 level`).
    AuthorizeResponse {
        /// Granted access level.
        level: u8,
    },
    /// A_Key_Write (`03 D3 level kk kk kk kk`).
    KeyWrite {
        /// Access level the key is for.
        level: u8,
        /// The key.
        key: u32,
    },
    /// A_Key_Response (`03 D4 level`).
    KeyResponse {
        /// Access level.
        level: u8,
    },
    /// A_PropertyValue_Read (`03 D5 obj pid n|ss ss`).
    PropertyValueRead(PropertyRef),
    /// A_PropertyValue_Response (`03 D6 obj pid n|ss ss data…`).
    PropertyValueResponse(PropertyRef, Vec<u8>),
    /// A_PropertyValue_Write (`03 D7 obj pid n|ss ss data…`).
    PropertyValueWrite(PropertyRef, Vec<u8>),
    /// A_PropertyDescription_Read (`03 D8 obj pid index`).
    PropertyDescriptionRead {
        /// Interface object index.
        object_index: u8,
        /// Property id (0 = select by index).
        property_id: u8,
        /// Property index.
        property_index: u8,
    },
    /// A_PropertyDescription_Response (`03 D9 obj pid idx type max max access`).
    PropertyDescriptionResponse(PropertyDescription),
    /// A_PropertyValueExt_Read (`01 CC tt tt ii ip pp nn ss ss`).
    PropertyValueExtRead(PropertyExtRef),
    /// A_PropertyValueExt_Response (`01 CD` + the read's fields + data).
    PropertyValueExtResponse(PropertyExtRef, Vec<u8>),
    /// A_PropertyValueExt_WriteCon (`01 CE` + fields + data).
    PropertyValueExtWriteCon(PropertyExtRef, Vec<u8>),
    /// A_PropertyValueExt_WriteConRes (`01 CF` + fields + return code).
    PropertyValueExtWriteConRes(PropertyExtRef, u8),
    /// A_PropertyValueExt_WriteUnCon (`01 D0` + fields + data).
    PropertyValueExtWriteUnCon(PropertyExtRef, Vec<u8>),
    /// A_PropertyValueExt_InfoReport (`01 D1` + fields + data).
    PropertyValueExtInfoReport(PropertyExtRef, Vec<u8>),
    /// A_PropertyExtDescription_Read (`01 D2 tt tt ii ip pp dx xx`).
    PropertyExtDescriptionRead(PropertyExtSelector),
    /// A_PropertyExtDescription_Response (`01 D3` + selector + `mm mm ss ss ty nn nn rw`).
    PropertyExtDescriptionResponse(PropertyExtDescription),
    /// A_IndividualAddressSerialNumber_Read (`03 DC` + serial number, 6 bytes).
    IndividualAddressSerialNumberRead {
        /// The KNX serial number of the device asked for.
        serial_number: [u8; 6],
    },
    /// A_IndividualAddressSerialNumber_Response (`03 DD` + serial number + domain address
    /// (2) + 2 reserved zero bytes); the individual address is the frame's source.
    IndividualAddressSerialNumberResponse {
        /// The responder's serial number.
        serial_number: [u8; 6],
        /// Domain address (KNX PL110; 0 on TP1).
        domain_address: u16,
    },
    /// A_IndividualAddressSerialNumber_Write (`03 DE` + serial number + new address + 4
    /// reserved zero bytes).
    IndividualAddressSerialNumberWrite {
        /// Serial number of the device to address.
        serial_number: [u8; 6],
        /// Its new individual address.
        address: IndividualAddress,
    },
    /// Any other APCI, kept verbatim: the 10-bit code and the bytes after the APCI octets.
    Unknown {
        /// The 10-bit APCI (including any data bits in its low 6 bits).
        apci: u16,
        /// Bytes after the two APCI octets.
        data: Vec<u8>,
    },
}
impl Apdu {
    /// Parses an APDU starting at the shared TPCI/APCI octet. The upper six (TPCI) bits of
    /// the first octet are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let mut r = Reader::new(bytes);
        let (Some(b0), Some(b1)) = (r.u8(), r.u8()) else {
            return Err(ApduError::TooShort { len: bytes.len() });
        };
        let apci = (u16::from(b0 & 0x03) << 8) | u16::from(b1);
        let data = r.rest();
        match Service::from_apci(apci) {
            Some(service) => codec::decode(service, b1 & SHORT_MAX, data),
            None => Ok(Self::Unknown {
                apci,
                data: data.to_vec(),
            }),
        }
    }

    /// The 10-bit APCI this APDU is emitted with (including the 6 data bits where the service
    /// has them).
    pub fn apci(&self) -> u16 {
        match (self.service(), self) {
            (Some(service), _) => service.code() | codec::short_data(self),
            (None, Self::Unknown { apci, .. }) => *apci & 0x03FF,
            (None, _) => 0,
        }
    }

    /// The service name as in the KNX standard (for logs).
    pub fn name(&self) -> &'static str {
        self.service().map_or("A_Unknown", Service::name)
    }

    /// Number of bytes [`Apdu::emit`] writes (including the shared TPCI/APCI octet).
    pub fn buffer_len(&self) -> usize {
        let mut measure = Measure::default();
        // A lenient measure only counts; it cannot fail.
        let _ = codec::encode(self, &mut measure);
        measure.len
    }

    /// Writes the APDU into `buf` (TPCI bits of the first octet zero) and returns the number
    /// of bytes written. Fields out of range for their bit width are refused, so that emit →
    /// parse gives `self` back.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, ApduError> {
        let mut measure = Measure {
            len: 0,
            strict: true,
        };
        codec::encode(self, &mut measure)?;
        let available = buf.len();
        if available < measure.len {
            return Err(ApduError::BufferTooSmall {
                needed: measure.len,
                available,
            });
        }
        let mut sink = Emit {
            writer: Writer::new(buf),
            needed: measure.len,
            available,
        };
        codec::encode(self, &mut sink)?;
        Ok(sink.writer.position())
    }

    /// The emitted bytes as a vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ApduError> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf)?;
        Ok(buf)
    }
}

#[cfg(test)]
pub(crate) mod tests;
