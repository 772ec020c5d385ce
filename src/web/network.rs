//! The gateway's network as the status page shows it: the IP address the gateway actually
//! uses and the MAC of that interface, next to the address configured in the ETS.
//!
//! The address in use is the website listener's own address when it is bound to one; when
//! it listens on every interface (`0.0.0.0` / `::`), it is read from the interfaces
//! (`getifaddrs`): the interface carrying the configured address if one does, else the first
//! interface (by name) that is up, not loopback and has a routable IPv4 address, else one
//! with an IPv4 link-local address (169.254/16), else one with a global IPv6 address, else
//! loopback. How the address was obtained ([`NetworkView::ip_obtained`]) follows from the
//! configuration and the address: DHCP on and a 169.254/16 address is the link-local fallback
//! of spec 8.3.2 (no DHCP server answered), any other address with DHCP on came from DHCP,
//! DHCP off is the static address. The choice ([`choose`]) is a pure function of the
//! interface list, so it is tested without the machine's interfaces; reading the list and the
//! choice itself are [`crate::netif`]'s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Serialize;

use crate::netif::link_local_v4;
pub use crate::netif::{Interface, choose, interfaces};

/// What the status page shows of the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkView {
    /// The IP address the gateway uses (the configured one if none could be read).
    pub ip: String,
    /// Where `ip` comes from: `"listener"` (the website's bound address), `"interface"`
    /// (read from the interfaces) or `"configured"` (nothing could be read).
    pub ip_source: &'static str,
    /// The interface carrying `ip`, if known.
    pub interface: Option<String>,
    /// That interface's MAC address, where it has one.
    pub mac: Option<String>,
    /// The static address configured in the ETS, when it differs from `ip` (DHCP off).
    pub configured_ip: Option<String>,
    /// How `ip` was obtained: `"dhcp"`, `"link-local"` (DHCP on, no server answered: 8.3.2's
    /// 169.254.x.x fallback), `"static"`, or `"none"` (no address on any interface).
    pub ip_obtained: &'static str,
}

