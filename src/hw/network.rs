//! The device's IP, DNS and NTP settings (spec ch. 8.3.2, 8.3.4) applied through the
//! operating system's own services: systemd-networkd does DHCP with the IPv4 link-local
//! fallback, systemd-resolved the DNS server, systemd-timesyncd NTP. No DHCP client of our own.
//!
//! Owns the translation ([`plan`]: settings in, files out, no I/O) and writing the files
//! atomically under a root directory ([`write_files`]; `/` on the device, a temporary directory
//! in tests), and the reload commands to run afterwards ([`RELOAD`]).
//!
//! * DHCP (`DHCP=ipv4`) with `LinkLocalAddressing=ipv4`: networkd starts IPv4 link-local
//!   addressing (RFC 3927, 169.254.1.0–169.254.254.255) when DHCPv4 has been unsuccessful for a
//!   while and keeps asking for a lease; when one comes the DHCP address is used (systemd
//!   v247, systemd.network(5) `LinkLocalAddressing=`) — the behaviour table 12 describes.
//! * Static: `Address=` with the prefix from the subnet mask, `Gateway=`, no link-local.
//! * A static setting without an address (0.0.0.0, or the 127.0.0.1 that 8.3.2 calls a
//!   "serious misconfiguration"), or with a mask that is not a prefix, is a configuration
//!   problem ([`Plan::problem`]): the plan then keeps DHCP with link-local, so the device stays
//!   reachable.
//! * The DNS server of the website (8.3.4) goes into the `.network` file (`DNS=`, and
//!   `UseDNS=no` for DHCP so that it wins); NTP servers into a timesyncd drop-in (`NTP=`).

use std::fmt::Write as _;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The `.network` file, relative to the root.
pub const NETWORK_FILE: &str = "etc/systemd/network/50-knx-echarge.network";
/// The timesyncd drop-in, relative to the root.
pub const TIMESYNCD_FILE: &str = "etc/systemd/timesyncd.conf.d/50-knx-echarge.conf";
/// Commands that make the services read the files again (run only with root `/`).
pub const RELOAD: [&[&str]; 2] = [
    &["networkctl", "reload"],
    &["systemctl", "try-restart", "systemd-timesyncd.service"],
];

/// How the device gets its IPv4 address (ETS "IP" tab, table 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    /// "Receive IP address automatically".
    Dhcp,
    /// "Use a permanent IP address".
    Static {
        /// IP address.
        address: Ipv4Addr,
        /// Subnet mask.
        mask: Ipv4Addr,
        /// Standard gateway (0.0.0.0: none).
        gateway: Ipv4Addr,
    },
}

/// Everything that decides the OS network configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSettings {
    /// The interface (e.g. `eth0`; a glob such as `en*` is allowed by networkd).
    pub interface: String,
    /// Address mode.
    pub mode: IpMode,
    /// DNS server (website, or the configuration's; `None`: DHCP's).
    pub dns: Option<Ipv4Addr>,
    /// NTP on.
    pub ntp_enabled: bool,
    /// NTP servers in order of preference.
    pub ntp_servers: Vec<String>,
}

/// The files to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// (path relative to the root, contents).
    pub files: Vec<(PathBuf, String)>,
    /// Files to remove (relative).
    pub remove: Vec<PathBuf>,
    /// How the address is obtained in this plan ("dhcp" with link-local fallback, "static").
    pub method: &'static str,
    /// A configuration problem (static without an address): the plan keeps DHCP.
    pub problem: Option<String>,
}

/// The prefix length of a subnet mask (`None` if the mask is not contiguous ones).
pub fn prefix_len(mask: Ipv4Addr) -> Option<u32> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones)
}

