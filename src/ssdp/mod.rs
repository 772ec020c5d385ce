//! SSDP, the discovery half of UPnP, so that the gateway shows up in the Windows network
//! environment with a link to its website (spec 7.1). Sans-IO: this module owns the protocol —
//! which M-SEARCH requests get which answers and when, the NOTIFY alive/byebye messages and the
//! device description document — and never touches a socket or a clock; [`driver`] moves the
//! datagrams.
//!
//! Rules (UPnP Device Architecture 1.1, §1 Discovery and §2.3 device description):
//! * the gateway is a root device of type `urn:schemas-upnp-org:device:Basic:1` (what Windows
//!   lists with its `presentationURL`), with a stable `uuid` USN;
//! * an `M-SEARCH` with `MAN: "ssdp:discover"` sent to the multicast group is answered after a
//!   random delay within its `MX` (1–5 s; more is treated as 5), one answer per matching search
//!   target (`ssdp:all`: root device, uuid and device type); a unicast M-SEARCH is answered at
//!   once; other targets, other methods and malformed requests get nothing;
//! * `NOTIFY ssdp:alive` is sent three times at start (root, uuid, type) and repeated before half
//!   of `max-age` has passed; `ssdp:byebye` when the gateway stops.
//!
//! Answers are bounded: at most [`MAX_PENDING`] wait at a time, and one source gets at most one
//! set of answers per [`PER_SOURCE_GAP`], so the responder cannot be used to amplify a flood.

pub mod driver;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// The SSDP multicast group and port.
pub const MULTICAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
/// The device type Windows lists in its network environment.
pub const DEVICE_TYPE: &str = "urn:schemas-upnp-org:device:Basic:1";
/// How long an announcement is valid (`CACHE-CONTROL: max-age`).
pub const MAX_AGE: Duration = Duration::from_secs(1800);
/// Answers waiting at most at a time.
pub const MAX_PENDING: usize = 32;
/// The shortest time between two sets of answers to the same source address.
pub const PER_SOURCE_GAP: Duration = Duration::from_secs(1);
/// The path of the device description on the website.
pub const DESCRIPTION_PATH: &str = "/upnp/device.xml";

/// What the gateway announces about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Unique device name without the `uuid:` prefix; stable across restarts.
    pub uuid: String,
    /// The name Windows shows.
    pub friendly_name: String,
    /// Model number (the firmware version).
    pub model_number: String,
    /// Serial number, if the device has one.
    pub serial: Option<String>,
    /// The website's TCP port.
    pub http_port: u16,
    /// `BOOTID.UPNP.ORG`: increases with every start.
    pub boot_id: u32,
}

impl Device {
    /// The `SERVER` header: OS, UPnP version, product.
    fn server(&self) -> String {
        format!("Linux UPnP/1.1 knx-echarge/{}", self.model_number)
    }

    /// The description's URL as seen from `local` (the address the requester reaches us on).
    pub fn location(&self, local: Ipv4Addr) -> String {
        format!("http://{local}:{}{DESCRIPTION_PATH}", self.http_port)
    }

    /// The device description document (UDA 1.1 §2.3), with `base` (e.g. `http://10.0.0.5`)
    /// as the website the presentation URL points to.
    pub fn description_xml(&self, base: &str) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        x += "<root xmlns=\"urn:schemas-upnp-org:device-1-0\" configId=\"1\">\n";
        x += "  <specVersion><major>1</major><minor>1</minor></specVersion>\n";
        x += "  <device>\n";
        let mut field = |name: &str, value: &str| {
            let _ = writeln!(x, "    <{name}>{}</{name}>", escape(value));
        };
        field("deviceType", DEVICE_TYPE);
        field("friendlyName", &self.friendly_name);
        field("manufacturer", "knx-echarge");
        field("modelDescription", "KNX gateway for EV charging points");
        field("modelName", "knx-echarge");
        field("modelNumber", &self.model_number);
        if let Some(serial) = &self.serial {
            field("serialNumber", serial);
        }
        field("UDN", &format!("uuid:{}", self.uuid));
        field(
            "presentationURL",
            &format!("{}/", base.trim_end_matches('/')),
        );
        x += "  </device>\n</root>\n";
        x
    }
}

