//! The async shell of a link: one tokio task that runs one sans-IO [`Protocol`] machine on one
//! UDP socket.
//!
//! This file owns the I/O: socket creation and options (multicast interface, loop, reuse,
//! the interfaces the server's discovery joins on), receiving datagrams with their arrival
//! address and sending them, the one timer the machine asks for, and the channels to
//! the gateway. It makes no protocol decision. Every send has a timeout
//! ([`SEND_TIMEOUT`]); receiving waits alongside the machine's timer, so no await on the
//! network can block the machine's timeouts.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol as SockProtocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::{LinkError, LinkEvent, Protocol};
use crate::knx::wire::cemi::LData;
use crate::knx::wire::knxip::{DEFAULT_PORT, ROUTING_MULTICAST};
use crate::netif::{self, Interface};

/// Longest wait for one datagram to be handed to the OS.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for an orderly close in [`super::LinkHandle::shutdown`].
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);
/// Events kept for a gateway that does not read [`super::LinkHandle::from_bus`]; beyond
/// this the oldest are dropped with a warning.
const MAX_PENDING_EVENTS: usize = 4096;
/// Pause after a receive error.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Receive buffer: larger than any KNXnet/IP frame over UDP.
const RECV_BUFFER: usize = 2048;

/// The channels between the task and its [`super::LinkHandle`].
#[derive(Debug)]
pub(crate) struct Channels {
    pub(crate) to_bus: mpsc::Receiver<LData>,
    pub(crate) from_bus: mpsc::Sender<LinkEvent>,
    pub(crate) shutdown: oneshot::Receiver<()>,
    /// New addresses of the device (only the serial link's machine uses them).
    pub(crate) control: mpsc::Receiver<super::LinkControl>,
}

fn socket_err(what: &'static str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> LinkError {
    move |source| LinkError::Socket { what, addr, source }
}

/// A seed for the routing back-off jitter, from the standard library's per-process random
/// hash keys (no extra dependency).
pub(crate) fn random_seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

pub(crate) fn local_addr(socket: &UdpSocket, context: SocketAddr) -> Result<SocketAddr, LinkError> {
    socket
        .local_addr()
        .map_err(socket_err("reading the local address", context))
}

fn into_tokio(socket: StdUdpSocket, addr: SocketAddr) -> Result<UdpSocket, LinkError> {
    socket
        .set_nonblocking(true)
        .map_err(socket_err("setting non-blocking mode", addr))?;
    UdpSocket::from_std(socket).map_err(socket_err("registering the socket", addr))
}

/// The client's socket: bound to the local address the OS would use towards `remote`, on a
/// free port, so that the HPAIs we send name a real endpoint. Not connected, because servers
/// may answer from a data endpoint with another port. Without a route to `remote` (network
/// not up yet) it binds 0.0.0.0 and the client uses route-back HPAIs (NAT mode).
pub(crate) async fn tunnel_socket(remote: SocketAddrV4) -> Result<UdpSocket, LinkError> {
    let remote_addr = SocketAddr::V4(remote);
    let probe = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .map_err(socket_err("binding a UDP socket", remote_addr))?;
    let local_ip = match probe.connect(remote).and_then(|()| probe.local_addr()) {
        Ok(SocketAddr::V4(a)) => *a.ip(),
        Ok(SocketAddr::V6(_)) => Ipv4Addr::UNSPECIFIED,
        Err(e) => {
            tracing::warn!(%remote, "no route to the tunnelling server yet ({e}); using route-back HPAIs");
            Ipv4Addr::UNSPECIFIED
        }
    };
    drop(probe);
    let bind = SocketAddr::V4(SocketAddrV4::new(local_ip, 0));
    UdpSocket::bind(bind)
        .await
        .map_err(socket_err("binding a UDP socket", bind))
}

/// The server's socket, bound to `bind`.
pub(crate) async fn server_socket(bind: SocketAddrV4) -> Result<UdpSocket, LinkError> {
    let addr = SocketAddr::V4(bind);
    UdpSocket::bind(addr)
        .await
        .map_err(socket_err("binding the server socket", addr))
}

