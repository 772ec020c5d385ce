//! The KNXnet/IP parameter object (interface object type 11): the IP settings of the
//! gateway's KNXnet/IP service container as ETS reads them from a device it reaches over IP.
//!
//! This module owns the values ([`IpParameters`], filled by the gateway from the machine's
//! network state and its configuration) and their encoding per property
//! ([`knxip_parameter_elements`]); which properties exist and that none is writable here is
//! the property table's ([`super::properties::knxip_find`]). The built-in tunnelling server
//! answers M_PropRead with it; M_PropWrite goes to the device stack, which refuses every
//! property of this object as read-only.
//!
//! Encodings (KNX 03.08.03 "KNXnet/IP Device Management" v01.07.03 §2.5): IP addresses,
//! masks and gateways as PDT_UNSIGNED_LONG, big-endian; assignment methods 1 manually,
//! 2 BootP, 4 DHCP, 8 AutoIP (one value for the current method, the enabled ones or-ed
//! together); IP capabilities bit 0 BootP, bit 1 DHCP, bit 2 AutoIP; device capabilities
//! bit 0 device management, bit 1 tunnelling, bit 2 routing; device state bit 0 KNX fault,
//! bit 1 IP fault; the system setup multicast address fixed at 224.0.23.12 and the routing
//! multicast address by default equal to it; TTL 16 by default; the friendly name 30
//! ISO 8859-1 octets, NUL-padded.

use std::net::Ipv4Addr;

use super::properties::{ip_pid, pid};
use crate::knx::address::IndividualAddress;

/// IP assignment methods (PID 54, 55).
pub mod method {
    /// Manually (static).
    pub const MANUAL: u8 = 1;
    /// BootP.
    pub const BOOTP: u8 = 2;
    /// DHCP.
    pub const DHCP: u8 = 4;
    /// AutoIP (IPv4 link-local, RFC 3927).
    pub const AUTO_IP: u8 = 8;
}

/// IP capabilities (PID 56): DHCP and AutoIP, as systemd-networkd provides them
/// (`hw::network`: DHCP with the IPv4 link-local fallback).
pub const IP_CAPABILITIES: u8 = 0b110;

/// KNXnet/IP device capabilities (PID 68): device management (bit 0) and tunnelling (bit 1).
pub const DEVICE_CAPABILITIES: u16 = 0b11;

/// The KNXnet/IP system setup multicast address (PID 65, fixed).
pub const SYSTEM_SETUP_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 23, 12);

/// The default TTL (PID 67).
pub const DEFAULT_TTL: u8 = 16;

/// Length of the friendly name (PID 76), in one-byte elements.
pub const FRIENDLY_NAME_LEN: usize = 30;

/// The IP settings in force and as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpParameters {
    /// How the current address was obtained ([`method`]; 0 = not known).
    pub current_method: u8,
    /// The enabled assignment methods ([`method`], or-ed).
    pub enabled_methods: u8,
    /// The address in use (0.0.0.0 = not known).
    pub current_address: Ipv4Addr,
    /// Its subnet mask.
    pub current_mask: Ipv4Addr,
    /// The default gateway in use.
    pub current_gateway: Ipv4Addr,
    /// The configured static address (used when DHCP is off).
    pub address: Ipv4Addr,
    /// The configured subnet mask.
    pub mask: Ipv4Addr,
    /// The configured default gateway.
    pub gateway: Ipv4Addr,
    /// The MAC address of the interface in use.
    pub mac: [u8; 6],
}

impl Default for IpParameters {
    /// Nothing known yet: every address 0.0.0.0, no method.
    fn default() -> Self {
        Self {
            current_method: 0,
            enabled_methods: 0,
            current_address: Ipv4Addr::UNSPECIFIED,
            current_mask: Ipv4Addr::UNSPECIFIED,
            current_gateway: Ipv4Addr::UNSPECIFIED,
            address: Ipv4Addr::UNSPECIFIED,
            mask: Ipv4Addr::UNSPECIFIED,
            gateway: Ipv4Addr::UNSPECIFIED,
            mac: [0; 6],
        }
    }
}

