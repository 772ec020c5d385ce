//! KNX bus links: the gateway's way onto the bus, over KNX/TP (TP-UART) or KNXnet/IP.
//!
//! This module owns the public link interface ([`LinkSpec`], [`spawn`], [`LinkHandle`],
//! [`LinkEvent`]) and the choice of protocol machine. The protocols themselves are sans-IO
//! state machines in the style of quinn-proto: they never read a clock or touch a socket or
//! port; time comes in as `now`. Every machine is a [`Link`] (frames from the gateway in,
//! [`LinkEvent`]s out, [`Link::poll_timeout`] / [`Link::handle_timeout`]) plus one transport:
//! [`Protocol`] for UDP datagrams (`handle_datagram` / `poll_transmit`), [`ByteStream`] for
//! a serial line (`handle_bytes` / `poll_write`). The thin tokio tasks in [`driver`] and
//! [`serial`] only move datagrams or bytes and arm that one timer.
//!
//! * [`tpuart`]: KNX/TP through a TP-UART chip on a serial line.
//! * [`tunnel`]: KNXnet/IP tunnelling client (to a KNX IP interface or router, e.g. knxd).
//! * [`server`]: the built-in KNXnet/IP tunnelling server (visualisations, test tools, ETS).
//! * [`routing`]: KNXnet/IP routing (multicast 224.0.23.12:3671).
//! * [`driver`]: the async shell that runs one datagram machine on one UDP socket.
//! * [`serial`]: the async shell that runs one byte-stream machine on a serial port.
//!
//! Frames the gateway sends go into [`LinkHandle::to_bus`] with L_Data.req semantics; a
//! source address 0.0.0 is replaced by the link's address. Frames from the bus and link-state
//! changes come out of [`LinkHandle::from_bus`].

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::hw::watchdog::watched;
use crate::knx::address::{GroupAddress, IndividualAddress};
use crate::knx::wire::cemi::{LData, PropFrame};
use crate::knx::wire::knxip::{DEFAULT_PORT, KnxIpFrame, ROUTING_MULTICAST, Status};

pub mod driver;
pub mod routing;
pub mod serial;
pub mod server;
pub mod tpuart;
pub mod tunnel;

/// State of the KNX link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Connected to the bus.
    Connected,
    /// Trying to (re)connect.
    Reconnecting,
    /// No connection (also before the link reported anything).
    #[default]
    Down,
}

#[cfg(test)]
pub(crate) mod testkit;

/// Which link to open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkSpec {
    /// KNX/TP through a TP-UART chip on a serial port (19200 8E1).
    Tpuart {
        /// The serial device, e.g. `/dev/ttyS1`.
        path: PathBuf,
    },
    /// A KNXnet/IP tunnelling client to the server at `remote` (its control endpoint).
    Tunnel {
        /// The server's control endpoint (IPv4).
        remote: SocketAddr,
    },
    /// KNXnet/IP routing on one interface.
    Routing {
        /// Local IPv4 address of the interface to join the multicast group on.
        interface: Ipv4Addr,
        /// Multicast group and port (default 224.0.23.12:3671).
        group: SocketAddrV4,
    },
    /// The built-in KNXnet/IP tunnelling server, listening on `bind` (IPv4).
    Server {
        /// Local address and port to listen on.
        bind: SocketAddr,
    },
}

/// Why a link specification does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// No `scheme://`.
    #[error(
        "link `{0}`: expected tpuart:///dev/SERIAL-PORT, tunnel://HOST[:PORT], routing://INTERFACE-ADDRESS[:PORT][?group=MULTICAST] or server://ADDRESS[:PORT]"
    )]
    Syntax(String),
    /// A scheme other than tpuart, tunnel, routing or server.
    #[error("link `{text}`: unknown scheme `{scheme}` (use tpuart, tunnel, routing or server)")]
    Scheme {
        /// The whole text.
        text: String,
        /// The scheme given.
        scheme: String,
    },
    /// The address part is not an IPv4 address with an optional port.
    #[error("link `{text}`: `{address}` is not an IPv4 address with optional :port ({reason})")]
    Address {
        /// The whole text.
        text: String,
        /// The address part.
        address: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The serial device of a TP-UART link is not an absolute path.
    #[error("link `{0}`: the TP-UART device must be an absolute path, e.g. tpuart:///dev/ttyS1")]
    SerialPath(String),
}

