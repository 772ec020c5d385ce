//! The built-in KNXnet/IP tunnelling server (tunnelling v1 over UDP), sans-IO.
//!
//! This file owns the server side of tunnel connections (KNX 03.08.02, 03.08.04), so that
//! visualisations, test tools and later ETS reach the gateway's objects over IP:
//!
//! * SEARCH_REQUEST and DESCRIPTION_REQUEST are answered with the device info DIB (medium
//!   TP1, the gateway's individual address and programming mode as the gateway last told
//!   them ([`Link::set_own_device`]), friendly name [`FRIENDLY_NAME`], MAC zero) and
//!   the supported service families core, device management and tunnelling (version 1);
//!   SEARCH_REQUESTs sent to the discovery multicast address 224.0.23.12:3671 (ETS, xknx's
//!   `GatewayScanner`) arrive through [`Protocol::handle_discovery_datagram`], where anything
//!   else (ROUTING_INDICATIONs of KNX IP routers, SEARCH_REQUEST_EXTENDED of core v2
//!   clients, which also send the plain request) is ignored without a warning;
//! * the control endpoint (HPAI) in SEARCH_RESPONSE and CONNECT_RESPONSE, and in the
//!   DISCONNECT_REQUEST of a tunnel, is the address the server is bound to; bound to 0.0.0.0
//!   (every interface), it is the address the request arrived at, so that a client on each
//!   of the gateway's networks is given the gateway's address on that network;
//! * up to [`MAX_TUNNELS`] tunnel connections (link layer), each with its own channel id,
//!   individual address (the gateway's address with device +1, +2, … skipping its own),
//!   sequence counters and ACKs; a connection without a CONNECTIONSTATE_REQUEST for
//!   [`HEARTBEAT_TIMEOUT`] is dropped, and so is one that does not acknowledge a request
//!   and its repetition;
//! * the server behaves like a line: an L_Data.req from a tunnel is confirmed to that tunnel
//!   with L_Data.con, sent as L_Data.ind to every other tunnel and delivered to the gateway as
//!   [`LinkEvent::Frame`]; a frame from the gateway goes as L_Data.ind to every tunnel;
//! * malformed datagrams and cEMI frames are dropped with one warning each;
//! * requests are bound to their tunnel's owner: CONNECTIONSTATE and DISCONNECT requests for a
//!   channel are served only from that tunnel's control endpoint, TUNNELLING requests and
//!   ACKs only from its data endpoint; anything else is dropped and counted
//!   ([`TunnelServer::refused`]), so nobody can close, keep alive or inject into someone
//!   else's tunnel;
//! * every HPAI in a request must be the sender's own address (any port) or 0.0.0.0:0 (route
//!   back, NAT): answers go only to whoever asked, never to a third address, and a multicast
//!   or broadcast endpoint is refused;
//! * the answers a source can obtain without a tunnel (SEARCH, DESCRIPTION, CONNECT) are
//!   rate-limited per source address ([`ANSWER_BURST`], [`ANSWER_RATE`]).
//!
//! Device-management connections (CRI connection type 0x03, KNX 03.08.03) are accepted as
//! well, counted against [`MAX_TUNNELS`] and bound to their owner like tunnels: cEMI local
//! device management arrives in DEVICE_CONFIGURATION_REQUESTs (same connection header and
//! sequence rule as tunnelling, `accept_sequence`), is acknowledged with
//! DEVICE_CONFIGURATION_ACK, and the answer goes back in the server's own
//! DEVICE_CONFIGURATION_REQUEST, which the client acknowledges (repeated once like a tunnel
//! frame). Served: M_PropRead.req for the device object (type 0, instance 1), answered as
//! M_PropRead.con from the same values the device stack reads
//! ([`crate::knx::device::device_object_value`], identity and programming mode as the gateway
//! last told them), and for the KNXnet/IP parameter object (type 11,
//! [`crate::knx::device::ip`], the IP settings as the gateway last told them,
//! [`Link::set_ip_parameters`]); any other object or property gets a negative .con (void
//! DP), a start index or count outside the property's elements an index range error (start
//! index 0 with count 1 reads the number of elements). M_PropWrite.req is handed to
//! the gateway as [`LinkEvent::PropertyWrite`]: the device stack writes it as it writes an
//! A_PropertyValue_Write (same property table, same events: programming mode, a completed
//! download) and its answer comes back through [`Link::confirm_property_write`], which
//! sends the M_PropWrite.con. M_Reset.req is acknowledged and ignored (the gateway does not
//! restart for a KNXnet/IP client); other message codes are acknowledged and dropped with a
//! warning.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{
    Link, LinkEvent, LinkState, Protocol, Transmit, accept_sequence, endpoint_or, own_indication,
    parse_datagram,
};
use crate::knx::address::IndividualAddress;
use crate::knx::device::ip::{IpParameters, knxip_parameter_elements};
use crate::knx::device::properties::{KNXIP_PARAMETER_TYPE, knxip_find};
use crate::knx::device::{Identity, device_object_value};
use crate::knx::wire::cemi::{Cemi, LData, LDataService, MessageCode, PropError, PropFrame};
use crate::knx::wire::knxip::{
    Crd, Cri, DeviceDescription, DeviceInfo, HostProtocol, Hpai, KnxIpFrame, Medium, ServiceFamily,
    ServiceFamilyId, Status, TunnelLayer,
};