/// Why a static setting cannot be used (the device then keeps DHCP with link-local): no
/// address (0.0.0.0, or 8.3.2's 127.0.0.1), or a mask that is not a prefix of 1–30 bits.
/// `None`: usable.
pub fn static_problem(address: Ipv4Addr, mask: Ipv4Addr) -> Option<String> {
    if address.is_unspecified() || address.is_loopback() {
        Some(format!(
            "permanent IP address selected without an IP address ({address}): the device keeps DHCP with link-local addresses (spec 8.3.2 \"serious misconfiguration\"); set the address in the ETS"
        ))
    } else if prefix_len(mask).is_some_and(|p| (1..=30).contains(&p)) {
        None
    } else {
        Some(format!(
            "permanent IP address {address} with the subnet mask {mask}, which is not a valid mask: the device keeps DHCP with link-local addresses"
        ))
    }
}

/// Translates settings into files (no I/O).
pub fn plan(s: &NetSettings) -> Plan {
    let mut problem = None;
    let mut network = format!(
        "# Written by knx-echarge from its configuration (ETS IP settings) and website settings.\n\
         [Match]\nName={}\n\n[Network]\n",
        s.interface
    );
    let mut method = "dhcp";
    let static_ok = match s.mode {
        IpMode::Dhcp => None,
        IpMode::Static {
            address,
            mask,
            gateway,
        } => match static_problem(address, mask) {
            Some(p) => {
                problem = Some(p);
                None
            }
            None => prefix_len(mask).map(|prefix| (address, prefix, gateway)),
        },
    };
    if let Some((address, prefix, gateway)) = static_ok {
        method = "static";
        let _ = writeln!(network, "Address={address}/{prefix}");
        if !gateway.is_unspecified() {
            let _ = writeln!(network, "Gateway={gateway}");
        }
        network.push_str("LinkLocalAddressing=no\n");
    } else {
        network.push_str("DHCP=ipv4\nLinkLocalAddressing=ipv4\n");
    }
    if let Some(dns) = s.dns.filter(|d| !d.is_unspecified()) {
        let _ = writeln!(network, "DNS={dns}");
        if method == "dhcp" {
            network.push_str("\n[DHCPv4]\nUseDNS=no\n");
        }
    }
    let mut files = vec![(PathBuf::from(NETWORK_FILE), network)];
    let mut remove = Vec::new();
    let servers: Vec<&str> = s
        .ntp_servers
        .iter()
        .map(String::as_str)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
        .collect();
    if s.ntp_enabled && !servers.is_empty() {
        files.push((
            PathBuf::from(TIMESYNCD_FILE),
            format!(
                "# Written by knx-echarge from its website settings.\n[Time]\nNTP={}\n",
                servers.join(" ")
            ),
        ));
    } else {
        remove.push(PathBuf::from(TIMESYNCD_FILE));
    }
    Plan {
        files,
        remove,
        method,
        problem,
    }
}