fn parse_v4_with_port(
    text: &str,
    part: &str,
    default_port: u16,
) -> Result<SocketAddrV4, SpecError> {
    let err = |reason| SpecError::Address {
        text: text.to_owned(),
        address: part.to_owned(),
        reason,
    };
    let part = part.trim_end_matches('/');
    if part.is_empty() {
        return Err(err("empty"));
    }
    if part.starts_with('[') || part.matches(':').count() > 1 {
        return Err(err("KNXnet/IP over UDP is IPv4 only"));
    }
    let (host, port) = match part.split_once(':') {
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| err("bad port"))?;
            if port == 0 {
                return Err(err("port 0"));
            }
            (host, port)
        }
        None => (part, default_port),
    };
    let ip: Ipv4Addr = host.parse().map_err(|_| err("bad IPv4 address"))?;
    Ok(SocketAddrV4::new(ip, port))
}

impl FromStr for LinkSpec {
    type Err = SpecError;

    /// `tunnel://192.168.1.5[:3671]`, `routing://10.213.0.1[:3671][?group=224.0.23.12]` (the
    /// interface's own address; the group defaults to 224.0.23.12 and uses the same port),
    /// `server://127.0.0.1:3671` (port optional), `tpuart:///dev/ttyS1` (also knxd's
    /// `tpuart:/dev/ttyS1`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if let Some((scheme, rest)) = trimmed.split_once(':')
            && scheme.eq_ignore_ascii_case("tpuart")
        {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.starts_with('/') || path.len() < 2 {
                return Err(SpecError::SerialPath(text.to_owned()));
            }
            return Ok(Self::Tpuart {
                path: PathBuf::from(path),
            });
        }
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| SpecError::Syntax(text.to_owned()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "tunnel" => {
                let remote = parse_v4_with_port(text, rest, DEFAULT_PORT)?;
                if remote.ip().is_unspecified() || remote.ip().is_multicast() {
                    return Err(SpecError::Address {
                        text: text.to_owned(),
                        address: rest.to_owned(),
                        reason: "a tunnel needs a unicast server address",
                    });
                }
                Ok(Self::Tunnel {
                    remote: remote.into(),
                })
            }
            "routing" => {
                let (rest, group) = match rest.split_once("?group=") {
                    Some((rest, group)) => {
                        let group: Ipv4Addr = group
                            .parse()
                            .ok()
                            .filter(Ipv4Addr::is_multicast)
                            .ok_or_else(|| SpecError::Address {
                                text: text.to_owned(),
                                address: group.to_owned(),
                                reason: "the group must be an IPv4 multicast address",
                            })?;
                        (rest, group)
                    }
                    None => (rest, ROUTING_MULTICAST),
                };
                let local = parse_v4_with_port(text, rest, DEFAULT_PORT)?;
                if local.ip().is_multicast() {
                    return Err(SpecError::Address {
                        text: text.to_owned(),
                        address: rest.to_owned(),
                        reason: "give the local interface address, not the multicast group",
                    });
                }
                Ok(Self::Routing {
                    interface: *local.ip(),
                    group: SocketAddrV4::new(group, local.port()),
                })
            }
            "server" => Ok(Self::Server {
                bind: parse_v4_with_port(text, rest, DEFAULT_PORT)?.into(),
            }),
            other => Err(SpecError::Scheme {
                text: text.to_owned(),
                scheme: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tpuart { path } => write!(f, "tpuart://{}", path.display()),
            Self::Tunnel { remote } => write!(f, "tunnel://{remote}"),
            Self::Routing { interface, group } => {
                write!(f, "routing://{interface}:{}", group.port())?;
                if *group.ip() != ROUTING_MULTICAST {
                    write!(f, "?group={}", group.ip())?;
                }
                Ok(())
            }
            Self::Server { bind } => write!(f, "server://{bind}"),
        }
    }
}

/// Something the link reports to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A group or individual telegram from the bus, as L_Data.ind.
    Frame(LData),
    /// The link's state changed.
    State(LinkState),
    /// An M_PropWrite.req on a KNXnet/IP device-management connection of the built-in
    /// server (cEMI local device management, KNX 03.06.03 §4.1.7), for the device stack to
    /// serve; its answer goes back as [`LinkControl::PropertyWriteCon`] with the same
    /// channel.
    PropertyWrite {
        /// The management connection's channel id.
        channel: u8,
        /// The request (object type, instance, property, count, start index, data).
        request: PropFrame,
    },
}