/// The friendly name in the device info DIB.
pub const FRIENDLY_NAME: &str = "knx-echarge";
/// Most tunnel connections at once.
pub const MAX_TUNNELS: usize = 8;
/// A connection without heartbeat for this long is dropped (03.08.02: 120 s).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(120);
/// Answers to SEARCH, DESCRIPTION and CONNECT requests one source address may have at once.
pub const ANSWER_BURST: u32 = 10;
/// How fast a source's answer budget refills (answers per second).
pub const ANSWER_RATE: u32 = 5;
/// Sources whose answer budget is tracked at most (the oldest is forgotten first).
const TRACKED_SOURCES: usize = 256;
/// Wait for a TUNNELLING_ACK from a client.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames queued per tunnel; beyond this the oldest is dropped with a warning.
pub const MAX_QUEUE: usize = 256;

#[derive(Debug)]
struct Outstanding {
    sequence: u8,
    payload: Vec<u8>,
    deadline: Instant,
    repeated: bool,
}

/// What a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A link-layer tunnel (TUNNELLING_REQUEST with L_Data).
    Tunnel,
    /// A device-management connection (DEVICE_CONFIGURATION_REQUEST with M_* frames).
    Management,
}

#[derive(Debug)]
struct Tunnel {
    kind: Kind,
    /// The tunnel's individual address (the gateway's own for a management connection).
    address: IndividualAddress,
    /// Our control endpoint as told in the CONNECT_RESPONSE (named again when we disconnect).
    endpoint: Hpai,
    control: SocketAddr,
    data: SocketAddr,
    send_seq: u8,
    recv_seq: u8,
    outstanding: Option<Outstanding>,
    queue: VecDeque<Cemi>,
    heartbeat_deadline: Instant,
}

impl Tunnel {
    /// A connection just opened: sequence numbers at 0, nothing outstanding, the heartbeat
    /// deadline running from `now`.
    fn new(
        kind: Kind,
        address: IndividualAddress,
        endpoint: Hpai,
        control: SocketAddr,
        data: SocketAddr,
        now: Instant,
    ) -> Self {
        Self {
            kind,
            address,
            endpoint,
            control,
            data,
            send_seq: 0,
            recv_seq: 0,
            outstanding: None,
            queue: VecDeque::new(),
            heartbeat_deadline: now + HEARTBEAT_TIMEOUT,
        }
    }
}

/// The tunnelling server state machine.
#[derive(Debug)]
pub struct TunnelServer {
    own: IndividualAddress,
    /// The device's programming mode (device info DIB, PID 54).
    programming_mode: bool,
    /// The device object's identity (M_PropRead on management connections).
    identity: Identity,
    /// The KNXnet/IP parameter object's values (M_PropRead of object type 11).
    ip: IpParameters,
    local: SocketAddrV4,
    tunnels: BTreeMap<u8, Tunnel>,
    last_channel: u8,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LinkEvent>,
    closed: bool,
    /// Answer budget per source address: tokens and when they were last refilled.
    budgets: BTreeMap<std::net::IpAddr, (u32, Instant)>,
    refused: u64,
}

/// Whether an HPAI in a request from `from` may be used: the sender's own address (any
/// port), or 0.0.0.0:0 (route back to the sender). Never another host, multicast or
/// broadcast.
fn hpai_ok(hpai: Hpai, from: SocketAddr) -> bool {
    if hpai.address.is_unspecified() {
        return matches!(from, SocketAddr::V4(_));
    }
    from.ip() == std::net::IpAddr::V4(hpai.address)
}

impl TunnelServer {
    /// A server for the gateway with individual address `own`, listening on `local` (named
    /// in HPAIs; for an unspecified address the HPAIs name the address each request arrived
    /// at, see [`Protocol::handle_datagram_at`], or 0.0.0.0:0, "use the sender's", where it
    /// is not known).
    pub fn new(own: IndividualAddress, local: SocketAddrV4) -> Self {
        Self {
            own,
            programming_mode: false,
            identity: Identity::default(),
            // Until the gateway tells the network state: the bound address, if one.
            ip: IpParameters {
                current_address: *local.ip(),
                ..IpParameters::default()
            },
            local,
            tunnels: BTreeMap::new(),
            last_channel: 0,
            transmits: VecDeque::new(),
            events: VecDeque::from([LinkEvent::State(LinkState::Connected)]),
            closed: false,
            budgets: BTreeMap::new(),
            refused: 0,
        }
    }