/// On which interfaces a socket joins a multicast group.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JoinOn {
    /// The interface with this address (routing's, or the one a server is bound to); failure
    /// to join is final.
    One(Ipv4Addr),
    /// Each of these interfaces (name, its IPv4 address); those that fail are skipped with a
    /// warning. None at all, or none joined: the kernel's choice (INADDR_ANY), the interface
    /// of the route to the group.
    Each(Vec<(String, Ipv4Addr)>),
}

/// The interfaces a server bound to 0.0.0.0 answers discovery on: each that is up, can do
/// multicast, is not loopback and has an IPv4 address (its first that is neither loopback
/// nor unspecified; link-local counts, a service port without DHCP may have only that), by
/// name. A pure function of the list, so that the choice is tested without the machine's
/// interfaces.
fn discovery_interfaces(list: &[Interface]) -> Vec<(String, Ipv4Addr)> {
    let mut out: Vec<(String, Ipv4Addr)> = list
        .iter()
        .filter(|i| i.up && i.multicast && !i.loopback)
        .filter_map(|i| {
            let v4 = i.addresses.iter().find_map(|a| match a {
                IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_unspecified() => Some(*v4),
                _ => None,
            })?;
            Some((i.name.clone(), v4))
        })
        .collect();
    out.sort();
    out
}

/// Makes the built-in server reachable at the KNXnet/IP discovery address 224.0.23.12:3671
/// (03.08.02 §8.6.3.1: SEARCH_REQUESTs go to the multicast group):
///
/// * `local` is 0.0.0.0:3671: the server socket itself joins the group, on every interface
///   of [`discovery_interfaces`] (a gateway on two networks is found on both), and nothing
///   else is needed;
/// * otherwise a second socket, bound to 224.0.23.12:3671 with SO_REUSEADDR (KNX software
///   on the same host may listen too), joins the group (on `local`'s interface, or for
///   0.0.0.0 on every interface as above) and is returned; the driver hands what it
///   receives to [`Protocol::handle_discovery_datagram`]. The answers go out of the server
///   socket.
///
/// The interfaces are those up at start; one that comes up later is not joined until the
/// gateway restarts. Loopback (127.0.0.1) works on Linux: a SEARCH_REQUEST sent from a
/// socket bound to 127.0.0.1 leaves through `lo` and, with the sender's IP_MULTICAST_LOOP
/// (on by default), reaches members of the group on `lo`. Failure is not fatal: the server
/// then answers unicast SEARCH and DESCRIPTION requests only, and says so in one warning.
pub(crate) fn join_discovery(server: &UdpSocket, local: SocketAddrV4) -> Option<UdpSocket> {
    let group = SocketAddrV4::new(ROUTING_MULTICAST, DEFAULT_PORT);
    let on = if local.ip().is_unspecified() {
        JoinOn::Each(discovery_interfaces(&netif::interfaces()))
    } else {
        JoinOn::One(*local.ip())
    };
    let result = if local.ip().is_unspecified() && local.port() == DEFAULT_PORT {
        join_group(&SockRef::from(server), group, &on, GroupSocket::Discovery)
            .map(|joined| (None, joined))
    } else {
        discovery_socket(group, &on).map(|(socket, joined)| (Some(socket), joined))
    };
    match result {
        Ok((socket, joined)) => {
            tracing::info!(%group, interfaces = %joined, "KNXnet/IP discovery: answering SEARCH_REQUESTs sent to the multicast group");
            socket
        }
        Err(e) => {
            tracing::warn!(%group, "KNXnet/IP discovery unavailable, the gateway answers only SEARCH/DESCRIPTION requests sent to {local} itself: {e}");
            None
        }
    }
}

fn discovery_socket(group: SocketAddrV4, on: &JoinOn) -> Result<(UdpSocket, String), LinkError> {
    let socket = group_socket(group, GroupSocket::Discovery)?;
    let joined = join_group(&socket, group, on, GroupSocket::Discovery)?;
    only_joined(&socket, group)?;
    let socket = into_tokio(socket.into(), SocketAddr::V4(group))?;
    report_arrival(&socket);
    Ok((socket, joined))
}