/// What the gateway tells a running link ([`LinkHandle::control`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkControl {
    /// The device's addresses, programming mode or identity changed
    /// ([`Link::set_own_device`]).
    Device(OwnDevice),
    /// The gateway's IP settings, for the built-in server's KNXnet/IP parameter object
    /// ([`Link::set_ip_parameters`]).
    IpParameters(crate::knx::device::ip::IpParameters),
    /// The device stack's answer to a [`LinkEvent::PropertyWrite`]: the M_PropWrite.con
    /// (positive with the element read back, or negative with the error code,
    /// [`PropFrame::error`]) for that channel ([`Link::confirm_property_write`]).
    PropertyWriteCon {
        /// The management connection's channel id.
        channel: u8,
        /// The confirmation's body.
        con: PropFrame,
    },
}

impl From<OwnDevice> for LinkControl {
    fn from(device: OwnDevice) -> Self {
        Self::Device(device)
    }
}

/// Why a link could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// KNXnet/IP over UDP needs IPv4 addresses.
    #[error("{0}: KNXnet/IP over UDP needs an IPv4 address")]
    NotIpv4(SocketAddr),
    /// A socket could not be created, configured or bound.
    #[error("{what} ({addr}): {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The address involved.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The serial port could not be opened.
    #[error("serial port {}: {reason}", path.display())]
    Serial {
        /// The device.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A datagram a protocol machine wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The KNXnet/IP frame.
    pub payload: Vec<u8>,
}

/// The bus side of every link machine, whatever carries it (UDP datagrams, a serial byte
/// stream): frames from the gateway in, events to the gateway out, one timer.
///
/// Calling protocol: feed inputs (the transport's `handle_*` and [`Link::handle_frame`]) as
/// they happen with the current time; after each call drain the transport's output and
/// [`Link::poll_event`], then wait until [`Link::poll_timeout`] (if any) and call
/// [`Link::handle_timeout`].
pub trait Link {
    /// The gateway wants `frame` sent on the bus.
    fn handle_frame(&mut self, now: Instant, frame: LData);
    /// The time returned by [`Link::poll_timeout`] has come.
    fn handle_timeout(&mut self, now: Instant);
    /// Starts an orderly close (disconnects); [`Link::is_closed`] tells when done.
    fn close(&mut self, now: Instant);
    /// The next event for the gateway.
    fn poll_event(&mut self) -> Option<LinkEvent>;
    /// When [`Link::handle_timeout`] is due next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// False while the machine's send queue is full (the driver then stops reading frames).
    fn wants_frames(&self) -> bool;
    /// True once closed; the driver then ends.
    fn is_closed(&self) -> bool;
    /// The device's individual address, group addresses or programming mode changed (ETS,
    /// the button, the website): a link that acknowledges frames for the device (TP-UART)
    /// follows the addresses, the tunnelling server reports them in its device info DIB.
    /// Others ignore it.
    fn set_own_device(&mut self, device: OwnDevice) {
        let _ = device;
    }
    /// The device stack answered a [`LinkEvent::PropertyWrite`] of `channel`; only the
    /// built-in server, which reported it, sends the M_PropWrite.con. Others ignore it.
    fn confirm_property_write(&mut self, now: Instant, channel: u8, con: PropFrame) {
        let _ = (now, channel, con);
    }
    /// The gateway's IP settings changed (or are told the first time); only the built-in
    /// server reports them (KNXnet/IP parameter object). Others ignore them.
    fn set_ip_parameters(&mut self, ip: crate::knx::device::ip::IpParameters) {
        let _ = ip;
    }
    /// Carries out what the gateway told the link.
    fn handle_control(&mut self, now: Instant, control: LinkControl) {
        match control {
            LinkControl::Device(device) => self.set_own_device(device),
            LinkControl::IpParameters(ip) => self.set_ip_parameters(ip),
            LinkControl::PropertyWriteCon { channel, con } => {
                self.confirm_property_write(now, channel, con);
            }
        }
    }
}