    /// The open tunnels: channel id and individual address.
    pub fn tunnels(&self) -> Vec<(u8, IndividualAddress)> {
        self.tunnels
            .iter()
            .filter(|(_, t)| t.kind == Kind::Tunnel)
            .map(|(ch, t)| (*ch, t.address))
            .collect()
    }

    /// The open device-management connections' channel ids.
    pub fn management_connections(&self) -> Vec<u8> {
        self.tunnels
            .iter()
            .filter(|(_, t)| t.kind == Kind::Management)
            .map(|(ch, _)| *ch)
            .collect()
    }

    /// The channels of link-layer tunnels.
    fn tunnel_channels(&self) -> Vec<u8> {
        self.tunnels
            .iter()
            .filter(|(_, t)| t.kind == Kind::Tunnel)
            .map(|(ch, _)| *ch)
            .collect()
    }

    /// The individual addresses tunnels get, in order: own device +1, +2, … (skipping the
    /// gateway's own address and device 0).
    pub fn tunnel_addresses(&self) -> impl Iterator<Item = IndividualAddress> + '_ {
        let base = self.own.raw() & 0xFF00;
        let device = self.own.device();
        (1..=u8::MAX)
            .map(move |k| IndividualAddress::from_raw(base | u16::from(device.wrapping_add(k))))
            .filter(move |a| *a != self.own && a.device() != 0)
            .take(MAX_TUNNELS)
    }

    /// Our control endpoint in answers to a datagram that arrived at `local`: the address we
    /// are bound to; bound to 0.0.0.0, the arrival address (a client on one network must not
    /// be told the gateway's address on another), else 0.0.0.0:0.
    fn endpoint(&self, local: Option<Ipv4Addr>) -> Hpai {
        let bound = Some(*self.local.ip()).filter(|ip| !ip.is_unspecified());
        let arrival =
            local.filter(|ip| !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast());
        match bound.or(arrival) {
            Some(ip) => Hpai::udp(ip, self.local.port()),
            None => Hpai::unspecified(HostProtocol::Udp),
        }
    }

    /// The device description of SEARCH_RESPONSE and DESCRIPTION_RESPONSE.
    pub fn description(&self) -> DeviceDescription {
        let friendly_name = DeviceInfo::encode_name(FRIENDLY_NAME).unwrap_or([0; 30]);
        let family = |family| ServiceFamily { family, version: 1 };
        DeviceDescription {
            device_info: DeviceInfo {
                medium: Medium::Tp1,
                // Bit 0 of the device status is programming mode (KNX 03.08.02, device
                // information DIB; xknx 4.0.0 `knxip/dib.py` reads it so).
                device_status: u8::from(self.programming_mode),
                individual_address: self.own,
                project_installation_id: 0,
                serial_number: [0; 6],
                multicast_address: Ipv4Addr::UNSPECIFIED,
                mac_address: [0; 6],
                friendly_name,
            },
            service_families: vec![
                family(ServiceFamilyId::Core),
                family(ServiceFamilyId::DeviceManagement),
                family(ServiceFamilyId::Tunnelling),
            ],
            other_dibs: Vec::new(),
        }
    }

    /// Requests dropped because they came from someone else than the tunnel's owner, named a
    /// foreign or multicast endpoint, or exceeded the answer rate.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    fn refuse(&mut self, from: SocketAddr, what: &str) {
        self.refused += 1;
        tracing::warn!(%from, refused = self.refused, "{what}: dropped");
    }

    /// Takes one answer from `from`'s budget; false when it is used up.
    fn answer_allowed(&mut self, now: Instant, from: SocketAddr) -> bool {
        let ip = from.ip();
        if !self.budgets.contains_key(&ip) && self.budgets.len() >= TRACKED_SOURCES {
            let oldest = self
                .budgets
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                self.budgets.remove(&oldest);
            }
        }
        let (tokens, at) = self.budgets.entry(ip).or_insert((ANSWER_BURST, now));
        let elapsed = now.saturating_duration_since(*at);
        let refill =
            u32::try_from(elapsed.as_millis() * u128::from(ANSWER_RATE) / 1000).unwrap_or(u32::MAX);
        if refill > 0 {
            *tokens = tokens.saturating_add(refill).min(ANSWER_BURST);
            *at = now;
        }
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }

    fn send(&mut self, destination: SocketAddr, frame: &KnxIpFrame) {
        match frame.to_bytes() {
            Ok(payload) => self.transmits.push_back(Transmit {
                destination,
                payload,
            }),
            Err(e) => tracing::warn!("cannot encode {}: {e}", frame.service_type()),
        }
    }

    fn free_channel(&mut self) -> Option<u8> {
        for _ in 0..255 {
            self.last_channel = self.last_channel.checked_add(1).unwrap_or(1);
            if !self.tunnels.contains_key(&self.last_channel) {
                return Some(self.last_channel);
            }
        }
        None
    }

    fn connect_error(&mut self, to: SocketAddr, status: Status) {
        tracing::warn!(client = %to, "CONNECT_REQUEST refused: {status}");
        let frame = KnxIpFrame::ConnectResponse {
            channel_id: 0,
            status,
            endpoint: None,
        };
        self.send(to, &frame);
    }

    fn on_connect_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        endpoint: Hpai,
        control: Hpai,
        data: Hpai,
        cri: &Cri,
    ) {
        if !hpai_ok(control, from) || !hpai_ok(data, from) {
            return self.refuse(from, "CONNECT_REQUEST naming another host's endpoint");
        }
        let control_addr = endpoint_or(control.address, control.port, from);
        if control.protocol != HostProtocol::Udp || data.protocol != HostProtocol::Udp {
            return self.connect_error(control_addr, Status::HostProtocolType);
        }
        let requested = match cri {
            Cri::Tunnel {
                layer: TunnelLayer::LinkLayer,
                individual_address,
            } => Some(*individual_address),
            Cri::Tunnel { .. } => return self.connect_error(control_addr, Status::TunnellingLayer),
            Cri::DeviceManagement => None,
            Cri::Other { .. } => {
                return self.connect_error(control_addr, Status::ConnectionType);
            }
        };
        if self.tunnels.len() >= MAX_TUNNELS {
            return self.connect_error(control_addr, Status::NoMoreConnections);
        }
        let Some(requested) = requested else {
            return self.open_management(now, from, endpoint, control_addr, data);
        };
        let in_use: Vec<IndividualAddress> = self
            .tunnels
            .values()
            .filter(|t| t.kind == Kind::Tunnel)
            .map(|t| t.address)
            .collect();
        let address = match requested {
            Some(wanted) if !self.tunnel_addresses().any(|a| a == wanted) => {
                return self.connect_error(control_addr, Status::NoTunnellingAddress);
            }
            Some(wanted) if in_use.contains(&wanted) => {
                return self.connect_error(control_addr, Status::ConnectionInUse);
            }
            Some(wanted) => Some(wanted),
            None => self.tunnel_addresses().find(|a| !in_use.contains(a)),
        };
        let (Some(address), Some(channel)) = (address, self.free_channel()) else {
            return self.connect_error(control_addr, Status::NoMoreConnections);
        };
        let data_addr = endpoint_or(data.address, data.port, from);
        tracing::info!(
            channel,
            %address,
            control = %control_addr,
            data = %data_addr,
            "tunnel connection opened"
        );
        let tunnel = Tunnel::new(
            Kind::Tunnel,
            address,
            endpoint,
            control_addr,
            data_addr,
            now,
        );
        let crd = Crd::Tunnel {
            individual_address: address,
        };
        self.connected(channel, tunnel, crd);
    }

    /// Keeps a connection just opened and answers its CONNECT_REQUEST with `crd`.
    fn connected(&mut self, channel: u8, tunnel: Tunnel, crd: Crd) {
        let (endpoint, control) = (tunnel.endpoint, tunnel.control);
        self.tunnels.insert(channel, tunnel);
        let response = KnxIpFrame::ConnectResponse {
            channel_id: channel,
            status: Status::NoError,
            endpoint: Some((endpoint, crd)),
        };
        self.send(control, &response);
    }

    /// Opens a device-management connection (the free slot was checked).
    fn open_management(
        &mut self,
        now: Instant,
        from: SocketAddr,
        endpoint: Hpai,
        control_addr: SocketAddr,
        data: Hpai,
    ) {
        let Some(channel) = self.free_channel() else {
            return self.connect_error(control_addr, Status::NoMoreConnections);
        };
        let data_addr = endpoint_or(data.address, data.port, from);
        tracing::info!(
            channel,
            control = %control_addr,
            data = %data_addr,
            "device-management connection opened"
        );
        let tunnel = Tunnel::new(
            Kind::Management,
            self.own,
            endpoint,
            control_addr,
            data_addr,
            now,
        );
        self.connected(channel, tunnel, Crd::DeviceManagement);
    }

    /// Drops a tunnel and tells its client.
    fn drop_tunnel(&mut self, channel: u8, reason: &str) {
        if let Some(tunnel) = self.tunnels.remove(&channel) {
            tracing::warn!(channel, address = %tunnel.address, "tunnel connection dropped: {reason}");
            let frame = KnxIpFrame::DisconnectRequest {
                channel_id: channel,
                control_endpoint: tunnel.endpoint,
            };
            self.send(tunnel.control, &frame);
        }
    }

    fn enqueue(&mut self, channel: u8, frame: Cemi, now: Instant) {
        if let Some(tunnel) = self.tunnels.get_mut(&channel) {
            if tunnel.queue.len() >= MAX_QUEUE {
                if let Some(old) = tunnel.queue.pop_front() {
                    tracing::warn!(channel, "tunnel queue full; dropped {old}");
                }
            }
            tunnel.queue.push_back(frame);
        }
        self.pump(channel, now);
    }

    /// Sends the next queued frame of a tunnel if none waits for its ACK.
    fn pump(&mut self, channel: u8, now: Instant) {
        let Some(tunnel) = self.tunnels.get_mut(&channel) else {
            return;
        };
        if tunnel.outstanding.is_some() {
            return;
        }
        while let Some(cemi) = tunnel.queue.pop_front() {
            let request = match tunnel.kind {
                Kind::Tunnel => KnxIpFrame::TunnellingRequest {
                    channel_id: channel,
                    sequence: tunnel.send_seq,
                    cemi,
                },
                Kind::Management => KnxIpFrame::DeviceConfigurationRequest {
                    channel_id: channel,
                    sequence: tunnel.send_seq,
                    cemi,
                },
            };
            match request.to_bytes() {
                Ok(payload) => {
                    tunnel.outstanding = Some(Outstanding {
                        sequence: tunnel.send_seq,
                        payload: payload.clone(),
                        deadline: now + ACK_TIMEOUT,
                        repeated: false,
                    });
                    self.transmits.push_back(Transmit {
                        destination: tunnel.data,
                        payload,
                    });
                    return;
                }
                Err(e) => tracing::warn!(channel, "cannot encode a frame for the tunnel: {e}"),
            }
        }
    }

    fn on_tunnelling_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        channel: u8,
        sequence: u8,
        cemi: Cemi,
    ) {
        let Some(tunnel) = self.tunnels.get_mut(&channel) else {
            return self.refuse(from, "TUNNELLING_REQUEST for an unknown channel");
        };
        if tunnel.data != from {
            return self.refuse(from, "TUNNELLING_REQUEST from outside the tunnel");
        }
        if tunnel.kind != Kind::Tunnel {
            return self.refuse(from, "TUNNELLING_REQUEST on a device-management connection");
        }
        let Some(accepted) = accept_sequence(&mut tunnel.recv_seq, channel, sequence) else {
            return;
        };
        let data = tunnel.data;
        let address = tunnel.address;
        self.send(data, &accepted.ack);
        if !accepted.deliver {
            return;
        }
        let frame = match cemi {
            Cemi::LData(frame) if frame.service == LDataService::Req => frame,
            other => {
                tracing::warn!(
                    channel,
                    "only L_Data.req is served on a tunnel; dropped {other}"
                );
                return;
            }
        };
        let mut frame = frame;
        if frame.source.raw() == 0 {
            frame.source = address;
        }
        let mut con = frame.clone();
        con.service = LDataService::Con;
        con.confirm_error = false;
        let mut ind = frame;
        ind.service = LDataService::Ind;
        tracing::debug!(channel, "from tunnel: {ind}");
        self.enqueue(channel, Cemi::LData(con), now);
        let others: Vec<u8> = self
            .tunnel_channels()
            .into_iter()
            .filter(|c| *c != channel)
            .collect();
        for other in others {
            self.enqueue(other, Cemi::LData(ind.clone()), now);
        }
        self.events.push_back(LinkEvent::Frame(ind));
    }

    fn on_device_configuration_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        channel: u8,
        sequence: u8,
        cemi: &Cemi,
    ) {
        let Some(connection) = self.tunnels.get_mut(&channel) else {
            return self.refuse(from, "DEVICE_CONFIGURATION_REQUEST for an unknown channel");
        };
        if connection.data != from {
            return self.refuse(
                from,
                "DEVICE_CONFIGURATION_REQUEST from outside the connection",
            );
        }
        if connection.kind != Kind::Management {
            return self.refuse(from, "DEVICE_CONFIGURATION_REQUEST on a tunnel");
        }
        let Some(accepted) = accept_sequence(&mut connection.recv_seq, channel, sequence) else {
            return;
        };
        let data = connection.data;
        self.send(
            data,
            &KnxIpFrame::DeviceConfigurationAck {
                channel_id: channel,
                sequence,
                status: Status::NoError,
            },
        );
        if !accepted.deliver {
            return;
        }
        if let Some(con) = self.management(channel, cemi) {
            self.enqueue(channel, con, now);
        }
    }

    /// Answers one cEMI local device management request (`None`: no answer).
    fn management(&mut self, channel: u8, cemi: &Cemi) -> Option<Cemi> {
        let Cemi::Other { code, body } = cemi else {
            tracing::warn!(
                channel,
                "L_Data on a device-management connection; dropped {cemi}"
            );
            return None;
        };
        let con_code = match code {
            MessageCode::MPropReadReq => MessageCode::MPropReadCon,
            MessageCode::MPropWriteReq => MessageCode::MPropWriteCon,
            MessageCode::MResetReq => {
                tracing::info!(
                    channel,
                    "M_Reset.req acknowledged; the gateway does not restart for it"
                );
                return None;
            }
            other => {
                tracing::warn!(
                    channel,
                    "{other} not served on a device-management connection; dropped"
                );
                return None;
            }
        };
        let request = match PropFrame::parse(body) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(channel, "malformed {code} dropped: {e}");
                return None;
            }
        };
        if *code == MessageCode::MPropWriteReq {
            // The device stack decides and writes; its answer comes back through
            // `confirm_property_write`.
            self.events
                .push_back(LinkEvent::PropertyWrite { channel, request });
            return None;
        }
        let answer = self.property(&request);
        if let Some(error) = answer.as_ref().err() {
            tracing::debug!(
                channel,
                object_type = request.object_type,
                property = request.property_id,
                "{code} answered negatively: {error}"
            );
        }
        let con = answer.unwrap_or_else(|error| request.error(error));
        match con.to_body() {
            Ok(body) => Some(Cemi::Other {
                code: con_code,
                body,
            }),
            Err(e) => {
                tracing::warn!(channel, "cannot encode the {con_code}: {e}");
                None
            }
        }
    }

    /// The positive .con of a property request, or the error of the negative one.
    fn property(&self, request: &PropFrame) -> Result<PropFrame, PropError> {
        // The device object and the KNXnet/IP parameter object, each once (instance 1).
        if request.instance != 1 {
            return Err(PropError::VoidDp);
        }
        let id = request.property_id;
        let elements = match request.object_type {
            0 => vec![
                device_object_value(&self.identity, self.programming_mode, 0, id)
                    .ok_or(PropError::VoidDp)?,
            ],
            KNXIP_PARAMETER_TYPE => {
                knxip_find(id).ok_or(PropError::VoidDp)?;
                knxip_parameter_elements(&self.ip, self.own, FRIENDLY_NAME, id)
                    .ok_or(PropError::VoidDp)?
            }
            _ => return Err(PropError::VoidDp),
        };
        let start = usize::from(request.start_index);
        let count = usize::from(request.count);
        let data = match (start, count) {
            // Start index 0 reads the current number of elements.
            (0, 1) => u16::try_from(elements.len())
                .map_err(|_| PropError::Unspecified)?
                .to_be_bytes()
                .to_vec(),
            (1.., 1..) => elements
                .get(start - 1..start - 1 + count)
                .ok_or(PropError::IndexRange)?
                .concat(),
            _ => return Err(PropError::IndexRange),
        };
        Ok(PropFrame {
            data,
            ..request.clone()
        })
    }

    fn on_tunnelling_ack(
        &mut self,
        now: Instant,
        kind: Kind,
        channel: u8,
        sequence: u8,
        status: Status,
    ) {
        let Some(tunnel) = self.tunnels.get_mut(&channel).filter(|t| t.kind == kind) else {
            tracing::debug!(channel, "ACK for an unknown channel ignored");
            return;
        };
        match &tunnel.outstanding {
            Some(out) if out.sequence == sequence => {}
            _ => {
                tracing::debug!(channel, sequence, "unexpected ACK ignored");
                return;
            }
        }
        if status != Status::NoError {
            tracing::warn!(channel, sequence, "ACK with error {status}");
            self.ack_failed(channel, now);
            return;
        }
        tunnel.outstanding = None;
        tunnel.send_seq = tunnel.send_seq.wrapping_add(1);
        self.pump(channel, now);
    }

    fn ack_failed(&mut self, channel: u8, now: Instant) {
        let Some(tunnel) = self.tunnels.get_mut(&channel) else {
            return;
        };
        let Some(out) = &mut tunnel.outstanding else {
            return;
        };
        if out.repeated {
            self.drop_tunnel(channel, "request not acknowledged twice");
            return;
        }
        out.repeated = true;
        out.deadline = now + ACK_TIMEOUT;
        let transmit = Transmit {
            destination: tunnel.data,
            payload: out.payload.clone(),
        };
        tracing::debug!(channel, "no ACK; repeating once");
        self.transmits.push_back(transmit);
    }
}

