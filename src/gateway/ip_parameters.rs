//! The values of the KNXnet/IP parameter object (interface object type 11) that the built-in
//! tunnelling server reports to ETS: the IP settings in force, read from the machine
//! ([`crate::netif`]: the address in use as the status page picks it, its netmask and MAC,
//! the default gateway), and the configured ones (the configuration's `[ip]`, which a
//! download sets and which takes effect at the next start: `hw::network`).
//!
//! [`ip_parameters`] is a pure function of its inputs; [`refresh`] reads the machine now and
//! then and tells the link when something changed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::IpConfig;
use crate::knx::device::ip::{IpParameters, method};
use crate::knx::link::LinkControl;
use crate::netif::{self, Interface};

/// How often the machine's network state is read again (a DHCP lease can change it).
pub const REFRESH: Duration = Duration::from_secs(30);

/// The parameter object's values. `listen` is the server's bound address (`0.0.0.0` when it
/// listens everywhere), `gateway` the default gateway the machine uses.
pub fn ip_parameters(
    ip: &IpConfig,
    listen: Option<SocketAddr>,
    interfaces: &[Interface],
    gateway: Option<Ipv4Addr>,
) -> IpParameters {
    let configured = (!ip.dhcp).then_some(IpAddr::V4(ip.address));
    let chosen = netif::choose(listen, configured, interfaces);
    let (current, interface) = match chosen {
        Some((IpAddr::V4(v4), interface)) => (v4, interface),
        _ => (Ipv4Addr::UNSPECIFIED, None),
    };
    // KNX 03.08.03 §2.5.5: 1 manually, 4 DHCP, 8 AutoIP; 0 where the address is not a
    // network address (none, or loopback).
    let current_method = if current.is_unspecified() || current.is_loopback() {
        0
    } else if !ip.dhcp {
        method::MANUAL
    } else if current.is_link_local() {
        method::AUTO_IP
    } else {
        method::DHCP
    };
    IpParameters {
        current_method,
        // networkd: DHCP with the IPv4 link-local fallback, or the static address.
        enabled_methods: if ip.dhcp {
            method::DHCP | method::AUTO_IP
        } else {
            method::MANUAL
        },
        current_address: current,
        current_mask: interface
            .and_then(|i| i.netmask(current))
            .unwrap_or(Ipv4Addr::UNSPECIFIED),
        current_gateway: gateway.unwrap_or(Ipv4Addr::UNSPECIFIED),
        address: ip.address,
        mask: ip.subnet_mask,
        gateway: ip.gateway,
        mac: interface.map_or([0; 6], Interface::mac_bytes),
    }
}

/// Tells the link the parameter object's values now and whenever they change (read every
/// [`REFRESH`]); ends when the link is gone.
pub async fn refresh(ip: IpConfig, listen: Option<SocketAddr>, control: mpsc::Sender<LinkControl>) {
    let mut told: Option<IpParameters> = None;
    loop {
        let now = tokio::task::spawn_blocking({
            let ip = ip.clone();
            move || ip_parameters(&ip, listen, &netif::interfaces(), netif::default_gateway())
        })
        .await
        .unwrap_or_default();
        if told.as_ref() != Some(&now) {
            tracing::debug!(address = %now.current_address, "IP parameters for the KNXnet/IP parameter object");
            if control
                .send(LinkControl::IpParameters(now.clone()))
                .await
                .is_err()
            {
                return;
            }
            told = Some(now);
        }
        tokio::time::sleep(REFRESH).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, v4: &str, mask: &str, mac: &str) -> Interface {
        let a: Ipv4Addr = v4.parse().unwrap();
        Interface {
            name: name.to_owned(),
            addresses: vec![IpAddr::V4(a)],
            mac: Some(mac.to_owned()),
            up: true,
            multicast: true,
            netmasks: vec![(a, mask.parse().unwrap())],
            ..Interface::default()
        }
    }

    fn lo() -> Interface {
        Interface {
            name: "lo".into(),
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            loopback: true,
            up: true,
            netmasks: vec![(Ipv4Addr::LOCALHOST, Ipv4Addr::new(255, 0, 0, 0))],
            ..Interface::default()
        }
    }

    fn config(dhcp: bool) -> IpConfig {
        IpConfig {
            dhcp,
            address: Ipv4Addr::new(192, 168, 1, 10),
            subnet_mask: Ipv4Addr::new(255, 255, 255, 0),
            gateway: Ipv4Addr::new(192, 168, 1, 1),
            dns: Ipv4Addr::UNSPECIFIED,
        }
    }

    #[test]
    fn dhcp_lease_link_local_fallback_and_static() {
        let everywhere = Some(SocketAddr::from(([0, 0, 0, 0], 3671)));
        let gw = Some(Ipv4Addr::new(192, 168, 1, 1));
        let machine = [
            lo(),
            iface("eth0", "192.168.1.37", "255.255.255.0", "02:00:00:00:00:01"),
        ];
        let p = ip_parameters(&config(true), everywhere, &machine, gw);
        assert_eq!(p.current_address, Ipv4Addr::new(192, 168, 1, 37));
        assert_eq!(p.current_mask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(p.current_gateway, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!((p.current_method, p.enabled_methods), (4, 12));
        assert_eq!(p.mac, [2, 0, 0, 0, 0, 1]);
        // The configured values are reported as configured, whatever is in force.
        assert_eq!(p.address, Ipv4Addr::new(192, 168, 1, 10));

        let fallback = [
            lo(),
            iface("eth0", "169.254.7.9", "255.255.0.0", "02:00:00:00:00:01"),
        ];
        let p = ip_parameters(&config(true), everywhere, &fallback, None);
        assert_eq!(
            (p.current_method, p.current_mask),
            (8, Ipv4Addr::new(255, 255, 0, 0))
        );
        assert_eq!(p.current_gateway, Ipv4Addr::UNSPECIFIED);

        let fixed = [
            lo(),
            iface("eth0", "192.168.1.10", "255.255.255.0", "02:00:00:00:00:01"),
        ];
        let p = ip_parameters(&config(false), everywhere, &fixed, gw);
        assert_eq!((p.current_method, p.enabled_methods), (1, 1));
        assert_eq!(p.current_address, Ipv4Addr::new(192, 168, 1, 10));
    }

    #[test]
    fn a_server_bound_to_loopback_reports_it_with_no_method() {
        let p = ip_parameters(
            &config(true),
            Some(SocketAddr::from(([127, 0, 0, 1], 3671))),
            &[lo()],
            None,
        );
        assert_eq!(p.current_address, Ipv4Addr::LOCALHOST);
        assert_eq!(p.current_mask, Ipv4Addr::new(255, 0, 0, 0));
        assert_eq!((p.current_method, p.mac), (0, [0; 6]));
        // Nothing at all: zeros.
        let p = ip_parameters(&config(true), None, &[], None);
        assert_eq!(p.current_address, Ipv4Addr::UNSPECIFIED);
    }
}