/// What a link must know of the gateway's own KNX device: its individual address, the group
/// addresses of its objects (`None`: every group) and its programming mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnDevice {
    /// The device's individual address.
    pub own: IndividualAddress,
    /// The group addresses of its address table.
    pub groups: Option<Vec<GroupAddress>>,
    /// Programming mode is on.
    pub programming_mode: bool,
    /// The device object's fixed identity (serial number, manufacturer, order info, firmware
    /// version), which the tunnelling server reports to device-management connections.
    pub identity: crate::knx::device::Identity,
}

/// A link machine carried by a byte stream (the TP-UART's serial line): bytes in, bytes out.
pub trait ByteStream: Link {
    /// Bytes arrived on the stream.
    fn handle_bytes(&mut self, now: Instant, data: &[u8]);
    /// The next bytes to write (one request or frame, written in one piece).
    fn poll_write(&mut self) -> Option<Vec<u8>>;
}

/// A link machine carried by UDP datagrams (KNXnet/IP), driven by [`driver`].
pub trait Protocol: Link {
    /// A datagram arrived from `from`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    /// A datagram arrived from `from` at the local address `local`, where the driver knows
    /// it: the address it was sent to, for multicast the gateway's address on the interface
    /// it came in on. Only the server bound to 0.0.0.0 needs it (it names its endpoint in
    /// answers); the default ignores it.
    fn handle_datagram_at(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<Ipv4Addr>,
        data: &[u8],
    ) {
        let _ = local;
        self.handle_datagram(now, from, data);
    }
    /// A datagram arrived on the multicast discovery socket (224.0.23.12:3671) that the
    /// driver opens for the built-in server, at `local` as in
    /// [`Protocol::handle_datagram_at`]. Anyone on the network may send there (routers'
    /// ROUTING_INDICATIONs too), so the default ignores it.
    fn handle_discovery_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<Ipv4Addr>,
        data: &[u8],
    ) {
        let _ = (now, from, local, data);
    }
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
}

/// A running link: channels to and from the bus, and control of its task.
///
/// The task ends after [`LinkHandle::shutdown`], or by itself (with the same orderly close)
/// once the gateway has dropped both `to_bus` and `from_bus`; the fields may be taken apart.
/// A gateway that does not read `from_bus` loses the oldest events beyond 4096, with a
/// warning; the link itself keeps running.
#[derive(Debug)]
pub struct LinkHandle {
    /// Frames the gateway sends (L_Data.req semantics; source 0.0.0 = the link's address).
    pub to_bus: mpsc::Sender<LData>,
    /// Frames from the bus (L_Data.ind) and state changes.
    pub from_bus: mpsc::Receiver<LinkEvent>,
    /// New addresses or programming mode of the device ([`Link::set_own_device`]), and the
    /// device stack's answers to [`LinkEvent::PropertyWrite`].
    pub control: mpsc::Sender<LinkControl>,
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl LinkHandle {
    /// The local UDP address of the link's socket (the server's listening address);
    /// 0.0.0.0:0 for a serial link.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes the link in order (tunnels are disconnected) and waits for its task, at most
    /// [`driver::SHUTDOWN_TIMEOUT`]; then aborts it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let abort = self.task.abort_handle();
        if tokio::time::timeout(driver::SHUTDOWN_TIMEOUT, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("link task did not stop in time; aborting it");
            abort.abort();
        }
    }