/// XML text escaping for element content.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A search target the gateway answers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Root,
    Uuid,
    Type,
}

const ALL_TARGETS: [Target; 3] = [Target::Root, Target::Uuid, Target::Type];

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// From which local address (the interface for multicast, the address the request came
    /// in on for answers).
    pub from: Ipv4Addr,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Why a datagram was not answered (for counting and debug logs; never sent anywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// Not an HTTP-over-UDP request we understand.
    #[error("malformed SSDP message")]
    Malformed,
    /// A request other than M-SEARCH (NOTIFY of other devices, …).
    #[error("not an M-SEARCH")]
    NotSearch,
    /// `MAN` is not `"ssdp:discover"`.
    #[error("M-SEARCH without MAN \"ssdp:discover\"")]
    NoDiscover,
    /// The search target is not ours.
    #[error("search target not ours")]
    OtherTarget,
    /// Too many answers wait, or the source asked a moment ago.
    #[error("rate limit")]
    RateLimited,
    /// The source is not a unicast address.
    #[error("source address not unicast")]
    BadSource,
}

#[derive(Debug, Clone)]
struct Pending {
    at: Instant,
    to: SocketAddr,
    from: Ipv4Addr,
    target: Target,
    /// The ST to echo (`ssdp:all` is answered with the specific targets).
    st: String,
}

/// The SSDP responder.
#[derive(Debug, Clone)]
pub struct Responder {
    device: Device,
    /// Local addresses announcements go out on.
    interfaces: Vec<Ipv4Addr>,
    pending: Vec<Pending>,
    next_alive: Instant,
    last_answer: BTreeMap<IpAddr, Instant>,
    rng: u64,
}

impl Responder {
    /// A responder announcing `device` on `interfaces`, the first announcement at `now`;
    /// `seed` drives the random answer delays (tests pass a fixed one).
    pub fn new(device: Device, interfaces: Vec<Ipv4Addr>, now: Instant, seed: u64) -> Self {
        Self {
            device,
            interfaces,
            pending: Vec::new(),
            next_alive: now,
            last_answer: BTreeMap::new(),
            rng: seed | 1,
        }
    }

