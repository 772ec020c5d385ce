//! KNXnet/IP routing (multicast, 03.08.05), sans-IO.
//!
//! This file owns the routing rules: frames from the gateway go out as ROUTING_INDICATION to
//! the group (source 0.0.0 replaced by the gateway's address), at most one every
//! [`MIN_GAP`] (50 frames/s, 03.02.06 §2.1); indications from others are delivered as
//! [`LinkEvent::Frame`]; our own indications (source = our address), should the network
//! loop them back, are not; ROUTING_LOST_MESSAGE is logged; ROUTING_BUSY pauses sending
//! for its wait time plus a random 0…N × 50 ms, where N counts the busy frames of the
//! current busy period (more than 10 ms apart) and decays after N × 100 ms by one every
//! 5 ms. The numbers are those of the spec's flow control, as xknx implements it too.

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{Link, LinkEvent, LinkState, Protocol, Transmit, own_indication, parse_datagram};
use crate::knx::address::IndividualAddress;
use crate::knx::wire::cemi::{Cemi, LData, LDataService};
use crate::knx::wire::knxip::KnxIpFrame;

/// Smallest gap between two ROUTING_INDICATIONs we send.
pub const MIN_GAP: Duration = Duration::from_millis(20);
/// Random extension per counted busy frame.
pub const BUSY_RANDOM_STEP: Duration = Duration::from_millis(50);
/// Busy frames closer together than this count once.
pub const BUSY_COOLDOWN: Duration = Duration::from_millis(10);
/// Slow-down period per counted busy frame before the count decays.
pub const BUSY_SLOW_STEP: Duration = Duration::from_millis(100);
/// The count decays by one every this long after the slow-down period.
pub const BUSY_DECAY_STEP: Duration = Duration::from_millis(5);
/// Frames queued while paused; beyond this the oldest is dropped with a warning.
pub const MAX_QUEUE: usize = 256;

/// The routing state machine.
#[derive(Debug)]
pub struct Router {
    own: IndividualAddress,
    group: SocketAddrV4,
    queue: VecDeque<LData>,
    /// No sending before this instant (busy pause or pacing gap).
    paused_until: Option<Instant>,
    /// The current busy pause: when it started and how long the sender asked for.
    busy: Option<(Instant, Duration)>,
    /// Counted busy frames (N) and when the last busy frame came.
    busy_count: u32,
    last_busy: Option<Instant>,
    /// When N starts to decay.
    decay_from: Option<Instant>,
    last_sent: Option<Instant>,
    rng: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LinkEvent>,
    closed: bool,
}

impl Router {
    /// A router for the gateway with address `own` on multicast `group`; `seed` feeds the
    /// back-off jitter.
    pub fn new(own: IndividualAddress, group: SocketAddrV4, seed: u64) -> Self {
        Self {
            own,
            group,
            queue: VecDeque::new(),
            paused_until: None,
            busy: None,
            busy_count: 0,
            last_busy: None,
            decay_from: None,
            last_sent: None,
            rng: seed | 1,
            transmits: VecDeque::new(),
            events: VecDeque::from([LinkEvent::State(LinkState::Connected)]),
            closed: false,
        }
    }

    /// A number in 0..1000 (xorshift64).
    fn random_permille(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x % 1000
    }

    /// The counted busy frames N at `now`, after decay.
    fn busy_count_at(&self, now: Instant) -> u32 {
        match self.decay_from {
            Some(from) if now > from => {
                let steps = now.duration_since(from).as_millis() / BUSY_DECAY_STEP.as_millis();
                let steps = u32::try_from(steps).unwrap_or(u32::MAX);
                self.busy_count.saturating_sub(steps)
            }
            _ => self.busy_count,
        }
    }