    /// Stops the link's task at once, without disconnecting.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// True once the link's task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Capacity of [`LinkHandle::to_bus`].
pub const TO_BUS_CAPACITY: usize = 64;
/// Capacity of [`LinkHandle::from_bus`].
pub const FROM_BUS_CAPACITY: usize = 256;

fn v4(addr: SocketAddr) -> Result<SocketAddrV4, LinkError> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(LinkError::NotIpv4(addr)),
    }
}

/// Opens a link and starts its task. `own_address` is the gateway's individual address: the
/// routing source, the server's device address (tunnels get the next ones); a tunnel client
/// uses the address its server assigns. A TP-UART link acknowledges every group telegram;
/// [`spawn_with_groups`] limits that to the device's group addresses.
///
/// Returns once the socket is bound; connecting (tunnel) happens in the task and is reported
/// as [`LinkEvent::State`]. Must be called inside a tokio runtime.
pub async fn spawn(
    spec: LinkSpec,
    own_address: IndividualAddress,
) -> Result<LinkHandle, LinkError> {
    spawn_with_groups(spec, own_address, None).await
}

/// [`spawn`], with the group addresses of the device's objects (its address table): a TP-UART
/// link acknowledges group telegrams only to these (and broadcast), as a KNX device does;
/// `None` acknowledges all. The KNXnet/IP links ignore it.
pub async fn spawn_with_groups(
    spec: LinkSpec,
    own_address: IndividualAddress,
    groups: Option<Vec<GroupAddress>>,
) -> Result<LinkHandle, LinkError> {
    let (to_bus_tx, to_bus_rx) = mpsc::channel(TO_BUS_CAPACITY);
    let (from_bus_tx, from_bus_rx) = mpsc::channel(FROM_BUS_CAPACITY);
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let (control_tx, control_rx) = mpsc::channel(32);
    let channels = driver::Channels {
        to_bus: to_bus_rx,
        from_bus: from_bus_tx,
        shutdown: shutdown_rx,
        control: control_rx,
    };
    let now = Instant::now();
    let (local_addr, task) = match spec {
        LinkSpec::Tpuart { path } => {
            let port = serial::open_tpuart(&path)?;
            tracing::info!(path = %path.display(), %own_address, "KNX/TP link through the TP-UART starting");
            let options = tpuart::TpUartOptions {
                ack_groups: groups.map_or(tpuart::AckGroups::All, |g| {
                    tpuart::AckGroups::Only(g.into_iter().collect::<HashSet<_>>())
                }),
                ..tpuart::TpUartOptions::default()
            };
            let machine = tpuart::TpUartLink::new(now, own_address, options);
            (
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                tokio::spawn(watched(
                    "KNX link",
                    serial::run(machine, port, serial::Reopen::Tpuart(path), channels),
                )),
            )
        }
        LinkSpec::Tunnel { remote } => {
            let remote = v4(remote)?;
            let socket = driver::tunnel_socket(remote).await?;
            let local = v4(driver::local_addr(&socket, remote.into())?)?;
            tracing::info!(%remote, %local, "KNXnet/IP tunnelling client starting");
            let machine = tunnel::TunnelClient::new(now, remote, local);
            (
                local.into(),
                tokio::spawn(watched("KNX link", driver::run(machine, socket, channels))),
            )
        }
        LinkSpec::Routing { interface, group } => {
            let socket = driver::routing_socket(interface, group)?;
            let local = driver::local_addr(&socket, group.into())?;
            tracing::info!(%interface, %group, %own_address, "KNXnet/IP routing starting");
            let machine = routing::Router::new(own_address, group, driver::random_seed());
            (
                local,
                tokio::spawn(watched("KNX link", driver::run(machine, socket, channels))),
            )
        }
        LinkSpec::Server { bind } => {
            let bind = v4(bind)?;
            let socket = driver::server_socket(bind).await?;
            let local = v4(driver::local_addr(&socket, bind.into())?)?;
            tracing::info!(%local, %own_address, "KNXnet/IP tunnelling server listening");
            driver::report_arrival(&socket);
            let discovery = driver::join_discovery(&socket, local);
            let machine = server::TunnelServer::new(own_address, local);
            (
                local.into(),
                tokio::spawn(watched(
                    "KNX link",
                    driver::run_with_discovery(machine, socket, discovery, channels),
                )),
            )
        }
    };
    Ok(LinkHandle {
        to_bus: to_bus_tx,
        from_bus: from_bus_rx,
        control: control_tx,
        local_addr,
        shutdown: Some(shutdown_tx),
        task,
    })
}