/// Writes the plan's files under `root` atomically (temporary file, fsync, rename) and removes
/// the files it drops; returns whether anything changed (files with the same contents are left
/// alone, so the services are reloaded only when needed).
pub fn write_files(root: &Path, plan: &Plan) -> std::io::Result<bool> {
    let mut changed = false;
    for (rel, contents) in &plan.files {
        let path = root.join(rel);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == *contents) {
            continue;
        }
        let dir = path
            .parent()
            .ok_or_else(|| std::io::Error::other("file without a directory"))?;
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(contents.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        changed = true;
    }
    for rel in &plan.remove {
        match std::fs::remove_file(root.join(rel)) {
            Ok(()) => changed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: IpMode) -> NetSettings {
        NetSettings {
            interface: "eth0".to_owned(),
            mode,
            dns: None,
            ntp_enabled: true,
            ntp_servers: vec!["pool.ntp.org".to_owned(), "10.0.0.1".to_owned()],
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn dhcp_with_link_local_fallback_and_ntp() {
        let p = plan(&settings(IpMode::Dhcp));
        assert_eq!(p.method, "dhcp");
        assert_eq!(p.problem, None);
        let network = &p.files.first().unwrap().1;
        assert!(network.contains("[Match]\nName=eth0\n"), "{network}");
        assert!(
            network.contains("DHCP=ipv4\nLinkLocalAddressing=ipv4\n"),
            "{network}"
        );
        assert!(!network.contains("DNS="), "{network}");
        let ntp = &p.files.get(1).unwrap();
        assert_eq!(ntp.0, PathBuf::from(TIMESYNCD_FILE));
        assert!(
            ntp.1.ends_with("[Time]\nNTP=pool.ntp.org 10.0.0.1\n"),
            "{}",
            ntp.1
        );
    }

    #[test]
    fn static_address_mask_gateway_and_the_websites_dns() {
        let mut s = settings(IpMode::Static {
            address: ip("192.168.1.50"),
            mask: ip("255.255.255.0"),
            gateway: ip("192.168.1.1"),
        });
        s.dns = Some(ip("192.168.1.2"));
        let p = plan(&s);
        assert_eq!((p.method, p.problem.as_deref()), ("static", None));
        let network = &p.files.first().unwrap().1;
        assert!(
            network.contains(
                "Address=192.168.1.50/24\nGateway=192.168.1.1\nLinkLocalAddressing=no\nDNS=192.168.1.2\n"
            ),
            "{network}"
        );
        assert!(!network.contains("DHCP"), "{network}");
    }

    #[test]
    fn the_websites_dns_wins_over_dhcps() {
        let mut s = settings(IpMode::Dhcp);
        s.dns = Some(ip("9.9.9.9"));
        let network = plan(&s).files.first().unwrap().1.clone();
        assert!(
            network.ends_with("DNS=9.9.9.9\n\n[DHCPv4]\nUseDNS=no\n"),
            "{network}"
        );
    }

    #[test]
    fn static_without_an_address_is_a_configuration_problem_and_keeps_dhcp() {
        for address in ["0.0.0.0", "127.0.0.1"] {
            let p = plan(&settings(IpMode::Static {
                address: ip(address),
                mask: ip("255.255.255.0"),
                gateway: ip("0.0.0.0"),
            }));
            assert_eq!(p.method, "dhcp");
            let problem = p.problem.unwrap();
            assert!(problem.contains("without an IP address"), "{problem}");
            assert!(
                p.files
                    .first()
                    .unwrap()
                    .1
                    .contains("DHCP=ipv4\nLinkLocalAddressing=ipv4\n")
            );
        }
        let p = plan(&settings(IpMode::Static {
            address: ip("10.0.0.5"),
            mask: ip("255.0.255.0"),
            gateway: ip("0.0.0.0"),
        }));
        assert_eq!(p.method, "dhcp");
        assert!(p.problem.unwrap().contains("not a valid mask"));
    }

    #[test]
    fn masks_become_prefixes() {
        assert_eq!(prefix_len(ip("255.255.255.0")), Some(24));
        assert_eq!(prefix_len(ip("255.255.252.0")), Some(22));
        assert_eq!(prefix_len(ip("255.255.255.255")), Some(32));
        assert_eq!(prefix_len(ip("0.0.0.0")), Some(0));
        assert_eq!(prefix_len(ip("255.0.255.0")), None);
    }

    #[test]
    fn files_are_written_atomically_under_the_root_and_only_when_changed() {
        let root = tempfile::tempdir().unwrap();
        let p = plan(&settings(IpMode::Dhcp));
        assert!(write_files(root.path(), &p).unwrap());
        let written = std::fs::read_to_string(root.path().join(NETWORK_FILE)).unwrap();
        assert_eq!(written, p.files.first().unwrap().1);
        assert!(root.path().join(TIMESYNCD_FILE).exists());
        assert!(
            !write_files(root.path(), &p).unwrap(),
            "unchanged: no reload"
        );
        // NTP off removes the drop-in; no temporary files are left.
        let mut s = settings(IpMode::Dhcp);
        s.ntp_enabled = false;
        assert!(write_files(root.path(), &plan(&s)).unwrap());
        assert!(!root.path().join(TIMESYNCD_FILE).exists());
        let dir = root.path().join("etc/systemd/network");
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["50-knx-echarge.network"]);
    }
}
