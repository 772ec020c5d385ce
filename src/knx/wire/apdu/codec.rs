//! The layout of each service's data after the two APCI octets: [`decode`] turns a service and
//! its bytes into an [`Apdu`], [`encode`] writes an [`Apdu`]'s data into a [`Sink`] and checks
//! every field's range on the way. One arm per service in each; the codes and names come from
//! the service table (`service.rs`).
//!
//! Layouts: KNX 03.03.07 (application layer) §3; the property services' bit packing as
//! thelsing/knx `src/knx/application_layer.cpp` and xknx `xknx/telegram/apci.py` read them.

use super::{
    Apdu, ApduError, Payload, PropertyDescription, PropertyExtDescription, PropertyExtRef,
    PropertyExtSelector, PropertyRef, SHORT_MAX, Service, is_known_apci,
};
use crate::knx::address::IndividualAddress;
use crate::knx::wire::{Reader, Writer};

/// Where [`encode`] puts bytes: a [`Measure`] only counts them, an [`Emit`] writes them.
pub(super) trait Sink {
    /// Appends bytes.
    fn bytes(&mut self, data: &[u8]) -> Result<(), ApduError>;

    /// Refuses the APDU with `error` unless `ok`; a lenient [`Measure`] ignores the check.
    fn require(&mut self, ok: bool, error: ApduError) -> Result<(), ApduError>;

    fn u8(&mut self, value: u8) -> Result<(), ApduError> {
        self.bytes(&[value])
    }

    fn u16(&mut self, value: u16) -> Result<(), ApduError> {
        self.bytes(&value.to_be_bytes())
    }

    fn u24(&mut self, value: u32) -> Result<(), ApduError> {
        let [_, a, b, c] = value.to_be_bytes();
        self.bytes(&[a, b, c])
    }

    fn u32(&mut self, value: u32) -> Result<(), ApduError> {
        self.bytes(&value.to_be_bytes())
    }
}

/// Counts the bytes [`encode`] would write; `strict` makes it check the field ranges too.
#[derive(Debug, Default)]
pub(super) struct Measure {
    pub(super) len: usize,
    pub(super) strict: bool,
}

impl Sink for Measure {
    fn bytes(&mut self, data: &[u8]) -> Result<(), ApduError> {
        self.len = self.len.saturating_add(data.len());
        Ok(())
    }

    fn require(&mut self, ok: bool, error: ApduError) -> Result<(), ApduError> {
        if ok || !self.strict {
            Ok(())
        } else {
            Err(error)
        }
    }
}

/// Writes into a caller's buffer; runs after a strict [`Measure`] so its checks pass.
pub(super) struct Emit<'a> {
    pub(super) writer: Writer<'a>,
    pub(super) needed: usize,
    pub(super) available: usize,
}

impl Sink for Emit<'_> {
    fn bytes(&mut self, data: &[u8]) -> Result<(), ApduError> {
        self.writer.bytes(data).ok_or(ApduError::BufferTooSmall {
            needed: self.needed,
            available: self.available,
        })
    }

    fn require(&mut self, ok: bool, error: ApduError) -> Result<(), ApduError> {
        if ok { Ok(()) } else { Err(error) }
    }
}

fn length(service: Service, data: &[u8]) -> ApduError {
    ApduError::Length {
        service: service.short_name(),
        len: data.len(),
    }
}

fn check_len(service: Service, data: &[u8], len: usize) -> Result<(), ApduError> {
    if data.len() == len {
        Ok(())
    } else {
        Err(length(service, data))
    }
}

fn fixed<const N: usize>(service: Service, data: &[u8]) -> Result<[u8; N], ApduError> {
    <[u8; N]>::try_from(data).map_err(|_| length(service, data))
}

fn count_matches(service: Service, count: u8, data: &[u8]) -> Result<(), ApduError> {
    if usize::from(count) == data.len() {
        Ok(())
    } else {
        Err(ApduError::CountMismatch {
            service: service.short_name(),
            count,
            len: data.len(),
        })
    }
}

