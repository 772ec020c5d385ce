//! `Display` of an APDU: the service name, then its fields.

use std::fmt;

use super::Apdu;
use crate::knx::wire::fmt_hex;

impl fmt::Display for Apdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        let data: &[u8] = match self {
            Self::GroupValueResponse(p) | Self::GroupValueWrite(p) => {
                return write!(f, " {p}");
            }
            Self::IndividualAddressWrite(ia) => return write!(f, " {ia}"),
            Self::MemoryRead { count, address } => {
                return write!(f, " {count} bytes at {address:#06x}");
            }
            Self::MemoryExtRead { count, address } => {
                return write!(f, " {count} bytes at {address:#08x}");
            }
            Self::UserMemoryRead { count, address } => {
                return write!(f, " {count} bytes at {address:#07x}");
            }
            Self::MemoryResponse { address, data } | Self::MemoryWrite { address, data } => {
                write!(f, " at {address:#06x}")?;
                data
            }
            Self::MemoryExtWrite { address, data }
            | Self::UserMemoryResponse { address, data }
            | Self::UserMemoryWrite { address, data } => {
                write!(f, " at {address:#x}")?;
                data
            }
            Self::MemoryExtWriteResponse {
                return_code,
                address,
                data,
            }
            | Self::MemoryExtReadResponse {
                return_code,
                address,
                data,
            } => {
                write!(f, " rc {return_code} at {address:#x}")?;
                data
            }
            Self::FunctionPropertyCommand {
                object_index,
                property_id,
                data,
            }
            | Self::FunctionPropertyStateRead {
                object_index,
                property_id,
                data,
            } => {
                write!(f, " obj {object_index} pid {property_id}")?;
                data
            }
            Self::FunctionPropertyStateResponse {
                object_index,
                property_id,
                return_code,
                data,
            } => {
                write!(f, " obj {object_index} pid {property_id}")?;
                if let Some(rc) = return_code {
                    write!(f, " rc {rc}")?;
                }
                data
            }
            Self::DeviceDescriptorRead { descriptor_type } => {
                return write!(f, " type {descriptor_type}");
            }
            Self::DeviceDescriptorResponse {
                descriptor_type,
                data,
            } => {
                write!(f, " type {descriptor_type}")?;
                data
            }
            Self::RestartMasterReset {
                erase_code,
                channel,
            } => return write!(f, " erase {erase_code} channel {channel}"),
            Self::RestartResponse {
                error_code,
                process_time,
            } => return write!(f, " error {error_code} time {process_time} s"),
            Self::AuthorizeRequest { key } => return write!(f, " key {key:#010x}"),
            Self::AuthorizeResponse { level } | Self::KeyResponse { level } => {
                return write!(f, " level {level}");
            }
            Self::KeyWrite { level, key } => return write!(f, " level {level} key {key:#010x}"),
            Self::PropertyValueRead(p) => return write!(f, " {p}"),
            Self::PropertyValueResponse(p, data) | Self::PropertyValueWrite(p, data) => {
                write!(f, " {p}")?;
                data
            }
            Self::PropertyDescriptionRead {
                object_index,
                property_id,
                property_index,
            } => {
                return write!(
                    f,
                    " obj {object_index} pid {property_id} idx {property_index}"
                );
            }
            Self::PropertyDescriptionResponse(d) => {
                return write!(
                    f,
                    " obj {} pid {} idx {} type {} write {} max {} access {}/{}",
                    d.object_index,
                    d.property_id,
                    d.property_index,
                    d.property_type,
                    d.write_enable,
                    d.max_elements,
                    d.read_level,
                    d.write_level
                );
            }
            Self::PropertyValueExtRead(p) => return write!(f, " {p}"),
            Self::PropertyValueExtResponse(p, data)
            | Self::PropertyValueExtWriteCon(p, data)
            | Self::PropertyValueExtWriteUnCon(p, data)
            | Self::PropertyValueExtInfoReport(p, data) => {
                write!(f, " {p}")?;
                data
            }
            Self::PropertyValueExtWriteConRes(p, rc) => return write!(f, " {p} rc {rc}"),
            Self::PropertyExtDescriptionRead(s) => return write!(f, " {s}"),
            Self::PropertyExtDescriptionResponse(d) => {
                return write!(
                    f,
                    " {} dpt {}.{:03} type {} write {} max {} access {}/{}",
                    d.selector,
                    d.dpt_main,
                    d.dpt_sub,
                    d.property_type,
                    d.write_enable,
                    d.max_elements,
                    d.read_level,
                    d.write_level
                );
            }
            Self::IndividualAddressSerialNumberRead { serial_number } => {
                f.write_str(" sn ")?;
                return fmt_hex(f, serial_number);
            }
            Self::IndividualAddressSerialNumberResponse {
                serial_number,
                domain_address,
            } => {
                f.write_str(" sn ")?;
                fmt_hex(f, serial_number)?;
                return write!(f, " domain {domain_address:#06x}");
            }
            Self::IndividualAddressSerialNumberWrite {
                serial_number,
                address,
            } => {
                f.write_str(" sn ")?;
                fmt_hex(f, serial_number)?;
                return write!(f, " address {address}");
            }
            Self::Unknown { apci, data } => {
                write!(f, " apci {apci:#05x}")?;
                data
            }
            Self::GroupValueRead
            | Self::IndividualAddressRead
            | Self::IndividualAddressResponse
            | Self::Restart => return Ok(()),
        };
        if !data.is_empty() {
            f.write_str(" [")?;
            fmt_hex(f, data)?;
            f.write_str("]")?;
        }
        Ok(())
    }
}
