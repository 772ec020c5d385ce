//! The machine's network interfaces as data: name, addresses with their IPv4 netmasks, MAC
//! and flags, read with `getifaddrs` (Linux; empty elsewhere), and the IPv4 default gateway
//! (`/proc/net/route`).
//!
//! This module owns reading them and the one choice of "the address in use" ([`choose`]),
//! which the status page (`web::network`) and the KNXnet/IP parameter object
//! (`gateway::ip_parameters`) both show. The built-in KNXnet/IP server picks the interfaces to
//! join the discovery group on (`knx::link::driver`). All take the list as an argument, so
//! their choices are tested without the machine's interfaces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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
    /// The netmask of each of its IPv4 addresses.
    pub netmasks: Vec<(Ipv4Addr, Ipv4Addr)>,
}

impl Interface {
    /// The netmask of `address` on this interface, if it carries it.
    pub fn netmask(&self, address: Ipv4Addr) -> Option<Ipv4Addr> {
        self.netmasks
            .iter()
            .find(|(a, _)| *a == address)
            .map(|(_, m)| *m)
    }

    /// The MAC address as bytes (all zeros when it has none or it does not parse).
    pub fn mac_bytes(&self) -> [u8; 6] {
        let mut out = [0u8; 6];
        let Some(mac) = &self.mac else { return out };
        let parts: Vec<u8> = mac
            .split(':')
            .filter_map(|p| u8::from_str_radix(p, 16).ok())
            .collect();
        if let Ok(bytes) = <[u8; 6]>::try_from(parts.as_slice()) {
            out = bytes;
        }
        out
    }
}

/// An IPv4 link-local address (169.254/16, RFC 3927).
pub fn link_local_v4(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_link_local())
}

fn usable_v6(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && !v6.is_unicast_link_local(),
        IpAddr::V4(_) => false,
    }
}

/// The address in use and its interface: the listener's address if it is bound to one; else
/// the interface carrying `configured` (if given); else the first up, non-loopback interface
/// with a routable IPv4, then with a link-local IPv4, then with a global IPv6 address, then a
/// loopback IPv4. Interfaces are taken in name order, so the choice does not depend on the
/// order the system lists them in.
pub fn choose(
    listen: Option<SocketAddr>,
    configured: Option<IpAddr>,
    interfaces: &[Interface],
) -> Option<(IpAddr, Option<&Interface>)> {
    let carrying = |ip: IpAddr| interfaces.iter().find(|i| i.addresses.contains(&ip));
    if let Some(addr) = listen.filter(|a| !a.ip().is_unspecified()) {
        return Some((addr.ip(), carrying(addr.ip())));
    }
    if let Some(ip) = configured.filter(|ip| !ip.is_unspecified())
        && let Some(i) = carrying(ip)
    {
        return Some((ip, Some(i)));
    }
    let mut sorted: Vec<&Interface> = interfaces.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let pick = |wanted: &dyn Fn(&Interface, &IpAddr) -> bool| {
        sorted.iter().find_map(|i| {
            i.addresses
                .iter()
                .find(|ip| wanted(i, ip))
                .map(|ip| (*ip, Some(*i)))
        })
    };
    pick(&|i, ip| i.up && !i.loopback && ip.is_ipv4() && !ip.is_loopback() && !link_local_v4(ip))
        .or_else(|| pick(&|i, ip| i.up && !i.loopback && link_local_v4(ip)))
        .or_else(|| pick(&|i, ip| i.up && !i.loopback && usable_v6(ip)))
        .or_else(|| pick(&|_, ip| ip.is_ipv4() && ip.is_loopback()))
}

/// The IPv4 default gateway in a `/proc/net/route` table: the gateway of the first route with
/// destination and mask 0 (columns `Iface Destination Gateway Flags … Mask …`, addresses as
/// 8 hex digits in the kernel's byte order, little-endian on the machines this runs on).
pub fn parse_default_gateway(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let hex = |i: usize| cols.get(i).and_then(|c| u32::from_str_radix(c, 16).ok());
        (hex(1)? == 0 && hex(7)? == 0 && hex(2)? != 0)
            .then(|| Ipv4Addr::from(hex(2).unwrap_or(0).to_le_bytes()))
    })
}

/// The machine's IPv4 default gateway (`None` if it has none or it cannot be read).
pub fn default_gateway() -> Option<Ipv4Addr> {
    std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|t| parse_default_gateway(&t))
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
            if let Some(mask) = a.netmask.as_ref().and_then(|m| m.as_sockaddr_in()) {
                entry.netmasks.push((v4.ip(), mask.ip()));
            }
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
    use super::*;

    /// A `/proc/net/route` of a machine on 192.168.1.0/24 with its router at 192.168.1.1
    /// (`ip route`: default via 192.168.1.1 dev eth0).
    #[test]
    fn the_default_gateway_is_read_from_the_route_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        assert_eq!(
            parse_default_gateway(table),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        assert_eq!(parse_default_gateway(""), None);
        assert_eq!(parse_default_gateway("Iface\ngarbage line\n"), None);
    }

    #[test]
    fn mac_bytes_and_netmask() {
        let i = Interface {
            mac: Some("02:00:5e:10:00:01".into()),
            netmasks: vec![(Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(255, 255, 0, 0))],
            ..Interface::default()
        };
        assert_eq!(i.mac_bytes(), [2, 0, 0x5e, 0x10, 0, 1]);
        assert_eq!(
            i.netmask(Ipv4Addr::new(10, 0, 0, 2)),
            Some(Ipv4Addr::new(255, 255, 0, 0))
        );
        assert_eq!(i.netmask(Ipv4Addr::new(10, 0, 0, 3)), None);
        assert_eq!(Interface::default().mac_bytes(), [0; 6]);
    }

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