fn reserved(service: Service) -> ApduError {
    ApduError::Reserved {
        service: service.short_name(),
    }
}

/// Decodes the data of `service`; `low` is the low six APCI bits (data for short services).
#[allow(clippy::too_many_lines)] // one short arm per service
pub(super) fn decode(service: Service, low: u8, data: &[u8]) -> Result<Apdu, ApduError> {
    use Service as S;
    let mut r = Reader::new(data);
    let too_short = length(service, data);
    Ok(match service {
        S::GroupValueRead => {
            check_len(service, data, 0)?;
            Apdu::GroupValueRead
        }
        S::GroupValueResponse | S::GroupValueWrite => {
            let payload = if data.is_empty() {
                Payload::Short(low)
            } else if low == 0 {
                Payload::Long(data.to_vec())
            } else {
                return Err(reserved(service));
            };
            if service == S::GroupValueResponse {
                Apdu::GroupValueResponse(payload)
            } else {
                Apdu::GroupValueWrite(payload)
            }
        }
        S::IndividualAddressWrite => {
            let raw = fixed::<2>(service, data)?;
            Apdu::IndividualAddressWrite(IndividualAddress::from_raw(u16::from_be_bytes(raw)))
        }
        S::IndividualAddressRead => {
            check_len(service, data, 0)?;
            Apdu::IndividualAddressRead
        }
        S::IndividualAddressResponse => {
            check_len(service, data, 0)?;
            Apdu::IndividualAddressResponse
        }
        S::MemoryExtWrite => {
            let (count, address) = r.u8().zip(r.u24()).ok_or(too_short)?;
            let bytes = r.rest();
            count_matches(service, count, bytes)?;
            Apdu::MemoryExtWrite {
                address,
                data: bytes.to_vec(),
            }
        }
        S::MemoryExtWriteResponse | S::MemoryExtReadResponse => {
            let (return_code, address) = r.u8().zip(r.u24()).ok_or(too_short)?;
            let data = r.rest().to_vec();
            if service == S::MemoryExtWriteResponse {
                Apdu::MemoryExtWriteResponse {
                    return_code,
                    address,
                    data,
                }
            } else {
                Apdu::MemoryExtReadResponse {
                    return_code,
                    address,
                    data,
                }
            }
        }
        S::MemoryExtRead => {
            let [count, a0, a1, a2] = fixed::<4>(service, data)?;
            Apdu::MemoryExtRead {
                count,
                address: u32::from_be_bytes([0, a0, a1, a2]),
            }
        }
        S::MemoryRead => {
            let raw = fixed::<2>(service, data)?;
            Apdu::MemoryRead {
                count: low,
                address: u16::from_be_bytes(raw),
            }
        }
        S::MemoryResponse | S::MemoryWrite => {
            let address = r.u16().ok_or(too_short)?;
            let bytes = r.rest();
            count_matches(service, low, bytes)?;
            let data = bytes.to_vec();
            if service == S::MemoryResponse {
                Apdu::MemoryResponse { address, data }
            } else {
                Apdu::MemoryWrite { address, data }
            }
        }
        S::UserMemoryRead | S::UserMemoryResponse | S::UserMemoryWrite => {
            let (head, address) = r.u8().zip(r.u16()).ok_or(too_short)?;
            let count = head & 0x0F;
            let address = (u32::from(head >> 4) << 16) | u32::from(address);
            let bytes = r.rest();
            if service == S::UserMemoryRead {
                check_len(service, bytes, 0)?;
                Apdu::UserMemoryRead { count, address }
            } else {
                count_matches(service, count, bytes)?;
                let data = bytes.to_vec();
                if service == S::UserMemoryResponse {
                    Apdu::UserMemoryResponse { address, data }
                } else {
                    Apdu::UserMemoryWrite { address, data }
                }
            }
        }
        S::FunctionPropertyCommand
        | S::FunctionPropertyStateRead
        | S::FunctionPropertyStateResponse => {
            let (object_index, property_id) = r.u8().zip(r.u8()).ok_or(too_short)?;
            match service {
                S::FunctionPropertyCommand => Apdu::FunctionPropertyCommand {
                    object_index,
                    property_id,
                    data: r.rest().to_vec(),
                },
                S::FunctionPropertyStateRead => Apdu::FunctionPropertyStateRead {
                    object_index,
                    property_id,
                    data: r.rest().to_vec(),
                },
                _ => Apdu::FunctionPropertyStateResponse {
                    object_index,
                    property_id,
                    return_code: r.u8(),
                    data: r.rest().to_vec(),
                },
            }
        }
        S::DeviceDescriptorRead => {
            check_len(service, data, 0)?;
            Apdu::DeviceDescriptorRead {
                descriptor_type: low,
            }
        }
        S::DeviceDescriptorResponse => Apdu::DeviceDescriptorResponse {
            descriptor_type: low,
            data: data.to_vec(),
        },
        S::Restart => {
            check_len(service, data, 0)?;
            Apdu::Restart
        }
        S::RestartMasterReset => {
            let [erase_code, channel] = fixed::<2>(service, data)?;
            Apdu::RestartMasterReset {
                erase_code,
                channel,
            }
        }
        S::RestartResponse => {
            let [error_code, t0, t1] = fixed::<3>(service, data)?;
            Apdu::RestartResponse {
                error_code,
                process_time: u16::from_be_bytes([t0, t1]),
            }
        }
        S::AuthorizeRequest => {
            let [zero, k0, k1, k2, k3] = fixed::<5>(service, data)?;
            if zero != 0 {
                return Err(reserved(service));
            }
            Apdu::AuthorizeRequest {
                key: u32::from_be_bytes([k0, k1, k2, k3]),
            }
        }
        S::AuthorizeResponse => {
            let [level] = fixed::<1>(service, data)?;
            Apdu::AuthorizeResponse { level }
        }
        S::KeyWrite => {
            let [level, k0, k1, k2, k3] = fixed::<5>(service, data)?;
            Apdu::KeyWrite {
                level,
                key: u32::from_be_bytes([k0, k1, k2, k3]),
            }
        }
        S::KeyResponse => {
            let [level] = fixed::<1>(service, data)?;
            Apdu::KeyResponse { level }
        }
        S::PropertyValueRead | S::PropertyValueResponse | S::PropertyValueWrite => {
            let [object_index, property_id, n_hi, s_lo] = r.array::<4>().ok_or(too_short)?;
            let property = PropertyRef {
                object_index,
                property_id,
                count: n_hi >> 4,
                start_index: (u16::from(n_hi & 0x0F) << 8) | u16::from(s_lo),
            };
            let rest = r.rest();
            match service {
                S::PropertyValueRead => {
                    check_len(service, rest, 0)?;
                    Apdu::PropertyValueRead(property)
                }
                S::PropertyValueResponse => Apdu::PropertyValueResponse(property, rest.to_vec()),
                _ => Apdu::PropertyValueWrite(property, rest.to_vec()),
            }
        }
        S::PropertyDescriptionRead => {
            let [object_index, property_id, property_index] = fixed::<3>(service, data)?;
            Apdu::PropertyDescriptionRead {
                object_index,
                property_id,
                property_index,
            }
        }
        S::PropertyDescriptionResponse => {
            let [o, p, i, ty, m_hi, m_lo, access] = fixed::<7>(service, data)?;
            if ty & 0x40 != 0 || m_hi & 0xF0 != 0 {
                return Err(reserved(service));
            }
            Apdu::PropertyDescriptionResponse(PropertyDescription {
                object_index: o,
                property_id: p,
                property_index: i,
                write_enable: ty & 0x80 != 0,
                property_type: ty & 0x3F,
                max_elements: u16::from_be_bytes([m_hi, m_lo]),
                read_level: access >> 4,
                write_level: access & 0x0F,
            })
        }
        S::PropertyValueExtRead
        | S::PropertyValueExtResponse
        | S::PropertyValueExtWriteCon
        | S::PropertyValueExtWriteConRes
        | S::PropertyValueExtWriteUnCon
        | S::PropertyValueExtInfoReport => {
            let (object_type, object_instance, property_id) =
                read_ext_head(&mut r).ok_or(too_short)?;
            let (count, start_index) = r.u8().zip(r.u16()).ok_or(too_short)?;
            let p = PropertyExtRef {
                object_type,
                object_instance,
                property_id,
                count,
                start_index,
            };
            let rest = r.rest();
            match service {
                S::PropertyValueExtRead => {
                    check_len(service, rest, 0)?;
                    Apdu::PropertyValueExtRead(p)
                }
                S::PropertyValueExtResponse => Apdu::PropertyValueExtResponse(p, rest.to_vec()),
                S::PropertyValueExtWriteCon => Apdu::PropertyValueExtWriteCon(p, rest.to_vec()),
                S::PropertyValueExtWriteConRes => {
                    let [return_code] = fixed::<1>(service, rest)?;
                    Apdu::PropertyValueExtWriteConRes(p, return_code)
                }
                S::PropertyValueExtWriteUnCon => Apdu::PropertyValueExtWriteUnCon(p, rest.to_vec()),
                _ => Apdu::PropertyValueExtInfoReport(p, rest.to_vec()),
            }
        }
        S::PropertyExtDescriptionRead | S::PropertyExtDescriptionResponse => {
            let (object_type, object_instance, property_id) =
                read_ext_head(&mut r).ok_or(too_short)?;
            let index = r.u16().ok_or(too_short)?;
            let selector = PropertyExtSelector {
                object_type,
                object_instance,
                property_id,
                description_type: u8::try_from(index >> 12).unwrap_or(0),
                property_index: index & 0x0FFF,
            };
            let rest = r.rest();
            if service == S::PropertyExtDescriptionRead {
                check_len(service, rest, 0)?;
                return Ok(Apdu::PropertyExtDescriptionRead(selector));
            }
            let [m0, m1, s0, s1, ty, n0, n1, access] = fixed::<8>(service, rest)?;
            if ty & 0x40 != 0 {
                return Err(reserved(service));
            }
            Apdu::PropertyExtDescriptionResponse(PropertyExtDescription {
                selector,
                dpt_main: u16::from_be_bytes([m0, m1]),
                dpt_sub: u16::from_be_bytes([s0, s1]),
                write_enable: ty & 0x80 != 0,
                property_type: ty & 0x3F,
                max_elements: u16::from_be_bytes([n0, n1]),
                read_level: access >> 4,
                write_level: access & 0x0F,
            })
        }
        S::IndividualAddressSerialNumberRead => Apdu::IndividualAddressSerialNumberRead {
            serial_number: fixed::<6>(service, data)?,
        },
        S::IndividualAddressSerialNumberResponse => {
            let raw = fixed::<10>(service, data)?;
            let mut r = Reader::new(&raw);
            let (Some(serial_number), Some(domain_address), Some(zero)) =
                (r.array::<6>(), r.u16(), r.u16())
            else {
                return Err(too_short);
            };
            if zero != 0 {
                return Err(reserved(service));
            }
            Apdu::IndividualAddressSerialNumberResponse {
                serial_number,
                domain_address,
            }
        }
        S::IndividualAddressSerialNumberWrite => {
            let raw = fixed::<12>(service, data)?;
            let mut r = Reader::new(&raw);
            let (Some(serial_number), Some(address), Some(zero)) =
                (r.array::<6>(), r.u16(), r.array::<4>())
            else {
                return Err(too_short);
            };
            if zero != [0; 4] {
                return Err(reserved(service));
            }
            Apdu::IndividualAddressSerialNumberWrite {
                serial_number,
                address: IndividualAddress::from_raw(address),
            }
        }
    })
}

