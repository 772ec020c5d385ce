//! The KNXnet/IP tunnelling client (tunnelling v1 over UDP, link layer), sans-IO.
//!
//! This file owns the client side of a tunnel connection (KNX 03.08.02 §5.4 and 03.08.04):
//!
//! * CONNECT_REQUEST (tunnel, link layer) with back-off between attempts: 1 s, 2 s, 4 s, then
//!   every 8 s ([`backoff`], [`MAX_BACKOFF`]), so a restored server is reached within 10 s:
//!   at most 8 s to the next attempt plus its round trip;
//! * one sequence counter per direction; an outgoing TUNNELLING_REQUEST waits
//!   [`ACK_TIMEOUT`] for its TUNNELLING_ACK, is repeated once, and then the connection
//!   counts as lost;
//! * incoming TUNNELLING_REQUESTs: the expected number is acknowledged and delivered, the
//!   previous number (a repetition) is acknowledged again and not delivered, others dropped;
//! * L_Data.con: after the ACK the client waits up to [`CON_TIMEOUT`] for the confirmation
//!   before sending the next frame; a positive .con counts as delivered, a negative one is
//!   logged;
//! * CONNECTIONSTATE heartbeat every [`HEARTBEAT_INTERVAL`], [`HEARTBEAT_TIMEOUT`] per try,
//!   [`HEARTBEAT_TRIES`] tries;
//! * DISCONNECT both ways, and reconnecting after any loss.
//!
//! State is reported as [`LinkState`]: `Reconnecting` while trying, `Down` after
//! [`DOWN_AFTER_ATTEMPTS`] failed attempts (still trying), `Connected`.

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{
    Link, LinkEvent, LinkState, Protocol, Transmit, accept_sequence, endpoint_or, parse_datagram,
};
use crate::knx::address::IndividualAddress;
use crate::knx::wire::cemi::{Cemi, LData, LDataService};
use crate::knx::wire::knxip::{Crd, Cri, HostProtocol, Hpai, KnxIpFrame, Status, TunnelLayer};

/// Wait for a TUNNELLING_ACK (03.08.04 §2.6: TUNNELLING_REQUEST_TIMEOUT).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// Wait for the L_Data.con of an acknowledged frame.
pub const CON_TIMEOUT: Duration = Duration::from_secs(3);
/// Interval between CONNECTIONSTATE_REQUESTs.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);
/// Wait for a CONNECTIONSTATE_RESPONSE (03.08.02: CONNECTIONSTATE_REQUEST_TIMEOUT).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// CONNECTIONSTATE_REQUESTs before the connection counts as lost.
pub const HEARTBEAT_TRIES: u8 = 3;
/// Wait for a DISCONNECT_RESPONSE when closing.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest pause between connection attempts. The issue's promise is "reconnects within
/// 10 s of the server coming back": the wait for the next attempt (≤ this) plus the
/// CONNECT round trip must stay below that, so the cap leaves 2 s for the round trip.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Failed connection attempts after which the state is reported as `Down`.
pub const DOWN_AFTER_ATTEMPTS: u32 = 3;
/// Frames kept while not connected or while the server is busy; beyond this the oldest is
/// dropped with a warning.
pub const MAX_QUEUE: usize = 64;

/// Pause after connection attempt number `attempt` (0-based): 1 s, 2 s, 4 s, 8 s, 8 s, …
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(3)).min(MAX_BACKOFF)
}

/// A TUNNELLING_REQUEST waiting for its ACK.
#[derive(Debug)]
struct Outstanding {
    sequence: u8,
    payload: Vec<u8>,
    frame: LData,
    deadline: Instant,
    repeated: bool,
}

#[derive(Debug)]
struct Heartbeat {
    /// When the next CONNECTIONSTATE_REQUEST goes out (if none is waiting).
    next: Instant,
    /// Deadline and tries of the request waiting for its response.
    waiting: Option<(Instant, u8)>,
}

#[derive(Debug)]
struct Connection {
    channel: u8,
    data_endpoint: SocketAddr,
    address: IndividualAddress,
    send_seq: u8,
    recv_seq: u8,
    outstanding: Option<Outstanding>,
    awaiting_con: Option<(LData, Instant)>,
    heartbeat: Heartbeat,
}