    /// The device announced.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A datagram from `from` arrived at local address `local`; `multicast` tells whether it
    /// was sent to the group (answers are then delayed within MX).
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Ipv4Addr,
        multicast: bool,
        bytes: &[u8],
    ) -> Result<usize, Ignored> {
        let request = Request::parse(bytes)?;
        if request.method != "M-SEARCH" {
            return Err(Ignored::NotSearch);
        }
        if request.header("MAN").map(unquote) != Some("ssdp:discover") {
            return Err(Ignored::NoDiscover);
        }
        let st = request.header("ST").ok_or(Ignored::Malformed)?;
        let targets: Vec<Target> = match st {
            "ssdp:all" => ALL_TARGETS.to_vec(),
            "upnp:rootdevice" => vec![Target::Root],
            _ if st.strip_prefix("uuid:") == Some(self.device.uuid.as_str()) => vec![Target::Uuid],
            _ if st == DEVICE_TYPE => vec![Target::Type],
            _ => return Err(Ignored::OtherTarget),
        };
        let ip = from.ip();
        let unicast_source = match ip {
            IpAddr::V4(v4) => !(v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified()),
            IpAddr::V6(_) => false,
        };
        if !unicast_source || from.port() == 0 {
            return Err(Ignored::BadSource);
        }
        self.last_answer
            .retain(|_, at| now.saturating_duration_since(*at) < PER_SOURCE_GAP);
        if self.last_answer.contains_key(&ip) || self.pending.len() + targets.len() > MAX_PENDING {
            return Err(Ignored::RateLimited);
        }
        self.last_answer.insert(ip, now);
        let delay = if multicast {
            let mx = request
                .header("MX")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 5);
            Duration::from_millis(self.random() % (mx * 1000))
        } else {
            Duration::ZERO
        };
        for target in &targets {
            self.pending.push(Pending {
                at: now + delay,
                to: from,
                from: local,
                target: *target,
                st: match (st, target) {
                    ("ssdp:all", t) => self.nt(*t),
                    _ => st.to_owned(),
                },
            });
        }
        Ok(targets.len())
    }

    /// The next datagram due at `now`: answers first, then the periodic announcements.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(i) = self.pending.iter().position(|p| p.at <= now) {
            let p = self.pending.swap_remove(i);
            return Some(Transmit {
                to: p.to,
                from: p.from,
                bytes: self.answer(&p),
            });
        }
        None
    }

    /// The announcements due at `now` (NOTIFY ssdp:alive on every interface, then again
    /// before half of max-age has passed).
    pub fn poll_announce(&mut self, now: Instant) -> Vec<Transmit> {
        if now < self.next_alive {
            return Vec::new();
        }
        self.next_alive = now + MAX_AGE / 3;
        self.notify("ssdp:alive")
    }

    /// NOTIFY ssdp:byebye on every interface (the gateway stops).
    pub fn byebye(&self) -> Vec<Transmit> {
        self.notify("ssdp:byebye")
    }

    /// When something is due next.
    pub fn poll_timeout(&self) -> Instant {
        self.pending
            .iter()
            .map(|p| p.at)
            .min()
            .map_or(self.next_alive, |a| a.min(self.next_alive))
    }

    fn notify(&self, nts: &str) -> Vec<Transmit> {
        let mut out = Vec::new();
        for &local in &self.interfaces {
            for target in ALL_TARGETS {
                let mut m = String::from("NOTIFY * HTTP/1.1\r\n");
                let _ = write!(m, "HOST: {MULTICAST}\r\n");
                if nts == "ssdp:alive" {
                    let _ = write!(m, "CACHE-CONTROL: max-age={}\r\n", MAX_AGE.as_secs());
                    let _ = write!(m, "LOCATION: {}\r\n", self.device.location(local));
                    let _ = write!(m, "SERVER: {}\r\n", self.device.server());
                }
                let _ = write!(m, "NT: {}\r\n", self.nt(target));
                let _ = write!(m, "NTS: {nts}\r\n");
                let _ = write!(m, "USN: {}\r\n", self.usn(target));
                let _ = write!(m, "BOOTID.UPNP.ORG: {}\r\n", self.device.boot_id);
                m += "CONFIGID.UPNP.ORG: 1\r\n\r\n";
                out.push(Transmit {
                    to: SocketAddr::V4(MULTICAST),
                    from: local,
                    bytes: m.into_bytes(),
                });
            }
        }
        out
    }

    fn answer(&self, p: &Pending) -> Vec<u8> {
        let mut m = String::from("HTTP/1.1 200 OK\r\n");
        let _ = write!(m, "CACHE-CONTROL: max-age={}\r\n", MAX_AGE.as_secs());
        m += "EXT:\r\n";
        let _ = write!(m, "LOCATION: {}\r\n", self.device.location(p.from));
        let _ = write!(m, "SERVER: {}\r\n", self.device.server());
        let _ = write!(m, "ST: {}\r\n", p.st);
        let _ = write!(m, "USN: {}\r\n", self.usn(p.target));
        let _ = write!(m, "BOOTID.UPNP.ORG: {}\r\n", self.device.boot_id);
        m += "CONFIGID.UPNP.ORG: 1\r\n\r\n";
        m.into_bytes()
    }

    fn nt(&self, target: Target) -> String {
        match target {
            Target::Root => "upnp:rootdevice".to_owned(),
            Target::Uuid => format!("uuid:{}", self.device.uuid),
            Target::Type => DEVICE_TYPE.to_owned(),
        }
    }

    fn usn(&self, target: Target) -> String {
        match target {
            Target::Uuid => format!("uuid:{}", self.device.uuid),
            t => format!("uuid:{}::{}", self.device.uuid, self.nt(t)),
        }
    }

    /// xorshift64: enough to spread answers, no need for a cryptographic generator.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// `"ssdp:discover"` → `ssdp:discover`.