/// The six data bits an APDU puts into the low bits of its APCI (zero for exact services).
pub(super) fn short_data(apdu: &Apdu) -> u16 {
    let bits = match apdu {
        Apdu::GroupValueResponse(Payload::Short(v)) | Apdu::GroupValueWrite(Payload::Short(v)) => {
            *v
        }
        Apdu::MemoryRead { count, .. } => *count,
        Apdu::MemoryResponse { data, .. } | Apdu::MemoryWrite { data, .. } => {
            u8::try_from(data.len()).unwrap_or(u8::MAX)
        }
        Apdu::DeviceDescriptorRead { descriptor_type }
        | Apdu::DeviceDescriptorResponse {
            descriptor_type, ..
        } => *descriptor_type,
        _ => 0,
    };
    u16::from(bits & SHORT_MAX)
}

/// Writes the APCI octets and the data of `apdu`, checking each field's range.
#[allow(clippy::too_many_lines)] // one short arm per service
pub(super) fn encode(apdu: &Apdu, s: &mut impl Sink) -> Result<(), ApduError> {
    let service = apdu.name();
    let field = |field: &'static str| ApduError::Field { service, field };
    s.u16(apdu.apci())?;
    match apdu {
        Apdu::GroupValueRead
        | Apdu::IndividualAddressRead
        | Apdu::IndividualAddressResponse
        | Apdu::Restart => {}
        Apdu::GroupValueResponse(p) | Apdu::GroupValueWrite(p) => match p {
            Payload::Short(v) => s.require(*v <= SHORT_MAX, field("value"))?,
            Payload::Long(bytes) => {
                s.require(!bytes.is_empty(), field("value"))?;
                s.bytes(bytes)?;
            }
        },
        Apdu::IndividualAddressWrite(ia) => s.u16(ia.raw())?,
        Apdu::MemoryExtWrite { address, data } => {
            s.require(*address <= 0x00FF_FFFF, field("address"))?;
            s.require(data.len() <= 255, field("data"))?;
            s.u8(u8::try_from(data.len()).unwrap_or(u8::MAX))?;
            s.u24(*address)?;
            s.bytes(data)?;
        }
        Apdu::MemoryExtWriteResponse {
            return_code,
            address,
            data,
        }
        | Apdu::MemoryExtReadResponse {
            return_code,
            address,
            data,
        } => {
            s.require(*address <= 0x00FF_FFFF, field("address"))?;
            s.u8(*return_code)?;
            s.u24(*address)?;
            s.bytes(data)?;
        }
        Apdu::MemoryExtRead { count, address } => {
            s.require(*address <= 0x00FF_FFFF, field("address"))?;
            s.u8(*count)?;
            s.u24(*address)?;
        }
        Apdu::MemoryRead { count, address } => {
            s.require(*count <= SHORT_MAX, field("count"))?;
            s.u16(*address)?;
        }
        Apdu::MemoryResponse { address, data } | Apdu::MemoryWrite { address, data } => {
            s.require(data.len() <= usize::from(SHORT_MAX), field("data"))?;
            s.u16(*address)?;
            s.bytes(data)?;
        }
        Apdu::UserMemoryRead { count, address } => {
            s.require(*count <= 0x0F, field("count"))?;
            s.require(*address <= 0x000F_FFFF, field("address"))?;
            write_user_memory_head(s, *count, *address)?;
        }
        Apdu::UserMemoryResponse { address, data } | Apdu::UserMemoryWrite { address, data } => {
            s.require(data.len() <= 0x0F, field("data"))?;
            s.require(*address <= 0x000F_FFFF, field("address"))?;
            write_user_memory_head(s, u8::try_from(data.len()).unwrap_or(0), *address)?;
            s.bytes(data)?;
        }
        Apdu::FunctionPropertyCommand {
            object_index,
            property_id,
            data,
        }
        | Apdu::FunctionPropertyStateRead {
            object_index,
            property_id,
            data,
        } => {
            s.bytes(&[*object_index, *property_id])?;
            s.bytes(data)?;
        }
        Apdu::FunctionPropertyStateResponse {
            object_index,
            property_id,
            return_code,
            data,
        } => {
            s.require(return_code.is_some() || data.is_empty(), field("data"))?;
            s.bytes(&[*object_index, *property_id])?;
            if let Some(code) = return_code {
                s.u8(*code)?;
            }
            s.bytes(data)?;
        }
        Apdu::DeviceDescriptorRead { descriptor_type } => {
            s.require(*descriptor_type <= SHORT_MAX, field("descriptor_type"))?;
        }
        Apdu::DeviceDescriptorResponse {
            descriptor_type,
            data,
        } => {
            s.require(*descriptor_type <= SHORT_MAX, field("descriptor_type"))?;
            s.bytes(data)?;
        }
        Apdu::RestartMasterReset {
            erase_code,
            channel,
        } => s.bytes(&[*erase_code, *channel])?,
        Apdu::RestartResponse {
            error_code,
            process_time,
        } => {
            s.u8(*error_code)?;
            s.u16(*process_time)?;
        }
        Apdu::AuthorizeRequest { key } => {
            s.u8(0)?;
            s.u32(*key)?;
        }
        Apdu::AuthorizeResponse { level } | Apdu::KeyResponse { level } => s.u8(*level)?,
        Apdu::KeyWrite { level, key } => {
            s.u8(*level)?;
            s.u32(*key)?;
        }
        Apdu::PropertyValueRead(p) => write_property_ref(s, *p, field)?,
        Apdu::PropertyValueResponse(p, data) | Apdu::PropertyValueWrite(p, data) => {
            write_property_ref(s, *p, field)?;
            s.bytes(data)?;
        }
        Apdu::PropertyDescriptionRead {
            object_index,
            property_id,
            property_index,
        } => s.bytes(&[*object_index, *property_id, *property_index])?,
        Apdu::PropertyDescriptionResponse(d) => {
            s.require(d.property_type <= SHORT_MAX, field("property_type"))?;
            s.require(d.max_elements <= 0x0FFF, field("max_elements"))?;
            s.require(d.read_level <= 0x0F, field("read_level"))?;
            s.require(d.write_level <= 0x0F, field("write_level"))?;
            s.bytes(&[d.object_index, d.property_id, d.property_index])?;
            s.u8((u8::from(d.write_enable) << 7) | d.property_type)?;
            s.u16(d.max_elements)?;
            s.u8((d.read_level << 4) | d.write_level)?;
        }
        Apdu::PropertyValueExtRead(p) => write_property_ext_ref(s, p, field)?,
        Apdu::PropertyValueExtResponse(p, data)
        | Apdu::PropertyValueExtWriteCon(p, data)
        | Apdu::PropertyValueExtWriteUnCon(p, data)
        | Apdu::PropertyValueExtInfoReport(p, data) => {
            write_property_ext_ref(s, p, field)?;
            s.bytes(data)?;
        }
        Apdu::PropertyValueExtWriteConRes(p, return_code) => {
            write_property_ext_ref(s, p, field)?;
            s.u8(*return_code)?;
        }
        Apdu::PropertyExtDescriptionRead(sel) => write_property_ext_selector(s, sel, field)?,
        Apdu::PropertyExtDescriptionResponse(d) => {
            write_property_ext_selector(s, &d.selector, field)?;
            s.require(d.property_type <= SHORT_MAX, field("property_type"))?;
            s.require(d.read_level <= 0x0F, field("read_level"))?;
            s.require(d.write_level <= 0x0F, field("write_level"))?;
            s.u16(d.dpt_main)?;
            s.u16(d.dpt_sub)?;
            s.u8((u8::from(d.write_enable) << 7) | d.property_type)?;
            s.u16(d.max_elements)?;
            s.u8((d.read_level << 4) | d.write_level)?;
        }
        Apdu::IndividualAddressSerialNumberRead { serial_number } => s.bytes(serial_number)?,
        Apdu::IndividualAddressSerialNumberResponse {
            serial_number,
            domain_address,
        } => {
            s.bytes(serial_number)?;
            s.u16(*domain_address)?;
            s.u16(0)?;
        }
        Apdu::IndividualAddressSerialNumberWrite {
            serial_number,
            address,
        } => {
            s.bytes(serial_number)?;
            s.u16(address.raw())?;
            s.u32(0)?;
        }
        Apdu::Unknown { apci, data } => {
            s.require(*apci <= 0x03FF, field("apci"))?;
            s.require(!is_known_apci(*apci), ApduError::KnownApci(*apci))?;
            s.bytes(data)?;
        }
    }
    Ok(())
}