/// Replaces an unspecified IPv4 address or port 0 in an HPAI by the datagram's sender
/// (KNXnet/IP "route back" / NAT mode).
pub(crate) fn endpoint_or(hpai_addr: Ipv4Addr, hpai_port: u16, from: SocketAddr) -> SocketAddr {
    if hpai_addr.is_unspecified() || hpai_port == 0 {
        from
    } else {
        SocketAddr::new(IpAddr::V4(hpai_addr), hpai_port)
    }
}

/// A TUNNELLING_REQUEST whose sequence number was accepted: the acknowledgement to send, and
/// whether the frame is new (to deliver) or a repetition (acknowledged again, not delivered).
pub(crate) struct Accepted {
    pub(crate) ack: KnxIpFrame,
    pub(crate) deliver: bool,
}

/// Decides on a received TUNNELLING_REQUEST's sequence number (KNXnet/IP tunnelling, 03.08.04
/// §2.6): the expected number is acknowledged, delivered and advances `recv_seq`; one less
/// (a repetition whose ACK was lost) is acknowledged again and not delivered; anything else is
/// dropped without an acknowledgement (`None`). Both ends of a tunnel share this rule.
pub(crate) fn accept_sequence(recv_seq: &mut u8, channel: u8, sequence: u8) -> Option<Accepted> {
    let deliver = if sequence == *recv_seq {
        *recv_seq = recv_seq.wrapping_add(1);
        true
    } else if sequence == recv_seq.wrapping_sub(1) {
        tracing::debug!(
            channel,
            sequence,
            "repeated TUNNELLING_REQUEST acknowledged again, not delivered"
        );
        false
    } else {
        tracing::warn!(
            channel,
            sequence,
            expected = *recv_seq,
            "TUNNELLING_REQUEST out of sequence dropped"
        );
        return None;
    };
    let ack = KnxIpFrame::TunnellingAck {
        channel_id: channel,
        sequence,
        status: Status::NoError,
    };
    Some(Accepted { ack, deliver })
}

/// Parses a KNXnet/IP datagram; a malformed one is logged and dropped (`None`).
pub(crate) fn parse_datagram(from: SocketAddr, data: &[u8]) -> Option<KnxIpFrame> {
    match KnxIpFrame::parse(data) {
        Ok(frame) => Some(frame),
        Err(e) => {
            tracing::warn!(%from, len = data.len(), "malformed KNXnet/IP datagram dropped: {e}");
            None
        }
    }
}