impl Protocol for TunnelServer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_datagram_at(now, from, None, data);
    }

    fn handle_datagram_at(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<Ipv4Addr>,
        data: &[u8],
    ) {
        if self.closed {
            return;
        }
        let Some(frame) = parse_datagram(from, data) else {
            return;
        };
        match frame {
            KnxIpFrame::SearchRequest { discovery_endpoint } => {
                if !hpai_ok(discovery_endpoint, from) {
                    return self.refuse(from, "SEARCH_REQUEST for another host");
                }
                if !self.answer_allowed(now, from) {
                    return self.refuse(from, "SEARCH_REQUEST above the answer rate");
                }
                let to = endpoint_or(discovery_endpoint.address, discovery_endpoint.port, from);
                let control_endpoint = self.endpoint(local);
                tracing::debug!(
                    %to,
                    control = %SocketAddrV4::new(control_endpoint.address, control_endpoint.port),
                    "SEARCH_REQUEST answered"
                );
                let response = KnxIpFrame::SearchResponse {
                    control_endpoint,
                    description: self.description(),
                };
                self.send(to, &response);
            }
            KnxIpFrame::DescriptionRequest { control_endpoint } => {
                if !hpai_ok(control_endpoint, from) {
                    return self.refuse(from, "DESCRIPTION_REQUEST for another host");
                }
                if !self.answer_allowed(now, from) {
                    return self.refuse(from, "DESCRIPTION_REQUEST above the answer rate");
                }
                let to = endpoint_or(control_endpoint.address, control_endpoint.port, from);
                tracing::debug!(%to, "DESCRIPTION_REQUEST answered");
                let response = KnxIpFrame::DescriptionResponse(self.description());
                self.send(to, &response);
            }
            KnxIpFrame::ConnectRequest {
                control_endpoint,
                data_endpoint,
                cri,
            } => {
                if !self.answer_allowed(now, from) {
                    return self.refuse(from, "CONNECT_REQUEST above the answer rate");
                }
                let endpoint = self.endpoint(local);
                self.on_connect_request(now, from, endpoint, control_endpoint, data_endpoint, &cri);
            }
            KnxIpFrame::ConnectionStateRequest {
                channel_id,
                control_endpoint,
            } => {
                if !hpai_ok(control_endpoint, from) {
                    return self.refuse(from, "CONNECTIONSTATE_REQUEST naming another host");
                }
                let owner = self.tunnels.get(&channel_id).map(|t| t.control);
                match owner {
                    Some(control) if control == from => {
                        if let Some(tunnel) = self.tunnels.get_mut(&channel_id) {
                            tunnel.heartbeat_deadline = now + HEARTBEAT_TIMEOUT;
                        }
                        self.send(
                            control,
                            &KnxIpFrame::ConnectionStateResponse {
                                channel_id,
                                status: Status::NoError,
                            },
                        );
                    }
                    Some(_) => {
                        self.refuse(from, "CONNECTIONSTATE_REQUEST for someone else's tunnel");
                    }
                    None => {
                        tracing::warn!(%from, channel_id, "CONNECTIONSTATE_REQUEST for an unknown channel");
                        let to = endpoint_or(control_endpoint.address, control_endpoint.port, from);
                        self.send(
                            to,
                            &KnxIpFrame::ConnectionStateResponse {
                                channel_id,
                                status: Status::ConnectionId,
                            },
                        );
                    }
                }
            }
            KnxIpFrame::DisconnectRequest {
                channel_id,
                control_endpoint,
            } => {
                if !hpai_ok(control_endpoint, from) {
                    return self.refuse(from, "DISCONNECT_REQUEST naming another host");
                }
                let owner = self.tunnels.get(&channel_id).map(|t| t.control);
                match owner {
                    Some(control) if control == from => {
                        if let Some(tunnel) = self.tunnels.remove(&channel_id) {
                            tracing::info!(channel_id, address = %tunnel.address, "tunnel connection closed by the client");
                        }
                        self.send(
                            control,
                            &KnxIpFrame::DisconnectResponse {
                                channel_id,
                                status: Status::NoError,
                            },
                        );
                    }
                    Some(_) => {
                        self.refuse(from, "DISCONNECT_REQUEST for someone else's tunnel");
                    }
                    None => {
                        tracing::warn!(%from, channel_id, "DISCONNECT_REQUEST for an unknown channel");
                        let to = endpoint_or(control_endpoint.address, control_endpoint.port, from);
                        self.send(
                            to,
                            &KnxIpFrame::DisconnectResponse {
                                channel_id,
                                status: Status::ConnectionId,
                            },
                        );
                    }
                }
            }
            KnxIpFrame::DisconnectResponse { channel_id, .. } => {
                tracing::debug!(channel_id, "DISCONNECT_RESPONSE");
            }
            KnxIpFrame::TunnellingRequest {
                channel_id,
                sequence,
                cemi,
            } => self.on_tunnelling_request(now, from, channel_id, sequence, cemi),
            KnxIpFrame::TunnellingAck {
                channel_id,
                sequence,
                status,
            } => {
                if self
                    .tunnels
                    .get(&channel_id)
                    .is_some_and(|t| t.data != from)
                {
                    return self.refuse(from, "TUNNELLING_ACK from outside the tunnel");
                }
                self.on_tunnelling_ack(now, Kind::Tunnel, channel_id, sequence, status);
            }
            KnxIpFrame::DeviceConfigurationRequest {
                channel_id,
                sequence,
                cemi,
            } => self.on_device_configuration_request(now, from, channel_id, sequence, &cemi),
            KnxIpFrame::DeviceConfigurationAck {
                channel_id,
                sequence,
                status,
            } => {
                if self
                    .tunnels
                    .get(&channel_id)
                    .is_some_and(|t| t.data != from)
                {
                    return self
                        .refuse(from, "DEVICE_CONFIGURATION_ACK from outside the connection");
                }
                self.on_tunnelling_ack(now, Kind::Management, channel_id, sequence, status);
            }
            // A server on 0.0.0.0:3671 is in the discovery group and hears KNX IP routers.
            routing @ (KnxIpFrame::RoutingIndication(_)
            | KnxIpFrame::RoutingBusy { .. }
            | KnxIpFrame::RoutingLostMessage { .. }) => {
                tracing::trace!(%from, "{} ignored", routing.service_type());
            }
            other => {
                tracing::warn!(%from, "{} not served; dropped", other.service_type());
            }
        }
    }

    fn handle_discovery_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: Option<Ipv4Addr>,
        data: &[u8],
    ) {
        match KnxIpFrame::parse(data) {
            Ok(KnxIpFrame::SearchRequest { .. }) => self.handle_datagram_at(now, from, local, data),
            Ok(other) => {
                tracing::trace!(%from, "{} on the discovery address ignored", other.service_type());
            }
            Err(e) => tracing::trace!(%from, "undecodable datagram on the discovery address: {e}"),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
}

impl Link for TunnelServer {
    /// Reports the device's address and programming mode in the device info DIB (SEARCH and
    /// DESCRIPTION responses); new tunnels get addresses next to the new one.
    fn set_own_device(&mut self, device: super::OwnDevice) {
        if device.own != self.own {
            tracing::info!(own = %device.own, "tunnelling server: new individual address");
        }
        self.own = device.own;
        self.programming_mode = device.programming_mode;
        self.identity = device.identity;
    }

    /// Reports the gateway's IP settings in the KNXnet/IP parameter object.
    fn set_ip_parameters(&mut self, ip: IpParameters) {
        self.ip = ip;
    }

    /// Sends the device stack's M_PropWrite.con on the management connection that asked
    /// (dropped if it has gone in the meantime).
    fn confirm_property_write(&mut self, now: Instant, channel: u8, con: PropFrame) {
        if !self
            .tunnels
            .get(&channel)
            .is_some_and(|t| t.kind == Kind::Management)
        {
            tracing::debug!(channel, "M_PropWrite.con for a closed connection dropped");
            return;
        }
        match con.to_body() {
            Ok(body) => self.enqueue(
                channel,
                Cemi::Other {
                    code: MessageCode::MPropWriteCon,
                    body,
                },
                now,
            ),
            Err(e) => tracing::warn!(channel, "cannot encode the M_PropWrite.con: {e}"),
        }
    }

    fn handle_frame(&mut self, now: Instant, frame: LData) {
        if self.closed {
            return;
        }
        let frame = own_indication(frame, self.own);
        for channel in self.tunnel_channels() {
            self.enqueue(channel, Cemi::LData(frame.clone()), now);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let channels: Vec<u8> = self.tunnels.keys().copied().collect();
        for channel in channels {
            let Some(tunnel) = self.tunnels.get(&channel) else {
                continue;
            };
            if now >= tunnel.heartbeat_deadline {
                self.drop_tunnel(channel, "no heartbeat for 120 s");
                continue;
            }
            if tunnel
                .outstanding
                .as_ref()
                .is_some_and(|o| now >= o.deadline)
            {
                self.ack_failed(channel, now);
            }
        }
    }

    fn close(&mut self, _now: Instant) {
        let channels: Vec<u8> = self.tunnels.keys().copied().collect();
        for channel in channels {
            if let Some(tunnel) = self.tunnels.remove(&channel) {
                tracing::info!(channel, "tunnel connection closed (server shutdown)");
                let frame = KnxIpFrame::DisconnectRequest {
                    channel_id: channel,
                    control_endpoint: tunnel.endpoint,
                };
                self.send(tunnel.control, &frame);
            }
        }
        self.closed = true;
        self.events.push_back(LinkEvent::State(LinkState::Down));
    }

    fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.tunnels
            .values()
            .flat_map(|t| {
                [
                    Some(t.heartbeat_deadline),
                    t.outstanding.as_ref().map(|o| o.deadline),
                ]
            })
            .flatten()
            .min()
    }

    fn wants_frames(&self) -> bool {
        true
    }

    fn is_closed(&self) -> bool {
        self.closed
    }
}

#[cfg(test)]
mod tests;