fn write_user_memory_head(s: &mut impl Sink, count: u8, address: u32) -> Result<(), ApduError> {
    let [_, ext, hi, lo] = address.to_be_bytes();
    s.bytes(&[((ext & 0x0F) << 4) | (count & 0x0F), hi, lo])
}

/// Reads the 5-byte head of the extended property services: object type (16 bits), object
/// instance (12 bits) and property id (12 bits).
fn read_ext_head(r: &mut Reader<'_>) -> Option<(u16, u16, u16)> {
    let object_type = r.u16()?;
    let [a, b, c] = r.array::<3>()?;
    let object_instance = (u16::from(a) << 4) | u16::from(b >> 4);
    let property_id = (u16::from(b & 0x0F) << 8) | u16::from(c);
    Some((object_type, object_instance, property_id))
}

fn write_ext_head(
    s: &mut impl Sink,
    object_type: u16,
    object_instance: u16,
    property_id: u16,
    field: impl Fn(&'static str) -> ApduError,
) -> Result<(), ApduError> {
    s.require(object_instance <= 0x0FFF, field("object_instance"))?;
    s.require(property_id <= 0x0FFF, field("property_id"))?;
    s.u16(object_type)?;
    s.u24((u32::from(object_instance & 0x0FFF) << 12) | u32::from(property_id & 0x0FFF))
}

fn write_property_ref(
    s: &mut impl Sink,
    p: PropertyRef,
    field: impl Fn(&'static str) -> ApduError,
) -> Result<(), ApduError> {
    s.require(p.count <= 0x0F, field("count"))?;
    s.require(p.start_index <= 0x0FFF, field("start_index"))?;
    s.bytes(&[p.object_index, p.property_id])?;
    s.u16((u16::from(p.count) << 12) | (p.start_index & 0x0FFF))
}

fn write_property_ext_ref(
    s: &mut impl Sink,
    p: &PropertyExtRef,
    field: impl Fn(&'static str) -> ApduError,
) -> Result<(), ApduError> {
    write_ext_head(s, p.object_type, p.object_instance, p.property_id, field)?;
    s.u8(p.count)?;
    s.u16(p.start_index)
}

fn write_property_ext_selector(
    s: &mut impl Sink,
    sel: &PropertyExtSelector,
    field: impl Fn(&'static str) -> ApduError,
) -> Result<(), ApduError> {
    write_ext_head(
        s,
        sel.object_type,
        sel.object_instance,
        sel.property_id,
        &field,
    )?;
    s.require(sel.description_type <= 0x0F, field("description_type"))?;
    s.require(sel.property_index <= 0x0FFF, field("property_index"))?;
    s.u16((u16::from(sel.description_type & 0x0F) << 12) | (sel.property_index & 0x0FFF))
}