/// Joins `group` on `socket` as `on` says; returns what was joined, for the log
/// (`eth0 192.168.1.5, eth1 10.0.0.1`).
fn join_group(
    socket: &Socket,
    group: SocketAddrV4,
    on: &JoinOn,
    kind: GroupSocket,
) -> Result<String, LinkError> {
    let [_, _, joining] = kind.steps();
    let addr = SocketAddr::V4(group);
    let interfaces = match on {
        JoinOn::One(interface) => {
            socket
                .join_multicast_v4(group.ip(), interface)
                .map_err(socket_err(joining, addr))?;
            return Ok(interface.to_string());
        }
        JoinOn::Each(interfaces) => interfaces,
    };
    let mut joined = Vec::new();
    for (name, ip) in interfaces {
        match socket.join_multicast_v4(group.ip(), ip) {
            Ok(()) => joined.push(format!("{name} {ip}")),
            Err(e) => tracing::warn!(%group, interface = %name, %ip, "{joining}: {e}"),
        }
    }
    if !joined.is_empty() {
        return Ok(joined.join(", "));
    }
    socket
        .join_multicast_v4(group.ip(), &Ipv4Addr::UNSPECIFIED)
        .map_err(socket_err(joining, addr))?;
    Ok("0.0.0.0 (no usable interface listed: the kernel's choice)".to_owned())
}

/// A UDP socket bound to the group's port with address reuse (other KNX software on the host
/// may listen too), not yet member of the group.
fn group_socket(group: SocketAddrV4, kind: GroupSocket) -> Result<Socket, LinkError> {
    let [create, binding, _] = kind.steps();
    let addr = SocketAddr::V4(group);
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProtocol::UDP))
        .map_err(socket_err(create, addr))?;
    socket
        .set_reuse_address(true)
        .map_err(socket_err("setting SO_REUSEADDR", addr))?;
    // Linux shares a UDP port among SO_REUSEADDR sockets and hands each multicast datagram
    // to all of them. SO_REUSEPORT must stay off there: it makes the kernel pick one socket
    // of the group per datagram, regardless of the interface it arrived on (measured on
    // 6.18: with two routing sockets on two interfaces, datagrams were lost at random).
    // The BSDs need SO_REUSEPORT to share a multicast port.
    #[cfg(all(unix, not(target_os = "linux")))]
    socket
        .set_reuse_port(true)
        .map_err(socket_err("setting SO_REUSEPORT", addr))?;
    // Binding to the group address (Linux) receives only that group's datagrams.
    let bind = if cfg!(target_os = "linux") {
        addr
    } else {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port()))
    };
    socket
        .bind(&bind.into())
        .map_err(socket_err(binding, bind))?;
    Ok(socket)
}

/// Linux delivers a group's datagrams to every socket bound to the port once *any* socket on
/// the host joined the group on *any* interface. This limits `socket` to its own
/// memberships; without it, routing on one interface would also hear KNX traffic of another
/// KNX/IP network the host is attached to.
fn only_joined(socket: &Socket, group: SocketAddrV4) -> Result<(), LinkError> {
    #[cfg(target_os = "linux")]
    socket.set_multicast_all_v4(false).map_err(socket_err(
        "limiting reception to the joined interface",
        SocketAddr::V4(group),
    ))?;
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, group);
    Ok(())
}

/// What a [`group_socket`] is for; names its steps in errors.
#[derive(Clone, Copy)]
enum GroupSocket {
    Discovery,
    Routing,
}

impl GroupSocket {
    fn steps(self) -> [&'static str; 3] {
        match self {
            Self::Discovery => [
                "creating the discovery socket",
                "binding the discovery socket",
                "joining the discovery group",
            ],
            Self::Routing => [
                "creating the routing socket",
                "binding the routing socket",
                "joining the routing multicast group",
            ],
        }
    }
}

