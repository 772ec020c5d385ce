//! The machine's network interfaces as data: name, addresses, MAC and flags, read with
//! `getifaddrs` (Linux; empty elsewhere).
//!
//! This module owns reading the interfaces, nothing more. What to make of them is the
//! callers': the status page picks the address in use (`web::network`), the built-in
//! KNXnet/IP server the interfaces to join the discovery group on (`knx::link::driver`).
//! Both take the list as an argument, so their choices are tested without the machine's
//! interfaces.

use std::net::IpAddr;

/// One network interface with its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// Name (`eth0`).
    pub name: String,
    /// Its IP addresses, in the order the system lists them.
    pub addresses: Vec<IpAddr>,
    /// Its MAC address (`aa:bb:cc:dd:ee:ff`), if it has one other than all zeros.
    pub mac: Option<String>,
    /// The loopback interface.
    pub loopback: bool,
    /// The interface is up (IFF_UP).
    pub up: bool,
    /// The interface supports multicast (IFF_MULTICAST).
    pub multicast: bool,
}

/// The machine's network interfaces (empty where they cannot be read).
#[cfg(target_os = "linux")]
pub fn interfaces() -> Vec<Interface> {
    use nix::net::if_::InterfaceFlags;
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<Interface> = Vec::new();
    for a in addrs {
        if !out.iter().any(|i| i.name == a.interface_name) {
            out.push(Interface {
                name: a.interface_name.clone(),
                ..Interface::default()
            });
        }
        let Some(entry) = out.iter_mut().find(|i| i.name == a.interface_name) else {
            continue;
        };
        entry.loopback |= a.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        entry.up |= a.flags.contains(InterfaceFlags::IFF_UP);
        entry.multicast |= a.flags.contains(InterfaceFlags::IFF_MULTICAST);
        let Some(address) = a.address else { continue };
        if let Some(v4) = address.as_sockaddr_in() {
            entry.addresses.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            entry.addresses.push(IpAddr::V6(v6.ip()));
        } else if let Some(mac) = address
            .as_link_addr()
            .and_then(nix::sys::socket::LinkAddr::addr)
            && mac != [0; 6]
        {
            entry.mac = Some(
                mac.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            );
        }
    }
    out
}

/// The machine's network interfaces (not readable on this platform).
#[cfg(not(target_os = "linux"))]
pub fn interfaces() -> Vec<Interface> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// The machine's own interfaces are read: there is at least loopback, up, with
    /// 127.0.0.1.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_machines_interfaces_are_read() {
        let list = interfaces();
        assert!(
            list.iter().any(|i| i.loopback
                && i.up
                && i.addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST))),
            "{list:?}"
        );
    }
}