fn unquote(v: &str) -> &str {
    v.trim().trim_matches('"')
}

/// An HTTP-over-UDP request: method and headers (names case-insensitive).
struct Request<'a> {
    method: &'a str,
    headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Request<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, Ignored> {
        if bytes.len() > 4096 {
            return Err(Ignored::Malformed);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Ignored::Malformed)?;
        let mut lines = text.split("\r\n");
        let start = lines.next().ok_or(Ignored::Malformed)?;
        let mut parts = start.split(' ');
        let method = parts.next().ok_or(Ignored::Malformed)?;
        if parts.next() != Some("*") || parts.next() != Some("HTTP/1.1") {
            return Err(Ignored::Malformed);
        }
        let mut headers = Vec::new();
        for line in lines {
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or(Ignored::Malformed)?;
            headers.push((name.trim(), value.trim()));
        }
        Ok(Self { method, headers })
    }

    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            uuid: "5a7c1e2b-0000-4000-8000-0123456789ab".into(),
            friendly_name: "knx-echarge 1.1.10 <lab & garage>".into(),
            model_number: "0.1.0".into(),
            serial: Some("00FA:00000001".into()),
            http_port: 8080,
            boot_id: 7,
        }
    }

    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

    fn search(st: &str, mx: u8) -> Vec<u8> {
        format!(
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: {mx}\r\nST: {st}\r\n\r\n"
        )
        .into_bytes()
    }

    fn client(n: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, n), 50000))
    }

    fn header(bytes: &[u8], name: &str) -> String {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        text.split("\r\n")
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    }

    #[test]
    fn ssdp_all_gets_three_answers_within_mx_with_the_location_of_the_arrival_address() {
        let t0 = Instant::now();
        let mut r = Responder::new(device(), vec![LOCAL], t0, 42);
        let _ = r.poll_announce(t0);
        assert_eq!(
            r.handle(t0, client(9), LOCAL, true, &search("ssdp:all", 3)),
            Ok(3)
        );
        let mut answers = Vec::new();
        while answers.len() < 3 {
            let now = r.poll_timeout();
            assert!(now <= t0 + Duration::from_secs(3), "within MX");
            while let Some(t) = r.poll_transmit(now) {
                answers.push(t);
            }
        }
        let sts: Vec<String> = answers.iter().map(|t| header(&t.bytes, "ST")).collect();
        assert!(sts.contains(&"upnp:rootdevice".to_owned()));
        assert!(sts.contains(&format!("uuid:{}", device().uuid)));
        assert!(sts.contains(&DEVICE_TYPE.to_owned()));
        for t in &answers {
            assert_eq!(t.to, client(9));
            assert!(t.bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
            assert_eq!(
                header(&t.bytes, "LOCATION"),
                "http://10.0.0.5:8080/upnp/device.xml"
            );
            assert!(header(&t.bytes, "USN").starts_with("uuid:5a7c1e2b"));
        }
    }

    #[test]
    fn unicast_search_is_answered_at_once_and_foreign_targets_not_at_all() {
        let t0 = Instant::now();
        let mut r = Responder::new(device(), vec![LOCAL], t0, 1);
        let _ = r.poll_announce(t0);
        assert_eq!(
            r.handle(t0, client(2), LOCAL, false, &search(DEVICE_TYPE, 1)),
            Ok(1)
        );
        let t = r.poll_transmit(t0).expect("at once");
        assert_eq!(header(&t.bytes, "ST"), DEVICE_TYPE);
        for st in ["urn:schemas-upnp-org:device:MediaRenderer:1", "uuid:other"] {
            assert_eq!(
                r.handle(t0, client(3), LOCAL, true, &search(st, 1)),
                Err(Ignored::OtherTarget)
            );
        }
        let notify = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n";
        assert_eq!(
            r.handle(t0, client(4), LOCAL, true, notify),
            Err(Ignored::NotSearch)
        );
        let no_man = b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n";
        assert_eq!(
            r.handle(t0, client(4), LOCAL, true, no_man),
            Err(Ignored::NoDiscover)
        );
        assert_eq!(r.poll_transmit(t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn floods_are_bounded_per_source_and_in_total() {
        let t0 = Instant::now();
        let mut r = Responder::new(device(), vec![LOCAL], t0, 3);
        assert_eq!(
            r.handle(t0, client(2), LOCAL, true, &search("ssdp:all", 5)),
            Ok(3)
        );
        assert_eq!(
            r.handle(t0, client(2), LOCAL, true, &search("ssdp:all", 5)),
            Err(Ignored::RateLimited),
            "the same source a moment later"
        );
        let mut accepted = 3;
        for n in 3..=60 {
            if r.handle(t0, client(n), LOCAL, true, &search("ssdp:all", 5))
                .is_ok()
            {
                accepted += 3;
            }
        }
        assert!(accepted <= MAX_PENDING, "{accepted}");
        // After the gap the first source is answered again.
        let later = t0 + PER_SOURCE_GAP + Duration::from_secs(5);
        while r.poll_transmit(later).is_some() {}
        assert_eq!(
            r.handle(later, client(2), LOCAL, true, &search("upnp:rootdevice", 1)),
            Ok(1)
        );
        let spoofed = SocketAddr::from((Ipv4Addr::new(239, 255, 255, 250), 1900));
        assert_eq!(
            r.handle(later, spoofed, LOCAL, true, &search("ssdp:all", 1)),
            Err(Ignored::BadSource)
        );
    }

    #[test]
    fn alive_at_start_and_before_half_of_max_age_and_byebye_at_the_end() {
        let t0 = Instant::now();
        let second = Ipv4Addr::new(192, 168, 1, 20);
        let mut r = Responder::new(device(), vec![LOCAL, second], t0, 5);
        let alive = r.poll_announce(t0);
        assert_eq!(alive.len(), 6, "three per interface");
        assert!(alive.iter().all(|t| t.to == SocketAddr::V4(MULTICAST)));
        assert!(alive.iter().any(|t| t.from == second
            && header(&t.bytes, "LOCATION") == "http://192.168.1.20:8080/upnp/device.xml"));
        assert!(r.poll_announce(t0 + Duration::from_secs(60)).is_empty());
        let next = r.poll_timeout();
        assert!(next - t0 < MAX_AGE / 2);
        assert_eq!(r.poll_announce(next).len(), 6);
        let bye = r.byebye();
        assert_eq!(bye.len(), 6);
        assert!(bye.iter().all(|t| header(&t.bytes, "NTS") == "ssdp:byebye"));
    }

    #[test]
    fn description_names_the_website_and_escapes_text() {
        let xml = device().description_xml("http://10.0.0.5:8080");
        assert!(xml.contains("<presentationURL>http://10.0.0.5:8080/</presentationURL>"));
        assert!(xml.contains("<UDN>uuid:5a7c1e2b-0000-4000-8000-0123456789ab</UDN>"));
        assert!(xml.contains("&lt;lab &amp; garage&gt;"));
        assert!(xml.contains(DEVICE_TYPE));
    }

    proptest::proptest! {
        #[test]
        fn any_datagram_is_handled_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let t0 = Instant::now();
            let mut r = Responder::new(device(), vec![LOCAL], t0, 9);
            let _ = r.handle(t0, client(2), LOCAL, true, &bytes);
            while r.poll_transmit(t0 + Duration::from_secs(6)).is_some() {}
        }
    }
}