/// The routing socket: a [`group_socket`], member of the group on `interface` only, that
/// sends through `interface`, TTL 16, multicast loop off so that our own indications do not
/// come back.
pub(crate) fn routing_socket(
    interface: Ipv4Addr,
    group: SocketAddrV4,
) -> Result<UdpSocket, LinkError> {
    let addr = SocketAddr::V4(group);
    let socket = group_socket(group, GroupSocket::Routing)?;
    join_group(
        &socket,
        group,
        &JoinOn::One(interface),
        GroupSocket::Routing,
    )?;
    only_joined(&socket, group)?;
    socket
        .set_multicast_if_v4(&interface)
        .map_err(socket_err("choosing the multicast interface", addr))?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(socket_err("switching multicast loop off", addr))?;
    socket
        .set_multicast_ttl_v4(16)
        .map_err(socket_err("setting the multicast TTL", addr))?;
    into_tokio(socket.into(), addr)
}

/// Runs `machine` on `socket` until it is closed, the handle asks for shutdown, or the
/// gateway dropped both channels.
pub(crate) async fn run<P: Protocol + Send>(machine: P, socket: UdpSocket, channels: Channels) {
    run_with_discovery(machine, socket, None, channels).await;
}

/// One datagram: its length, its sender and the local address it arrived at, where the
/// socket reports it ([`report_arrival`]).
type Received = (usize, SocketAddr, Option<Ipv4Addr>);

/// Asks the OS to report the local address each datagram arrives at (Linux: IP_PKTINFO).
/// The built-in server on 0.0.0.0 names that address in its answers, so that a client on
/// one network is not told the gateway's address on another. Without it (other systems, or
/// the option refused) the server sends 0.0.0.0:0, "use the sender's".
pub(crate) fn report_arrival(socket: &UdpSocket) {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
    {
        tracing::warn!(
            "IP_PKTINFO refused ({e}); answers name 0.0.0.0:0 instead of the arrival address"
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// Receives one datagram with its arrival address (`ipi_spec_dst` of IP_PKTINFO: the
/// address it was sent to, or for multicast and broadcast the address the kernel answers
/// the sender from, on the interface it came in on). Cancel-safe, as `recv_from`.
#[cfg(target_os = "linux")]
async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Received> {
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg};

    let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
    socket
        .async_io(tokio::io::Interest::READABLE, || {
            let mut iov = [std::io::IoSliceMut::new(&mut *buf)];
            let msg = recvmsg::<SockaddrIn>(
                socket.as_raw_fd(),
                &mut iov,
                Some(cmsg.as_mut_slice()),
                MsgFlags::empty(),
            )
            .map_err(std::io::Error::from)?;
            let from = msg
                .address
                .map(|a| SocketAddr::V4(a.into()))
                .ok_or_else(|| std::io::Error::other("datagram without an IPv4 sender"))?;
            let local = msg.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|c| match c {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        Some(Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)))
                    }
                    _ => None,
                })
            });
            Ok((msg.bytes, from, local))
        })
        .await
}

/// Receives one datagram (the arrival address is not available here).
#[cfg(not(target_os = "linux"))]
async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Received> {
    let (n, from) = socket.recv_from(buf).await?;
    Ok((n, from, None))
}