/// The view for the status page from the listener's address, the configuration and the
/// interfaces.
pub fn view(
    listen: Option<SocketAddr>,
    dhcp: bool,
    configured: Ipv4Addr,
    interfaces: &[Interface],
) -> NetworkView {
    let configured_ip = (!dhcp).then_some(IpAddr::V4(configured));
    let chosen = choose(listen, configured_ip, interfaces);
    let listener = listen.is_some_and(|a| !a.ip().is_unspecified());
    let (ip, ip_source, interface) = match chosen {
        Some((ip, interface)) => (
            ip,
            if listener { "listener" } else { "interface" },
            interface,
        ),
        None => (IpAddr::V4(configured), "configured", None),
    };
    let ip_obtained = if ip.is_loopback() || ip_source == "configured" {
        "none"
    } else if !dhcp {
        "static"
    } else if link_local_v4(&ip) {
        "link-local"
    } else {
        "dhcp"
    };
    NetworkView {
        ip_obtained,
        ip: ip.to_string(),
        ip_source,
        interface: interface.map(|i| i.name.clone()),
        mac: interface.and_then(|i| i.mac.clone()),
        configured_ip: configured_ip.filter(|c| *c != ip).map(|c| c.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addrs: &[&str], mac: Option<&str>, loopback: bool) -> Interface {
        Interface {
            name: name.to_owned(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            mac: mac.map(str::to_owned),
            loopback,
            up: true,
            multicast: !loopback,
            ..Interface::default()
        }
    }

    fn machine() -> Vec<Interface> {
        vec![
            iface("lo", &["127.0.0.1", "::1"], None, true),
            iface(
                "eth1",
                &["fe80::1", "2001:db8::10"],
                Some("02:00:00:00:00:02"),
                false,
            ),
            iface(
                "eth0",
                &["192.168.1.77", "fe80::2"],
                Some("02:00:00:00:00:01"),
                false,
            ),
        ]
    }

    #[test]
    fn a_listener_bound_to_an_address_is_the_address_in_use() {
        let m = machine();
        let v = view(
            Some("192.168.1.77:80".parse().unwrap()),
            false,
            Ipv4Addr::new(192, 168, 1, 10),
            &m,
        );
        assert_eq!(v.ip, "192.168.1.77");
        assert_eq!(v.ip_source, "listener");
        assert_eq!(v.interface.as_deref(), Some("eth0"));
        assert_eq!(v.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(
            v.configured_ip.as_deref(),
            Some("192.168.1.10"),
            "the configured address differs: shown, labelled"
        );
    }

    #[test]
    fn listening_everywhere_prefers_a_non_loopback_ipv4_interface() {
        let m = machine();
        let v = view(
            Some("0.0.0.0:8080".parse().unwrap()),
            true,
            Ipv4Addr::UNSPECIFIED,
            &m,
        );
        assert_eq!(
            (v.ip.as_str(), v.ip_source, v.interface.as_deref()),
            ("192.168.1.77", "interface", Some("eth0"))
        );
        assert_eq!(v.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(v.configured_ip, None, "DHCP: nothing configured");
    }

    #[test]
    fn the_interface_carrying_the_configured_address_wins_and_then_it_is_not_repeated() {
        let mut m = machine();
        m.push(iface(
            "br0",
            &["10.0.0.5"],
            Some("02:00:00:00:00:03"),
            false,
        ));
        m.push(iface(
            "eth2",
            &["192.168.1.10"],
            Some("02:00:00:00:00:04"),
            false,
        ));
        let v = view(None, false, Ipv4Addr::new(192, 168, 1, 10), &m);
        assert_eq!(v.ip, "192.168.1.10");
        assert_eq!(v.mac.as_deref(), Some("02:00:00:00:00:04"));
        assert_eq!(v.configured_ip, None, "same as in use");
        // Without it, the first interface by name with IPv4 (br0 before eth0).
        let v = view(None, false, Ipv4Addr::new(192, 168, 9, 9), &m[..4]);
        assert_eq!(v.interface.as_deref(), Some("br0"));
        assert_eq!(v.configured_ip.as_deref(), Some("192.168.9.9"));
    }

    #[test]
    fn without_ipv4_a_global_ipv6_then_loopback_then_the_configured_address() {
        let m = vec![
            iface("lo", &["127.0.0.1"], None, true),
            iface(
                "eth1",
                &["fe80::1", "2001:db8::10"],
                Some("02:00:00:00:00:02"),
                false,
            ),
        ];
        let v = view(None, true, Ipv4Addr::UNSPECIFIED, &m);
        assert_eq!(v.ip, "2001:db8::10");
        let lo = &m[..1];
        let v = view(None, true, Ipv4Addr::UNSPECIFIED, lo);
        assert_eq!((v.ip.as_str(), v.mac), ("127.0.0.1", None));
        let v = view(None, false, Ipv4Addr::new(192, 168, 1, 10), &[]);
        assert_eq!((v.ip.as_str(), v.ip_source), ("192.168.1.10", "configured"));
        assert_eq!(v.configured_ip, None);
    }

    #[test]
    fn a_down_interface_is_not_the_one_in_use() {
        let mut m = machine();
        if let Some(eth0) = m.iter_mut().find(|i| i.name == "eth0") {
            eth0.up = false;
        }
        let v = view(None, true, Ipv4Addr::UNSPECIFIED, &m);
        assert_eq!(v.ip, "2001:db8::10");
    }

    #[test]
    fn how_the_address_was_obtained_dhcp_link_local_static() {
        let both = vec![
            iface("lo", &["127.0.0.1"], None, true),
            iface("eth0", &["169.254.7.9", "10.77.0.60"], None, false),
        ];
        let v = view(None, true, Ipv4Addr::UNSPECIFIED, &both);
        assert_eq!((v.ip.as_str(), v.ip_obtained), ("10.77.0.60", "dhcp"));
        let fallback = vec![
            iface("eth0", &["169.254.7.9", "fe80::1"], None, false),
            iface("eth1", &["2001:db8::1"], None, false),
        ];
        let v = view(None, true, Ipv4Addr::UNSPECIFIED, &fallback);
        assert_eq!(
            (v.ip.as_str(), v.ip_obtained),
            ("169.254.7.9", "link-local")
        );
        let fixed = vec![iface("eth0", &["10.77.0.7"], None, false)];
        let v = view(None, false, Ipv4Addr::new(10, 77, 0, 7), &fixed);
        assert_eq!((v.ip.as_str(), v.ip_obtained), ("10.77.0.7", "static"));
        let nothing = vec![iface("lo", &["127.0.0.1"], None, true)];
        assert_eq!(
            view(None, true, Ipv4Addr::UNSPECIFIED, &nothing).ip_obtained,
            "none"
        );
        assert_eq!(
            view(None, false, Ipv4Addr::new(10, 77, 0, 7), &[]).ip_obtained,
            "none"
        );
    }

    /// The machine's own interfaces are read: there is at least loopback, and the choice
    /// finds an address on them.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_machines_interfaces_are_read() {
        let list = interfaces();
        assert!(
            list.iter()
                .any(|i| i.loopback && i.addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST))),
            "{list:?}"
        );
        let v = view(None, true, Ipv4Addr::UNSPECIFIED, &list);
        assert_eq!(v.ip_source, "interface", "{list:?}");
        assert!(
            list.iter()
                .any(|i| i.addresses.iter().any(|a| a.to_string() == v.ip))
        );
    }
}