#[derive(Debug)]
enum State {
    /// Between connection attempts; the next CONNECT_REQUEST goes out at `next_attempt`.
    Connecting {
        attempts: u32,
        next_attempt: Instant,
    },
    Connected(Box<Connection>),
    /// Closing: DISCONNECT_REQUEST sent, waiting for the response until `deadline`.
    Disconnecting {
        channel: u8,
        deadline: Instant,
    },
    Closed,
}

/// The tunnelling client state machine.
#[derive(Debug)]
pub struct TunnelClient {
    remote: SocketAddrV4,
    local: SocketAddrV4,
    state: State,
    queue: VecDeque<LData>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LinkEvent>,
    reported: Option<LinkState>,
}

impl TunnelClient {
    /// A client for the server whose control endpoint is `remote`, sending from `local`
    /// (named in our HPAIs). The first CONNECT_REQUEST goes out at `now`.
    pub fn new(now: Instant, remote: SocketAddrV4, local: SocketAddrV4) -> Self {
        let mut client = Self {
            remote,
            local,
            state: State::Connecting {
                attempts: 0,
                next_attempt: now,
            },
            queue: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            reported: None,
        };
        client.report(LinkState::Reconnecting);
        client
    }

    /// The link state last reported.
    pub fn state(&self) -> Option<LinkState> {
        self.reported
    }

    /// The channel id and assigned individual address while connected.
    pub fn connection(&self) -> Option<(u8, IndividualAddress)> {
        match &self.state {
            State::Connected(c) => Some((c.channel, c.address)),
            _ => None,
        }
    }

    /// Our endpoint; route-back (0.0.0.0:0) when the socket is not bound to an address.
    fn hpai(&self) -> Hpai {
        if self.local.ip().is_unspecified() {
            Hpai::unspecified(HostProtocol::Udp)
        } else {
            Hpai::udp(*self.local.ip(), self.local.port())
        }
    }