async fn recv_discovery(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<Received> {
    match socket {
        Some(s) => recv(s, buf).await,
        None => std::future::pending().await,
    }
}

/// [`run`] with a second, receive-only socket (the server's multicast discovery socket)
/// whose datagrams go to [`Protocol::handle_discovery_datagram`].
pub(crate) async fn run_with_discovery<P: Protocol + Send>(
    mut machine: P,
    socket: UdpSocket,
    discovery: Option<UdpSocket>,
    channels: Channels,
) {
    let Channels {
        mut to_bus,
        from_bus,
        mut shutdown,
        mut control,
    } = channels;
    let mut control_open = true;
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut discovery_buf = vec![0u8; RECV_BUFFER];
    let mut pending: VecDeque<LinkEvent> = VecDeque::new();
    let mut to_bus_open = true;
    let mut closing = false;
    let mut shutdown_armed = true;
    loop {
        while let Some(t) = machine.poll_transmit() {
            match tokio::time::timeout(SEND_TIMEOUT, socket.send_to(&t.payload, t.destination))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(to = %t.destination, "send failed: {e}"),
                Err(_) => tracing::warn!(to = %t.destination, "send timed out"),
            }
        }
        while let Some(event) = machine.poll_event() {
            if pending.len() >= MAX_PENDING_EVENTS {
                pending.pop_front();
                tracing::warn!("gateway does not read link events; dropped the oldest");
            }
            pending.push_back(event);
        }
        if machine.is_closed() {
            break;
        }
        let deadline = machine.poll_timeout();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            asked = &mut shutdown, if shutdown_armed && !closing => {
                shutdown_armed = false;
                // A dropped sender (the handle was taken apart) is no request to close.
                if asked.is_ok() {
                    tracing::debug!("link shutdown requested");
                    closing = true;
                    machine.close(Instant::now());
                }
            }
            received = recv(&socket, &mut buf) => match received {
                Ok((n, from, local)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    machine.handle_datagram_at(Instant::now(), from, local, data);
                }
                // The machine's timeouts deal with lost datagrams; the pause keeps a
                // persistent socket error from spinning.
                Err(e) => {
                    tracing::debug!("receive error: {e}");
                    tokio::time::sleep(RECV_ERROR_PAUSE).await;
                }
            },
            received = recv_discovery(discovery.as_ref(), &mut discovery_buf) => match received {
                Ok((n, from, local)) => {
                    let data = discovery_buf.get(..n).unwrap_or_default();
                    machine.handle_discovery_datagram(Instant::now(), from, local, data);
                }
                Err(e) => {
                    tracing::debug!("receive error on the discovery socket: {e}");
                    tokio::time::sleep(RECV_ERROR_PAUSE).await;
                }
            },
            told = control.recv(), if control_open => match told {
                Some(told) => machine.handle_control(Instant::now(), told),
                None => control_open = false,
            },
            frame = to_bus.recv(), if to_bus_open && !closing && machine.wants_frames() => {
                match frame {
                    Some(frame) => machine.handle_frame(Instant::now(), frame),
                    None => to_bus_open = false,
                }
            }
            permit = from_bus.reserve(), if !pending.is_empty() => {
                if let (Ok(permit), Some(event)) = (permit, pending.pop_front()) {
                    permit.send(event);
                } else {
                    pending.clear();
                }
            }
            () = sleep => machine.handle_timeout(Instant::now()),
            () = from_bus.closed(), if !to_bus_open && !closing => {
                tracing::debug!("gateway dropped the link handle; closing");
                closing = true;
                machine.close(Instant::now());
            }
        }
    }
    hand_over(&from_bus, pending);
    tracing::debug!("link task ended");
}

/// Hands the events a link task still holds (e.g. the final Down state) to the gateway without
/// waiting for room: what does not fit is dropped, the task is ending.
pub(super) fn hand_over(from_bus: &mpsc::Sender<LinkEvent>, pending: VecDeque<LinkEvent>) {
    for event in pending {
        if from_bus.try_send(event).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_seeds_differ() {
        assert_ne!(random_seed(), random_seed());
    }

    fn iface(name: &str, addresses: &[&str], up: bool, multicast: bool) -> Interface {
        Interface {
            name: name.to_owned(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            loopback: name == "lo",
            up,
            multicast,
            ..Interface::default()
        }
    }

    /// Every up, multicast-capable, non-loopback interface with IPv4, once, by name, with its
    /// first usable IPv4 address.
    #[test]
    fn discovery_is_answered_on_every_usable_ipv4_interface() {
        let list = [
            iface("lo", &["127.0.0.1", "::1"], true, false),
            iface("eth1", &["fe80::1", "10.0.0.1", "10.0.0.2"], true, true),
            iface("eth0", &["192.168.1.5"], true, true),
            iface("usb0", &["169.254.7.1"], true, true),
            iface("eth2", &["192.168.2.5"], false, true),
            iface("tun0", &["10.8.0.1"], true, false),
            iface("wlan0", &["2001:db8::5"], true, true),
        ];
        let ip = |a: &str| a.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            discovery_interfaces(&list),
            [
                ("eth0".to_owned(), ip("192.168.1.5")),
                ("eth1".to_owned(), ip("10.0.0.1")),
                ("usb0".to_owned(), ip("169.254.7.1")),
            ]
        );
        assert_eq!(discovery_interfaces(&list[..1]), []);
    }
}