    /// Until when sending is paused, if it is.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    fn on_busy(&mut self, now: Instant, wait: Duration) {
        let mut count = self.busy_count_at(now);
        let pausing = self.busy.is_some_and(|(start, w)| now < start + w);
        if pausing {
            if self
                .last_busy
                .is_none_or(|last| now.duration_since(last) > BUSY_COOLDOWN)
            {
                count = count.saturating_add(1);
            }
            self.last_busy = Some(now);
            self.busy_count = count;
            if let Some((start, w)) = self.busy {
                let remaining = (start + w).saturating_duration_since(now);
                if remaining >= wait {
                    tracing::debug!(n = count, "ROUTING_BUSY within the current pause");
                    self.decay_from = self.paused_until.map(|p| p + BUSY_SLOW_STEP * count);
                    return;
                }
            }
        } else {
            self.last_busy = Some(now);
            self.busy_count = count;
            tracing::info!(wait_ms = wait.as_millis(), "ROUTING_BUSY: pausing");
        }
        let jitter =
            BUSY_RANDOM_STEP * count * u32::try_from(self.random_permille()).unwrap_or(0) / 1000;
        let until = now + wait + jitter;
        self.busy = Some((now, wait));
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        self.decay_from = Some(until + BUSY_SLOW_STEP * count);
    }

    fn pump(&mut self, now: Instant) {
        if self.paused_until.is_some_and(|p| now < p) {
            return;
        }
        self.paused_until = None;
        if self.last_sent.is_some_and(|t| now < t + MIN_GAP) {
            return;
        }
        let Some(frame) = self.queue.pop_front() else {
            return;
        };
        match KnxIpFrame::RoutingIndication(Cemi::LData(frame)).to_bytes() {
            Ok(payload) => {
                self.last_sent = Some(now);
                self.transmits.push_back(Transmit {
                    destination: SocketAddr::V4(self.group),
                    payload,
                });
            }
            Err(e) => tracing::warn!("cannot encode a routing indication: {e}; dropped"),
        }
    }
}

impl Protocol for Router {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if self.closed {
            return;
        }
        let Some(frame) = parse_datagram(from, data) else {
            return;
        };
        match frame {
            KnxIpFrame::RoutingIndication(Cemi::LData(mut frame)) => {
                if frame.source == self.own {
                    tracing::debug!(%from, "own routing indication ignored");
                    return;
                }
                if frame.service != LDataService::Ind {
                    tracing::debug!(%from, "routing indication with {:?} taken as L_Data.ind", frame.service);
                    frame.service = LDataService::Ind;
                }
                self.events.push_back(LinkEvent::Frame(frame));
            }
            KnxIpFrame::RoutingIndication(other) => {
                tracing::debug!(%from, "non-L_Data routing indication ignored: {other}");
            }
            KnxIpFrame::RoutingBusy { wait_time_ms, .. } => {
                self.on_busy(now, Duration::from_millis(u64::from(wait_time_ms)));
            }
            KnxIpFrame::RoutingLostMessage {
                device_state,
                lost_messages,
            } => tracing::warn!(%from, lost_messages, device_state, "ROUTING_LOST_MESSAGE"),
            other => tracing::debug!(%from, "{} ignored by routing", other.service_type()),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
}

impl Link for Router {
    fn handle_frame(&mut self, now: Instant, frame: LData) {
        if self.closed {
            return;
        }
        let frame = own_indication(frame, self.own);
        if self.queue.len() >= MAX_QUEUE {
            if let Some(old) = self.queue.pop_front() {
                tracing::warn!("routing send queue full; dropped {old}");
            }
        }
        self.queue.push_back(frame);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.pump(now);
    }

    fn close(&mut self, _now: Instant) {
        if !self.queue.is_empty() {
            tracing::debug!(
                frames = self.queue.len(),
                "routing closed with frames queued"
            );
        }
        self.closed = true;
        self.events.push_back(LinkEvent::State(LinkState::Down));
    }

    fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        let gap = self.last_sent.map(|t| t + MIN_GAP);
        [self.paused_until, gap].into_iter().flatten().max()
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