/// The elements of property `id` of the KNXnet/IP parameter object, or `None` if it has no
/// such property. `own` is the device's individual address, `friendly_name` the name the
/// server also reports in its device information DIB.
pub fn knxip_parameter_elements(
    p: &IpParameters,
    own: IndividualAddress,
    friendly_name: &str,
    id: u8,
) -> Option<Vec<Vec<u8>>> {
    let ip = |a: Ipv4Addr| vec![a.octets().to_vec()];
    Some(match id {
        pid::OBJECT_TYPE => vec![
            super::properties::KNXIP_PARAMETER_TYPE
                .to_be_bytes()
                .to_vec(),
        ],
        // Factory default; ETS's project number is not kept by this device.
        ip_pid::PROJECT_INSTALLATION_ID => vec![vec![0, 0]],
        ip_pid::KNX_INDIVIDUAL_ADDRESS => vec![own.raw().to_be_bytes().to_vec()],
        ip_pid::CURRENT_IP_ASSIGNMENT_METHOD => vec![vec![p.current_method]],
        ip_pid::IP_ASSIGNMENT_METHOD => vec![vec![p.enabled_methods]],
        ip_pid::IP_CAPABILITIES => vec![vec![IP_CAPABILITIES]],
        ip_pid::CURRENT_IP_ADDRESS => ip(p.current_address),
        ip_pid::CURRENT_SUBNET_MASK => ip(p.current_mask),
        ip_pid::CURRENT_DEFAULT_GATEWAY => ip(p.current_gateway),
        ip_pid::IP_ADDRESS => ip(p.address),
        ip_pid::SUBNET_MASK => ip(p.mask),
        ip_pid::DEFAULT_GATEWAY => ip(p.gateway),
        ip_pid::MAC_ADDRESS => vec![p.mac.to_vec()],
        ip_pid::SYSTEM_SETUP_MULTICAST_ADDRESS | ip_pid::ROUTING_MULTICAST_ADDRESS => {
            ip(SYSTEM_SETUP_MULTICAST)
        }
        ip_pid::TTL => vec![vec![DEFAULT_TTL]],
        ip_pid::KNXNETIP_DEVICE_CAPABILITIES => vec![DEVICE_CAPABILITIES.to_be_bytes().to_vec()],
        // No KNX fault, no IP fault: the answer itself travelled over IP, and the bus of a
        // server link is the server.
        ip_pid::KNXNETIP_DEVICE_STATE => vec![vec![0]],
        ip_pid::FRIENDLY_NAME => {
            let mut name: Vec<u8> = friendly_name
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .take(FRIENDLY_NAME_LEN)
                .collect();
            name.resize(FRIENDLY_NAME_LEN, 0);
            name.into_iter().map(|b| vec![b]).collect()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knx::device::properties::knxip_find;

    fn params() -> IpParameters {
        IpParameters {
            current_method: method::DHCP,
            enabled_methods: method::DHCP | method::AUTO_IP,
            current_address: Ipv4Addr::new(192, 168, 1, 20),
            current_mask: Ipv4Addr::new(255, 255, 255, 0),
            current_gateway: Ipv4Addr::new(192, 168, 1, 1),
            address: Ipv4Addr::new(192, 168, 1, 10),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            gateway: Ipv4Addr::new(192, 168, 1, 1),
            mac: [2, 0, 0, 0, 0, 1],
        }
    }

    /// Every property of the table has a value of its element size, and nothing else has one.
    #[test]
    fn every_property_of_the_table_has_a_value_of_its_size() {
        let own = IndividualAddress::from_raw(0x110A);
        for id in 0..=255u8 {
            let value = knxip_parameter_elements(&params(), own, "knx-echarge", id);
            match knxip_find(id) {
                Some(info) => {
                    let elements = value.unwrap_or_else(|| panic!("PID {id} has no value"));
                    assert!(!elements.is_empty());
                    assert!(elements.iter().all(|e| e.len() == info.size), "PID {id}");
                    assert!(!info.writable, "PID {id} is read-only here");
                }
                None => assert_eq!(value, None, "PID {id} is not in the table"),
            }
        }
    }

    #[test]
    fn values_are_encoded_as_knx_03_08_03_says() {
        let own = IndividualAddress::from_raw(0x110A);
        let one = |id| {
            knxip_parameter_elements(&params(), own, "knx-echarge", id)
                .unwrap()
                .concat()
        };
        assert_eq!(one(ip_pid::CURRENT_IP_ADDRESS), [192, 168, 1, 20]);
        assert_eq!(one(ip_pid::CURRENT_SUBNET_MASK), [255, 255, 255, 0]);
        assert_eq!(one(ip_pid::KNX_INDIVIDUAL_ADDRESS), [0x11, 0x0A]);
        assert_eq!(one(ip_pid::CURRENT_IP_ASSIGNMENT_METHOD), [4]);
        assert_eq!(one(ip_pid::IP_ASSIGNMENT_METHOD), [12]);
        assert_eq!(
            one(ip_pid::SYSTEM_SETUP_MULTICAST_ADDRESS),
            [224, 0, 23, 12]
        );
        assert_eq!(one(ip_pid::KNXNETIP_DEVICE_CAPABILITIES), [0, 3]);
        let name = one(ip_pid::FRIENDLY_NAME);
        assert_eq!(name.len(), 30);
        assert_eq!(&name[..11], b"knx-echarge");
        assert!(name[11..].iter().all(|b| *b == 0));
    }
}