    fn report(&mut self, state: LinkState) {
        if self.reported != Some(state) {
            self.reported = Some(state);
            self.events.push_back(LinkEvent::State(state));
        }
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

    fn control(&self) -> SocketAddr {
        SocketAddr::V4(self.remote)
    }

    fn send_connect_request(&mut self) {
        let frame = KnxIpFrame::ConnectRequest {
            control_endpoint: self.hpai(),
            data_endpoint: self.hpai(),
            cri: Cri::Tunnel {
                layer: TunnelLayer::LinkLayer,
                individual_address: None,
            },
        };
        self.send(self.control(), &frame);
    }

    fn send_disconnect_request(&mut self, channel: u8) {
        let frame = KnxIpFrame::DisconnectRequest {
            channel_id: channel,
            control_endpoint: self.hpai(),
        };
        self.send(self.control(), &frame);
    }

    /// The connection is lost: tell the server (best effort), keep the unacknowledged frame,
    /// and reconnect after the first back-off.
    fn lost(&mut self, now: Instant, reason: &str) {
        let State::Connected(conn) = std::mem::replace(&mut self.state, State::Closed) else {
            return;
        };
        tracing::warn!(
            channel = conn.channel,
            "tunnel connection lost: {reason}; reconnecting"
        );
        self.send_disconnect_request(conn.channel);
        if let Some(out) = conn.outstanding {
            self.queue.push_front(out.frame);
        }
        self.state = State::Connecting {
            attempts: 0,
            next_attempt: now + backoff(0),
        };
        self.report(LinkState::Reconnecting);
    }

    fn enqueue(&mut self, frame: LData) {
        if self.queue.len() >= MAX_QUEUE {
            if let Some(old) = self.queue.pop_front() {
                tracing::warn!("tunnel send queue full; dropped {old}");
            }
        }
        self.queue.push_back(frame);
    }

    /// Sends the next queued frame if the connection is idle.
    fn pump(&mut self, now: Instant) {
        let State::Connected(conn) = &mut self.state else {
            return;
        };
        if conn.outstanding.is_some() || conn.awaiting_con.is_some() {
            return;
        }
        let Some(mut frame) = self.queue.pop_front() else {
            return;
        };
        frame.service = LDataService::Req;
        if frame.source.raw() == 0 {
            frame.source = conn.address;
        }
        let request = KnxIpFrame::TunnellingRequest {
            channel_id: conn.channel,
            sequence: conn.send_seq,
            cemi: Cemi::LData(frame.clone()),
        };
        match request.to_bytes() {
            Ok(payload) => {
                let destination = conn.data_endpoint;
                conn.outstanding = Some(Outstanding {
                    sequence: conn.send_seq,
                    payload: payload.clone(),
                    frame,
                    deadline: now + ACK_TIMEOUT,
                    repeated: false,
                });
                self.transmits.push_back(Transmit {
                    destination,
                    payload,
                });
            }
            Err(e) => tracing::warn!("cannot encode frame {frame}: {e}; dropped"),
        }
    }

    fn on_connect_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        channel: u8,
        status: Status,
        endpoint: Option<&(Hpai, Crd)>,
    ) {
        match &self.state {
            State::Connecting { attempts, .. } => {
                let attempts = *attempts;
                if status != Status::NoError {
                    tracing::warn!("tunnel server refused the connection: {status}");
                    return;
                }
                let Some((hpai, Crd::Tunnel { individual_address })) = endpoint.cloned() else {
                    tracing::warn!("CONNECT_RESPONSE without a tunnel CRD; ignored");
                    return;
                };
                let data_endpoint = endpoint_or(hpai.address, hpai.port, from);
                tracing::info!(
                    channel,
                    address = %individual_address,
                    %data_endpoint,
                    attempts,
                    "tunnel connected"
                );
                self.state = State::Connected(Box::new(Connection {
                    channel,
                    data_endpoint,
                    address: individual_address,
                    send_seq: 0,
                    recv_seq: 0,
                    outstanding: None,
                    awaiting_con: None,
                    heartbeat: Heartbeat {
                        next: now + HEARTBEAT_INTERVAL,
                        waiting: None,
                    },
                }));
                self.report(LinkState::Connected);
                self.pump(now);
            }
            State::Connected(conn) if status == Status::NoError && conn.channel != channel => {
                // A late answer to an earlier attempt: release that channel.
                tracing::debug!(channel, "late CONNECT_RESPONSE; disconnecting that channel");
                self.send_disconnect_request(channel);
            }
            _ => tracing::debug!(channel, "CONNECT_RESPONSE ignored"),
        }
    }

    fn on_tunnelling_request(&mut self, now: Instant, channel: u8, sequence: u8, cemi: Cemi) {
        let State::Connected(conn) = &mut self.state else {
            tracing::debug!(channel, "TUNNELLING_REQUEST while not connected; dropped");
            return;
        };
        if conn.channel != channel {
            // The server still serves an earlier connection of ours (its DISCONNECT was
            // lost while the network was down): release that channel.
            tracing::warn!(
                channel,
                ours = conn.channel,
                "TUNNELLING_REQUEST for a stale channel dropped; disconnecting that channel"
            );
            self.send_disconnect_request(channel);
            return;
        }
        let Some(accepted) = accept_sequence(&mut conn.recv_seq, channel, sequence) else {
            return;
        };
        let destination = conn.data_endpoint;
        self.send(destination, &accepted.ack);
        if !accepted.deliver {
            return;
        }
        let Cemi::LData(frame) = cemi else {
            tracing::debug!("non-L_Data cEMI from the tunnel server ignored: {cemi}");
            return;
        };
        let State::Connected(conn) = &mut self.state else {
            return;
        };
        match frame.service {
            LDataService::Ind => self.events.push_back(LinkEvent::Frame(frame)),
            LDataService::Con => {
                let matches = conn.awaiting_con.as_ref().is_some_and(|(sent, _)| {
                    sent.destination == frame.destination && sent.tpdu == frame.tpdu
                });
                if matches {
                    conn.awaiting_con = None;
                    if frame.confirm_error {
                        tracing::warn!("negative L_Data.con: the bus did not take {frame}");
                    } else {
                        tracing::trace!("delivered: {frame}");
                    }
                    self.pump(now);
                } else {
                    tracing::debug!("unexpected L_Data.con ignored: {frame}");
                }
            }
            LDataService::Req => tracing::debug!("L_Data.req from the server ignored: {frame}"),
        }
    }

