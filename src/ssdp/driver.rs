//! The SSDP responder's socket task: moves datagrams between UDP port 1900 and the sans-IO
//! [`Responder`], and sends `ssdp:byebye` when stopped. It decides nothing itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Device, MULTICAST, Responder};
use crate::netif;

/// A running responder.
#[derive(Debug)]
pub struct SsdpHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SsdpHandle {
    /// Sends `ssdp:byebye` and stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The address this host sends from towards `to` (the kernel's route choice).
fn local_toward(to: SocketAddr) -> Option<Ipv4Addr> {
    let probe = StdUdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect(to).ok()?;
    match probe.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// Opens UDP 1900, joins the SSDP group on every up, multicast-capable, non-loopback IPv4
/// interface (the kernel's choice when there is none) and starts answering. An error (port in
/// use, no multicast) is returned for the caller to log: the gateway works without discovery.
pub fn spawn(device: Device, port: u16) -> std::io::Result<SsdpHandle> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    let mut interfaces = Vec::new();
    for i in netif::interfaces() {
        if !i.up || !i.multicast || i.loopback {
            continue;
        }
        for addr in i.addresses {
            if let IpAddr::V4(ip) = addr {
                match socket.join_multicast_v4(MULTICAST.ip(), &ip) {
                    Ok(()) => interfaces.push(ip),
                    Err(e) => warn!(interface = %i.name, %ip, "SSDP: cannot join {MULTICAST}: {e}"),
                }
            }
        }
    }
    if interfaces.is_empty() {
        socket.join_multicast_v4(MULTICAST.ip(), &Ipv4Addr::UNSPECIFIED)?;
        interfaces.push(local_toward(SocketAddr::V4(MULTICAST)).unwrap_or(Ipv4Addr::LOCALHOST));
    }
    socket.set_multicast_ttl_v4(2)?;
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket.into())?;
    info!(
        interfaces = %interfaces.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        uuid = %device.uuid,
        "SSDP: announcing the website for the network environment"
    );
    let seed = u64::from(std::process::id()) ^ u64::from(device.boot_id).rotate_left(32);
    let responder = Responder::new(device, interfaces, Instant::now().into_std(), seed);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(socket, responder, stop_rx));
    Ok(SsdpHandle { stop, task })
}

async fn send(socket: &UdpSocket, t: &super::Transmit) {
    if t.to.ip().is_multicast() {
        let _ = socket2::SockRef::from(socket).set_multicast_if_v4(&t.from);
    }
    if let Err(e) = socket.send_to(&t.bytes, t.to).await {
        debug!(to = %t.to, "SSDP: send failed: {e}");
    }
}

async fn run(socket: UdpSocket, mut responder: Responder, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now().into_std();
        for t in responder.poll_announce(now) {
            send(&socket, &t).await;
        }
        while let Some(t) = responder.poll_transmit(now) {
            send(&socket, &t).await;
        }
        let wake = Instant::from_std(responder.poll_timeout()).max(Instant::now())
            + Duration::from_millis(1);
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep_until(wake) => {}
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    let local = local_toward(from).unwrap_or(Ipv4Addr::UNSPECIFIED);
                    let bytes = buf.get(..n).unwrap_or_default();
                    if let Err(why) = responder.handle(Instant::now().into_std(), from, local, true, bytes) {
                        debug!(%from, "SSDP: {why}");
                    }
                }
                Err(e) => {
                    debug!("SSDP: receive failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    for t in responder.byebye() {
        send(&socket, &t).await;
    }
}