/// Turns a frame from the gateway's objects into the L_Data.ind a KNXnet/IP link sends, with
/// the link's own individual address as source where the frame names none.
pub(crate) fn own_indication(mut frame: LData, own: IndividualAddress) -> LData {
    frame.service = crate::knx::wire::cemi::LDataService::Ind;
    if frame.source.raw() == 0 {
        frame.source = own;
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_default_ports() {
        assert_eq!(
            "tunnel://192.168.1.5".parse::<LinkSpec>().unwrap(),
            LinkSpec::Tunnel {
                remote: "192.168.1.5:3671".parse().unwrap()
            }
        );
        assert_eq!(
            "tunnel://192.168.1.5:3700".parse::<LinkSpec>().unwrap(),
            LinkSpec::Tunnel {
                remote: "192.168.1.5:3700".parse().unwrap()
            }
        );
        assert_eq!(
            "routing://10.213.0.1".parse::<LinkSpec>().unwrap(),
            LinkSpec::Routing {
                interface: Ipv4Addr::new(10, 213, 0, 1),
                group: "224.0.23.12:3671".parse().unwrap()
            }
        );
        assert_eq!(
            "routing://10.213.0.1:3672".parse::<LinkSpec>().unwrap(),
            LinkSpec::Routing {
                interface: Ipv4Addr::new(10, 213, 0, 1),
                group: "224.0.23.12:3672".parse().unwrap()
            }
        );
        assert_eq!(
            "server://127.0.0.1:3671".parse::<LinkSpec>().unwrap(),
            LinkSpec::Server {
                bind: "127.0.0.1:3671".parse().unwrap()
            }
        );
        assert_eq!(
            "SERVER://0.0.0.0".parse::<LinkSpec>().unwrap(),
            LinkSpec::Server {
                bind: "0.0.0.0:3671".parse().unwrap()
            }
        );
    }

    #[test]
    fn tpuart_specs() {
        let tp = |p: &str| LinkSpec::Tpuart {
            path: PathBuf::from(p),
        };
        assert_eq!(
            "tpuart:///dev/ttyS1".parse::<LinkSpec>().unwrap(),
            tp("/dev/ttyS1")
        );
        assert_eq!(
            "tpuart:/dev/pts/3".parse::<LinkSpec>().unwrap(),
            tp("/dev/pts/3")
        );
        assert_eq!(
            "TPUART:///dev/ttyKNX".parse::<LinkSpec>().unwrap(),
            tp("/dev/ttyKNX")
        );
        let err = |s: &str| s.parse::<LinkSpec>().unwrap_err().to_string();
        assert!(err("tpuart://ttyS1").contains("absolute path"));
        assert!(err("tpuart://").contains("absolute path"));
    }

    #[test]
    fn specs_round_trip_through_display() {
        for text in [
            "tpuart:///dev/ttyS1",
            "tunnel://192.168.1.5:3671",
            "routing://10.213.0.1:3671",
            "routing://10.213.0.1:3700?group=239.1.2.3",
            "server://127.0.0.1:3671",
        ] {
            assert_eq!(text.parse::<LinkSpec>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: &str| s.parse::<LinkSpec>().unwrap_err().to_string();
        assert!(err("192.168.1.5").contains("expected tpuart:///dev/SERIAL-PORT, tunnel://"));
        assert!(err("udp://1.2.3.4").contains("unknown scheme `udp`"));
        assert!(err("tunnel://knx.local").contains("bad IPv4 address"));
        assert!(err("tunnel://1.2.3.4:x").contains("bad port"));
        assert!(err("tunnel://1.2.3.4:0").contains("port 0"));
        assert!(err("tunnel://[::1]:3671").contains("IPv4 only"));
        assert!(err("tunnel://0.0.0.0").contains("unicast"));
        assert!(err("routing://224.0.23.12").contains("interface address"));
        assert!(err("routing://10.0.0.1?group=10.0.0.2").contains("multicast"));
        assert!(err("server://").contains("empty"));
    }

    #[test]
    fn sequence_numbers_wrap_and_repetitions_are_acknowledged_again() {
        // (expected, received) → Some(delivered) or None (dropped), and the next expected.
        for (expected, got, verdict, next) in [
            (0, 0, Some(true), 1),
            (255, 255, Some(true), 0),
            (0, 255, Some(false), 0),
            (5, 4, Some(false), 5),
            (5, 6, None, 5),
            (5, 3, None, 5),
        ] {
            let mut recv_seq = expected;
            let accepted = accept_sequence(&mut recv_seq, 7, got);
            assert_eq!(
                accepted.as_ref().map(|a| a.deliver),
                verdict,
                "{expected} {got}"
            );
            assert_eq!(recv_seq, next, "{expected} {got}");
            if let Some(a) = accepted {
                assert_eq!(
                    a.ack,
                    KnxIpFrame::TunnellingAck {
                        channel_id: 7,
                        sequence: got,
                        status: Status::NoError
                    }
                );
            }
        }
    }

    #[test]
    fn route_back_uses_the_sender() {
        let from: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        assert_eq!(endpoint_or(Ipv4Addr::UNSPECIFIED, 0, from), from);
        assert_eq!(
            endpoint_or(Ipv4Addr::new(10, 0, 0, 8), 4000, from),
            "10.0.0.8:4000".parse::<SocketAddr>().unwrap()
        );
    }
}