    fn on_tunnelling_ack(&mut self, now: Instant, channel: u8, sequence: u8, status: Status) {
        let State::Connected(conn) = &mut self.state else {
            return;
        };
        if conn.channel != channel {
            tracing::debug!(channel, "TUNNELLING_ACK for another channel ignored");
            return;
        }
        let Some(out) = &conn.outstanding else {
            tracing::debug!(sequence, "TUNNELLING_ACK with nothing outstanding ignored");
            return;
        };
        if out.sequence != sequence {
            tracing::debug!(
                sequence,
                expected = out.sequence,
                "TUNNELLING_ACK for another sequence ignored"
            );
            return;
        }
        if status != Status::NoError {
            tracing::warn!(sequence, "TUNNELLING_ACK with error {status}");
            self.ack_failed(now);
            return;
        }
        if let Some(out) = conn.outstanding.take() {
            conn.send_seq = conn.send_seq.wrapping_add(1);
            conn.awaiting_con = Some((out.frame, now + CON_TIMEOUT));
        }
        self.pump(now);
    }

    /// No (or a negative) ACK: repeat once, then the connection is lost.
    fn ack_failed(&mut self, now: Instant) {
        let State::Connected(conn) = &mut self.state else {
            return;
        };
        let Some(out) = &mut conn.outstanding else {
            return;
        };
        if out.repeated {
            self.lost(now, "TUNNELLING_REQUEST not acknowledged twice");
            return;
        }
        tracing::debug!(sequence = out.sequence, "no TUNNELLING_ACK; repeating once");
        out.repeated = true;
        out.deadline = now + ACK_TIMEOUT;
        let transmit = Transmit {
            destination: conn.data_endpoint,
            payload: out.payload.clone(),
        };
        self.transmits.push_back(transmit);
    }

    fn send_heartbeat(&mut self, now: Instant, tries: u8) {
        let State::Connected(conn) = &mut self.state else {
            return;
        };
        conn.heartbeat.waiting = Some((now + HEARTBEAT_TIMEOUT, tries));
        let channel_id = conn.channel;
        let frame = KnxIpFrame::ConnectionStateRequest {
            channel_id,
            control_endpoint: self.hpai(),
        };
        self.send(self.control(), &frame);
    }
}

