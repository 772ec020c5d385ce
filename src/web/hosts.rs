//! The host names and addresses the website answers for: its own (DNS-rebinding defence).
//!
//! A page on `evil.example` whose name is re-pointed at the gateway's address would send the
//! gateway requests with `Host: evil.example` and a matching `Origin`, passing the
//! same-origin check. The website therefore answers only requests whose `Host` is one of
//! the device's own: an IP address of one of its interfaces (or the address it listens on,
//! or any loopback address), `localhost`, its host name and `<host name>.local`. Any other
//! name is answered `421 Misdirected Request`. A request without `Host` (HTTP/1.0) is let
//! through: browsers always send one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the interface addresses are read again when a `Host` names an unknown address
/// (an address from DHCP may have changed).
const REFRESH: Duration = Duration::from_secs(1);

/// The device's own names and addresses.
#[derive(Debug)]
pub struct OwnHosts {
    listen: Option<SocketAddr>,
    names: Vec<String>,
    addresses: Mutex<(Option<Instant>, Vec<IpAddr>)>,
}

impl OwnHosts {
    /// The hosts of this machine, for a website listening on `listen`.
    pub fn new(listen: Option<SocketAddr>) -> Self {
        let mut names = vec!["localhost".to_owned()];
        if let Some(name) = host_name() {
            names.push(format!("{name}.local"));
            names.push(name);
        }
        Self::with(listen, names, None)
    }

    /// Fixed names and, if given, fixed addresses (tests); `None` reads the interfaces.
    pub fn with(
        listen: Option<SocketAddr>,
        names: Vec<String>,
        addresses: Option<Vec<IpAddr>>,
    ) -> Self {
        let fixed = addresses.is_some();
        Self {
            listen,
            names: names.into_iter().map(|n| n.to_ascii_lowercase()).collect(),
            addresses: Mutex::new((
                fixed.then(|| Instant::now() + Duration::from_secs(u64::from(u32::MAX))),
                addresses.unwrap_or_default(),
            )),
        }
    }

    /// Whether a request with this `Host` header is for this device.
    pub fn allows(&self, host: &str) -> bool {
        let Some(name) = host_part(host) else {
            return false;
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.is_own_address(ip);
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&name)
    }

    fn is_own_address(&self, ip: IpAddr) -> bool {
        if ip.is_unspecified() || ip.is_multicast() {
            return false;
        }
        if ip.is_loopback() || self.listen.is_some_and(|l| l.ip() == ip) {
            return true;
        }
        let mut cache = self
            .addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.1.contains(&ip) {
            return true;
        }
        let now = Instant::now();
        if cache.0.is_some_and(|at| now < at) {
            return false;
        }
        cache.1 = crate::netif::interfaces()
            .into_iter()
            .flat_map(|i| i.addresses)
            .collect();
        cache.0 = Some(now + REFRESH);
        cache.1.contains(&ip)
    }
}

/// The name or address of a `Host` header without its port; `None` when it is malformed.
fn host_part(host: &str) -> Option<&str> {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return (after.is_empty() || is_port(after.strip_prefix(':')?)).then_some(ip);
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return None,
        None => host,
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(name)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// This machine's host name, lower case.
#[cfg(target_os = "linux")]
fn host_name() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|n| n.into_string().ok())
        .map(|n| n.to_ascii_lowercase())
        .filter(|n| !n.is_empty())
}

/// The host name (not readable on this platform).
#[cfg(not(target_os = "linux"))]
fn host_name() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> OwnHosts {
        OwnHosts::with(
            Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            vec!["localhost".into(), "echarge".into(), "echarge.local".into()],
            Some(vec![[192, 168, 1, 50].into(), "fe80::1".parse().unwrap()]),
        )
    }

    #[test]
    fn own_addresses_and_names_are_allowed_with_and_without_port() {
        let h = hosts();
        for host in [
            "192.168.1.50",
            "192.168.1.50:80",
            "127.0.0.1:8080",
            "127.4.5.6",
            "[::1]:80",
            "[fe80::1]",
            "localhost:80",
            "ECHARGE.local",
            "echarge.",
        ] {
            assert!(h.allows(host), "{host}");
        }
    }

    #[test]
    fn foreign_names_and_malformed_hosts_are_refused() {
        let h = hosts();
        for host in [
            "evil.example",
            "evil.example:80",
            "192.168.1.51",
            "0.0.0.0",
            "echarge.local.evil.example",
            "",
            "192.168.1.50:80x",
            "[::1",
            "a b",
            "localhost:99999999",
        ] {
            assert!(!h.allows(host), "{host}");
        }
    }
}
