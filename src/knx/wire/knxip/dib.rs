//! Description information blocks: device information, supported service families, and the
//! device description they make up.

use std::net::Ipv4Addr;

use super::{DibType, KnxIpError, Medium, Result, ServiceFamilyId, parse_struct, write_struct};
use crate::knx::address::IndividualAddress;
use crate::knx::wire::{Reader, Writer};

/// Length of a friendly name in the device information DIB.
pub const FRIENDLY_NAME_LEN: usize = 30;

/// The device information DIB (type 0x01, 54 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceInfo {
    /// KNX medium.
    pub medium: Medium,
    /// Device status; bit 0 = programming mode (other bits kept as received).
    pub device_status: u8,
    /// The device's individual address.
    pub individual_address: IndividualAddress,
    /// Project-installation identifier.
    pub project_installation_id: u16,
    /// KNX serial number.
    pub serial_number: [u8; 6],
    /// Routing multicast address (0.0.0.0 if the device does not route).
    pub multicast_address: Ipv4Addr,
    /// MAC address.
    pub mac_address: [u8; 6],
    /// Friendly name, ISO 8859-1, zero padded (kept raw; see [`DeviceInfo::name`]).
    pub friendly_name: [u8; FRIENDLY_NAME_LEN],
}

impl DeviceInfo {
    /// Length of the DIB.
    pub const LEN: u8 = 54;

    /// True when the device is in programming mode.
    pub const fn programming_mode(&self) -> bool {
        self.device_status & 0x01 != 0
    }

    /// The friendly name decoded from ISO 8859-1, up to the first NUL.
    pub fn name(&self) -> String {
        self.friendly_name
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| char::from(*b))
            .collect()
    }

    /// Encodes a friendly name: at most 30 ISO 8859-1 characters, no NUL, zero padded.
    pub fn encode_name(name: &str) -> Result<[u8; FRIENDLY_NAME_LEN]> {
        let mut out = [0u8; FRIENDLY_NAME_LEN];
        let mut slots = out.iter_mut();
        for c in name.chars() {
            let byte = u8::try_from(u32::from(c))
                .ok()
                .filter(|b| *b != 0)
                .ok_or(KnxIpError::Field("friendly_name"))?;
            let slot = slots.next().ok_or(KnxIpError::Field("friendly_name"))?;
            *slot = byte;
        }
        Ok(out)
    }

    pub(super) fn parse_data(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        let err = KnxIpError::StructureLength {
            what: "device info DIB",
            len: u8::try_from(data.len() + 2).unwrap_or(u8::MAX),
        };
        let (medium, device_status) = r.u8().zip(r.u8()).ok_or(err)?;
        let (ia, project) = r.u16().zip(r.u16()).ok_or(err)?;
        let serial_number = r.array::<6>().ok_or(err)?;
        let multicast = r.array::<4>().ok_or(err)?;
        let mac_address = r.array::<6>().ok_or(err)?;
        let friendly_name = r.array::<FRIENDLY_NAME_LEN>().ok_or(err)?;
        if !r.rest().is_empty() {
            return Err(err);
        }
        Ok(Self {
            medium: Medium::from(medium),
            device_status,
            individual_address: IndividualAddress::from_raw(ia),
            project_installation_id: project,
            serial_number,
            multicast_address: Ipv4Addr::from(multicast),
            mac_address,
            friendly_name,
        })
    }

    pub(super) fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        w.u8(Self::LEN)?;
        w.u8(u8::from(DibType::DeviceInfo))?;
        w.u8(u8::from(self.medium))?;
        w.u8(self.device_status)?;
        w.u16(self.individual_address.raw())?;
        w.u16(self.project_installation_id)?;
        w.bytes(&self.serial_number)?;
        w.bytes(&self.multicast_address.octets())?;
        w.bytes(&self.mac_address)?;
        w.bytes(&self.friendly_name)
    }
}

/// One entry of the supported-service-families DIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceFamily {
    /// The family.
    pub family: ServiceFamilyId,
    /// Its version.
    pub version: u8,
}

/// A DIB this module does not decode, kept raw.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawDib {
    /// The DIB type.
    pub dib_type: DibType,
    /// The bytes after the type (at most 253).
    pub data: Vec<u8>,
}

/// The DIBs of a SEARCH_RESPONSE or DESCRIPTION_RESPONSE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceDescription {
    /// The device information DIB (always first).
    pub device_info: DeviceInfo,
    /// The supported service families DIB (always second).
    pub service_families: Vec<ServiceFamily>,
    /// Further DIBs, in order, raw.
    pub other_dibs: Vec<RawDib>,
}

impl DeviceDescription {
    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (ty, data) = parse_struct(r, "DIB")?;
        if DibType::from(ty) != DibType::DeviceInfo {
            return Err(KnxIpError::MissingDib("device info"));
        }
        let device_info = DeviceInfo::parse_data(data)?;
        let (ty, data) = parse_struct(r, "DIB")?;
        if DibType::from(ty) != DibType::SupportedServiceFamilies {
            return Err(KnxIpError::MissingDib("supported service families"));
        }
        let pairs = data.chunks_exact(2);
        if !pairs.remainder().is_empty() {
            return Err(KnxIpError::StructureLength {
                what: "service families DIB",
                len: u8::try_from(data.len() + 2).unwrap_or(u8::MAX),
            });
        }
        let service_families = pairs
            .filter_map(|pair| match pair {
                [family, version] => Some(ServiceFamily {
                    family: ServiceFamilyId::from(*family),
                    version: *version,
                }),
                _ => None,
            })
            .collect();
        let mut other_dibs = Vec::new();
        while !r.is_empty() {
            let (ty, data) = parse_struct(r, "DIB")?;
            other_dibs.push(RawDib {
                dib_type: DibType::from(ty),
                data: data.to_vec(),
            });
        }
        Ok(Self {
            device_info,
            service_families,
            other_dibs,
        })
    }

    pub(super) fn buffer_len(&self) -> usize {
        usize::from(DeviceInfo::LEN)
            + 2
            + 2 * self.service_families.len()
            + self
                .other_dibs
                .iter()
                .map(|d| 2 + d.data.len())
                .sum::<usize>()
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.service_families.len() > 126 {
            return Err(KnxIpError::Field("service_families"));
        }
        for dib in &self.other_dibs {
            if dib.data.len() > 253 {
                return Err(KnxIpError::Field("other_dibs"));
            }
        }
        Ok(())
    }

    pub(super) fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        self.device_info.write(w)?;
        w.u8(u8::try_from(2 + 2 * self.service_families.len()).ok()?)?;
        w.u8(u8::from(DibType::SupportedServiceFamilies))?;
        for sf in &self.service_families {
            w.u8(u8::from(sf.family))?;
            w.u8(sf.version)?;
        }
        for dib in &self.other_dibs {
            write_struct(w, u8::from(dib.dib_type), &dib.data)?;
        }
        Some(())
    }
}