impl Protocol for TunnelClient {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Some(frame) = parse_datagram(from, data) else {
            return;
        };
        match frame {
            KnxIpFrame::ConnectResponse {
                channel_id,
                status,
                endpoint,
            } => self.on_connect_response(now, from, channel_id, status, endpoint.as_ref()),
            KnxIpFrame::TunnellingRequest {
                channel_id,
                sequence,
                cemi,
            } => self.on_tunnelling_request(now, channel_id, sequence, cemi),
            KnxIpFrame::TunnellingAck {
                channel_id,
                sequence,
                status,
            } => self.on_tunnelling_ack(now, channel_id, sequence, status),
            KnxIpFrame::ConnectionStateResponse { channel_id, status } => {
                let State::Connected(conn) = &mut self.state else {
                    return;
                };
                if conn.channel != channel_id || conn.heartbeat.waiting.is_none() {
                    tracing::debug!(channel_id, "CONNECTIONSTATE_RESPONSE ignored");
                    return;
                }
                if status == Status::NoError {
                    conn.heartbeat.waiting = None;
                    conn.heartbeat.next = now + HEARTBEAT_INTERVAL;
                } else {
                    self.lost(now, &format!("heartbeat answered with {status}"));
                }
            }
            KnxIpFrame::DisconnectRequest {
                channel_id,
                control_endpoint,
            } => {
                let ours = match &self.state {
                    State::Connected(conn) => conn.channel == channel_id,
                    State::Disconnecting { channel, .. } => *channel == channel_id,
                    _ => false,
                };
                if !ours {
                    tracing::debug!(channel_id, "DISCONNECT_REQUEST for another channel ignored");
                    return;
                }
                let to = endpoint_or(control_endpoint.address, control_endpoint.port, from);
                let response = KnxIpFrame::DisconnectResponse {
                    channel_id,
                    status: Status::NoError,
                };
                self.send(to, &response);
                if matches!(self.state, State::Disconnecting { .. }) {
                    self.state = State::Closed;
                    return;
                }
                tracing::warn!(channel_id, "tunnel server disconnected us");
                self.lost(now, "DISCONNECT_REQUEST from the server");
            }
            KnxIpFrame::DisconnectResponse { channel_id, .. } => {
                if let State::Disconnecting { channel, .. } = self.state {
                    if channel == channel_id {
                        tracing::info!(channel, "tunnel disconnected");
                        self.state = State::Closed;
                    }
                }
            }
            other => {
                tracing::debug!(%from, "{} ignored by the tunnel client", other.service_type());
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
}

impl Link for TunnelClient {
    fn handle_frame(&mut self, now: Instant, frame: LData) {
        if matches!(self.state, State::Disconnecting { .. } | State::Closed) {
            tracing::debug!("link closing; frame dropped: {frame}");
            return;
        }
        self.enqueue(frame);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Connecting {
                attempts,
                next_attempt,
            } => {
                if now < *next_attempt {
                    return;
                }
                let n = *attempts;
                *attempts = n.saturating_add(1);
                // The pause before this attempt was backoff(n); the next one is longer.
                *next_attempt = now + backoff(n.saturating_add(1));
                if n >= DOWN_AFTER_ATTEMPTS {
                    self.report(LinkState::Down);
                }
                tracing::debug!(remote = %self.remote, attempt = n + 1, "CONNECT_REQUEST");
                self.send_connect_request();
            }
            State::Connected(conn) => {
                if conn.outstanding.as_ref().is_some_and(|o| now >= o.deadline) {
                    self.ack_failed(now);
                }
                let State::Connected(conn) = &mut self.state else {
                    return;
                };
                if conn.awaiting_con.as_ref().is_some_and(|(_, d)| now >= *d) {
                    if let Some((frame, _)) = conn.awaiting_con.take() {
                        tracing::warn!("no L_Data.con for {frame}");
                    }
                    self.pump(now);
                }
                let State::Connected(conn) = &mut self.state else {
                    return;
                };
                match conn.heartbeat.waiting {
                    Some((deadline, tries)) if now >= deadline => {
                        if tries >= HEARTBEAT_TRIES {
                            self.lost(now, "no CONNECTIONSTATE_RESPONSE");
                        } else {
                            tracing::debug!(tries, "no CONNECTIONSTATE_RESPONSE; asking again");
                            self.send_heartbeat(now, tries + 1);
                        }
                    }
                    None if now >= conn.heartbeat.next => self.send_heartbeat(now, 1),
                    _ => {}
                }
            }
            State::Disconnecting { deadline, .. } => {
                if now >= *deadline {
                    tracing::debug!("no DISCONNECT_RESPONSE; closed anyway");
                    self.state = State::Closed;
                }
            }
            State::Closed => {}
        }
    }

    fn close(&mut self, now: Instant) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Connected(conn) => {
                self.send_disconnect_request(conn.channel);
                self.state = State::Disconnecting {
                    channel: conn.channel,
                    deadline: now + DISCONNECT_TIMEOUT,
                };
            }
            State::Disconnecting { channel, deadline } => {
                self.state = State::Disconnecting { channel, deadline };
            }
            State::Connecting { .. } | State::Closed => {}
        }
        self.report(LinkState::Down);
    }

    fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Connecting { next_attempt, .. } => Some(*next_attempt),
            State::Connected(conn) => [
                conn.outstanding.as_ref().map(|o| o.deadline),
                conn.awaiting_con.as_ref().map(|(_, d)| *d),
                Some(
                    conn.heartbeat
                        .waiting
                        .map_or(conn.heartbeat.next, |(deadline, _)| deadline),
                ),
            ]
            .into_iter()
            .flatten()
            .min(),
            State::Disconnecting { deadline, .. } => Some(*deadline),
            State::Closed => None,
        }
    }

    fn wants_frames(&self) -> bool {
        self.queue.len() < MAX_QUEUE
    }

    fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }
}

#[cfg(test)]
mod tests;
