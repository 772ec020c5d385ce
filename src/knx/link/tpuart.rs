//! The KNX/TP link through a TP-UART chip (Siemens TP-UART-2, onsemi NCN5120 in TP-UART
//! mode), sans-IO: bytes from the serial line in, bytes to it out, frames and link states to
//! the gateway, one timer.
//!
//! This file owns the host side of the TP-UART protocol (facts and sources in
//! `docs/tpuart.md`); the byte layouts live in [`crate::knx::wire::tpuart`], the serial port
//! in `super::serial`.
//!
//! * **Start and recovery**: U_Reset.req `01`, wait for U_Reset.ind `03` ([`RESET_TIMEOUT`]);
//!   then U_SetAddress `28 hh ll` (the chip acknowledges frames to our individual address
//!   itself) and U_State.req `02`; the first U_State.ind `xxxxx111` makes the link
//!   [`LinkState::Connected`]. Three unanswered resets report [`LinkState::Down`]; the
//!   machine then keeps resetting every [`DOWN_RETRY`].
//! * **Keep-alive**: after [`TpUartOptions::keepalive`] without any byte from the chip,
//!   U_State.req; three unanswered ones (the chip lost bus voltage, or the line is cut) start
//!   a reset ([`LinkState::Reconnecting`]). An unsolicited U_Reset.ind (the chip reset, e.g.
//!   when bus voltage returned) also repeats the set-up; a frame in flight is sent again.
//! * **Receive**: frame bytes are collected until the length in the header is complete. As
//!   soon as the header is in (6 bytes, 7 for extended frames) the host answers with
//!   U_AckInformation `11` for frames it wants acknowledged (group addresses of
//!   [`AckGroups`], broadcast, and our individual address when the chip does not know it);
//!   other frames get no answer, so the chip does not acknowledge them. A frame whose
//!   checksum fails, or whose bytes stop for [`TpUartOptions::inter_byte_timeout`], is not
//!   delivered: its first byte is dropped and the rest is read again for the start of the
//!   next frame caught inside it (frame-boundary recovery); a chip message (`03`, `8B` …)
//!   found there counts only when nothing followed it, as a chip that reset in the middle of
//!   a frame sends nothing after its U_Reset.ind. The
//!   echo of our own frame is not delivered; a repetition (CTRL bit 5 clear) of the frame
//!   delivered last is not delivered twice.
//! * **Transmit**: one frame at a time, highest priority first (system, urgent, normal,
//!   low; first in, first out within one), encoded `80|i byte … 40|i CS`; the chip does the
//!   bus repetitions on NACK, BUSY or missing ACK and answers L_Data.con `8B` / `0B`. On a
//!   negative confirmation the host sends the frame again [`TpUartOptions::host_repeats`]
//!   times after [`REPEAT_PAUSE`], marked as a repetition; then drops it with a warning. No
//!   confirmation within [`CON_TIMEOUT`] counts like a negative one; [`MAX_CON_TIMEOUTS`] in
//!   a row reset the chip.
//! * Bus-monitor mode is never entered.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::{ByteStream, Link, LinkEvent, LinkState};
use crate::knx::address::{GroupAddress, IndividualAddress};
use crate::knx::wire::cemi::{FrameFormat, LData, LDataService, Priority};
use crate::knx::wire::tpuart::{ChipByte, HostRequest, TpFrame, encode_transmit};

/// Wait for U_Reset.ind after U_Reset.req (knxd: 0.5 s).
pub const RESET_TIMEOUT: Duration = Duration::from_millis(500);
/// Resets without answer before the link is reported down.
pub const RESET_ATTEMPTS: u32 = 3;
/// Pause between resets once the link is down.
pub const DOWN_RETRY: Duration = Duration::from_secs(5);
/// Wait for U_State.ind after U_State.req.
pub const STATE_TIMEOUT: Duration = Duration::from_millis(500);
/// Unanswered keep-alive U_State.req before the chip is reset.
pub const KEEPALIVE_ATTEMPTS: u8 = 3;
/// Wait for L_Data.con after the last byte of a frame. The chip's own repetitions of one
/// frame take well under 200 ms on TP1; knxd waits 2 s.
pub const CON_TIMEOUT: Duration = Duration::from_secs(1);
/// Confirmation timeouts in a row after which the chip is reset.
pub const MAX_CON_TIMEOUTS: u8 = 3;
/// Pause before the host repeats a negatively confirmed frame.
pub const REPEAT_PAUSE: Duration = Duration::from_millis(100);
/// Frames queued for the bus; beyond this [`Link::wants_frames`] is false.
pub const MAX_QUEUE: usize = 256;
/// A repetition of the last delivered frame is dropped when it comes within this time.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(1);

/// Which group-addressed frames the host acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AckGroups {
    /// None (broadcast 0/0/0 still is).
    None,
    /// Every group frame (knxd's `--tpuarts-ack-all-group`).
    #[default]
    All,
    /// Those the device listens to.
    Only(HashSet<GroupAddress>),
}

impl AckGroups {
    fn wants(&self, ga: GroupAddress) -> bool {
        ga.raw() == 0
            || match self {
                Self::None => false,
                Self::All => true,
                Self::Only(set) => set.contains(&ga),
            }
    }
}

/// Tunables of the TP-UART link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpUartOptions {
    /// Tell the chip our individual address (U_SetAddress, TP-UART-2) so that it
    /// acknowledges frames to it by itself; otherwise the host does, with U_AckInformation.
    pub set_address: bool,
    /// Group frames the host acknowledges.
    pub ack_groups: AckGroups,
    /// A frame whose next byte does not come within this time is dropped. The chip forwards
    /// bus bytes about every 1.35 ms (13 bit times at 9600 bit/s) and the datasheet's
    /// end-of-frame gap is 2–2.5 ms; a Linux host sees serial bytes late and in bursts, so
    /// the default is far longer (knxd: 1 s).
    pub inter_byte_timeout: Duration,
    /// Silence from the chip after which U_State.req checks that it is there (knxd: 10 s).
    pub keepalive: Duration,
    /// How often the host sends a negatively confirmed frame again.
    pub host_repeats: u8,
}

impl Default for TpUartOptions {
    fn default() -> Self {
        Self {
            set_address: true,
            ack_groups: AckGroups::All,
            inter_byte_timeout: Duration::from_millis(100),
            keepalive: Duration::from_secs(10),
            host_repeats: 1,
        }
    }
}

/// Counters of what the link saw, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TpUartStats {
    /// Frames delivered to the gateway.
    pub received: u64,
    /// Frames positively confirmed.
    pub confirmed: u64,
    /// Negative confirmations (and confirmation timeouts).
    pub negative: u64,
    /// Frames given up after all repeats.
    pub dropped: u64,
    /// Bytes skipped while looking for a frame boundary.
    pub skipped_bytes: u64,
    /// Chip resets seen (U_Reset.ind outside a reset we asked for).
    pub chip_resets: u64,
}

/// Where a received byte comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// From the chip, just now.
    Live,
    /// Read again from a dropped frame; `last` = nothing came after it.
    Replay { last: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// U_Reset.req sent, waiting for U_Reset.ind until `deadline`.
    Resetting {
        attempt: u32,
        deadline: Instant,
    },
    /// Set-up sent, waiting for U_State.ind until `deadline`.
    AwaitState {
        deadline: Instant,
    },
    /// Running; `probe` = unanswered keep-alives and when the last one times out.
    Online {
        probe: Option<(u8, Instant)>,
    },
    Closed,
}

#[derive(Debug, Clone)]
struct InFlight {
    frame: TpFrame,
    bytes: Vec<u8>,
    /// Host sends so far (1 = the first).
    sends: u8,
    /// Waiting for L_Data.con until this instant; `None` while pausing before a repeat.
    con_deadline: Option<Instant>,
    /// Send again at this instant.
    repeat_at: Option<Instant>,
}

/// The TP-UART host state machine.
#[derive(Debug)]
pub struct TpUartLink {
    own: IndividualAddress,
    options: TpUartOptions,
    phase: Phase,
    /// Queues by priority rank (system, urgent, normal, low).
    queues: [VecDeque<TpFrame>; 4],
    in_flight: Option<InFlight>,
    con_timeouts: u8,
    /// Bytes of the frame being received.
    rx: Vec<u8>,
    /// When the last byte of `rx` came.
    rx_last: Option<Instant>,
    /// Bytes to read again after a boundary recovery; no U_AckInformation is sent for them.
    replay: VecDeque<u8>,
    /// The frame being received is our echo / was answered with U_AckInformation.
    rx_echo: bool,
    /// The last frame delivered, for dropping its repetitions.
    last_delivered: Option<(Vec<u8>, Instant)>,
    /// When the chip last sent anything.
    last_chip_byte: Instant,
    last_state_byte: Option<u8>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    reported: Option<LinkState>,
    stats: TpUartStats,
}

/// The bytes of a frame with the repeat flag (CTRL bit 5) normalised, for comparing a frame
/// with its repetitions and echoes.
fn normalised(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    if let Some(ctrl) = v.first_mut() {
        *ctrl |= 0x20;
    }
    // The checksum changes with the flag; leave it out.
    v.pop();
    v
}

impl TpUartLink {
    /// A link for the device `own`, starting at `now` with a reset of the chip.
    pub fn new(now: Instant, own: IndividualAddress, options: TpUartOptions) -> Self {
        let mut link = Self {
            own,
            options,
            phase: Phase::Closed,
            queues: Default::default(),
            in_flight: None,
            con_timeouts: 0,
            rx: Vec::new(),
            rx_last: None,
            replay: VecDeque::new(),
            rx_echo: false,
            last_delivered: None,
            last_chip_byte: now,
            last_state_byte: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            reported: None,
            stats: TpUartStats::default(),
        };
        link.report(LinkState::Reconnecting);
        link.start_reset(now, 1);
        link
    }

    /// The link state last reported.
    pub fn state(&self) -> Option<LinkState> {
        self.reported
    }

    /// What the link counted so far.
    pub fn stats(&self) -> TpUartStats {
        self.stats
    }

    /// Replaces the group frames the host acknowledges (the device's group addresses).
    pub fn set_ack_groups(&mut self, groups: AckGroups) {
        self.options.ack_groups = groups;
    }

    /// Frames waiting to be sent (the one in flight included).
    pub fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum::<usize>() + usize::from(self.in_flight.is_some())
    }

    fn queue_mut(&mut self, priority: Priority) -> &mut VecDeque<TpFrame> {
        let [system, urgent, normal, low] = &mut self.queues;
        match priority {
            Priority::System => system,
            Priority::Urgent => urgent,
            Priority::Normal => normal,
            Priority::Low => low,
        }
    }

    fn requeue_front(&mut self, frame: TpFrame) {
        self.queue_mut(frame.priority).push_front(frame);
    }

    fn report(&mut self, state: LinkState) {
        if self.reported != Some(state) {
            self.reported = Some(state);
            self.events.push_back(LinkEvent::State(state));
        }
    }

    fn send(&mut self, request: HostRequest) {
        self.out.push_back(request.to_bytes());
    }

    fn start_reset(&mut self, now: Instant, attempt: u32) {
        self.rx.clear();
        self.replay.clear();
        self.rx_last = None;
        if let Some(f) = self.in_flight.take() {
            // Sent again once the chip is back.
            self.requeue_front(f.frame);
        }
        self.send(HostRequest::Reset);
        let wait = if attempt > RESET_ATTEMPTS {
            DOWN_RETRY
        } else {
            RESET_TIMEOUT
        };
        self.phase = Phase::Resetting {
            attempt,
            deadline: now + wait,
        };
    }

    fn start_setup(&mut self, now: Instant) {
        if self.options.set_address && self.own.raw() != 0 {
            self.send(HostRequest::SetAddress(self.own));
        }
        self.send(HostRequest::State);
        self.phase = Phase::AwaitState {
            deadline: now + STATE_TIMEOUT,
        };
    }

    /// Reads the bytes of a dropped frame again; `more` = live bytes follow them.
    fn drain_replay(&mut self, now: Instant, more: bool) {
        while let Some(byte) = self.replay.pop_front() {
            let last = self.replay.is_empty() && !more;
            self.on_byte(now, byte, Source::Replay { last });
        }
    }

    /// Drops the first byte of the frame being received and reads the rest again.
    fn resync(&mut self) {
        let mut bytes = std::mem::take(&mut self.rx);
        self.rx_echo = false;
        if bytes.is_empty() {
            return;
        }
        bytes.remove(0);
        self.stats.skipped_bytes += 1;
        for byte in bytes.into_iter().rev() {
            self.replay.push_front(byte);
        }
    }

    /// A partial frame whose bytes stopped is given up (recovered from); `more` = live bytes
    /// follow.
    fn expire_rx(&mut self, now: Instant, more: bool) {
        while !self.rx.is_empty()
            && self
                .rx_last
                .is_some_and(|last| now.duration_since(last) >= self.options.inter_byte_timeout)
        {
            tracing::debug!(bytes = ?self.rx, "TP-UART: frame incomplete, its bytes stopped");
            self.resync();
            self.drain_replay(now, more);
        }
        if self.rx.is_empty() {
            self.rx_last = None;
        }
    }

    fn on_byte(&mut self, now: Instant, byte: u8, source: Source) {
        if !self.rx.is_empty() {
            self.rx.push(byte);
            self.on_frame_byte(now, source == Source::Live);
            return;
        }
        let class = ChipByte::classify(byte);
        let frame_start = matches!(
            class,
            ChipByte::StandardFrameStart(_) | ChipByte::ExtendedFrameStart(_)
        );
        if source == (Source::Replay { last: false }) && !frame_start {
            // A chip message is never followed at once by more bytes that belong to nothing;
            // inside a broken frame such a byte is frame data.
            self.stats.skipped_bytes += 1;
            return;
        }
        match class {
            ChipByte::ResetInd => self.on_reset_ind(now),
            ChipByte::StateInd(state) => self.on_state_ind(now, state),
            ChipByte::DataConfirmPositive => self.on_con(now, true),
            ChipByte::DataConfirmNegative => self.on_con(now, false),
            ChipByte::StandardFrameStart(_) | ChipByte::ExtendedFrameStart(_)
                if matches!(self.phase, Phase::Online { .. }) =>
            {
                self.rx.push(byte);
                self.rx_echo = false;
            }
            other => {
                // L_Poll_Data, ACK characters (bus monitor only), NCN5120 extras, noise.
                tracing::trace!(byte, ?other, "TP-UART: byte ignored");
                self.stats.skipped_bytes += 1;
            }
        }
    }

    fn on_frame_byte(&mut self, now: Instant, live: bool) {
        let extended = self.rx.first().is_some_and(|c| c & 0x80 == 0);
        let header = if extended { 7 } else { 6 };
        if self.rx.len() == header {
            self.on_header(live);
        }
        let Some(total) = TpFrame::expected_len(&self.rx) else {
            return;
        };
        if self.rx.len() < total {
            return;
        }
        match TpFrame::parse(&self.rx) {
            Ok(frame) => {
                let bytes = std::mem::take(&mut self.rx);
                let echo = std::mem::take(&mut self.rx_echo);
                self.rx_last = None;
                self.deliver(now, &frame, &bytes, echo);
            }
            Err(e) => {
                tracing::debug!(bytes = ?self.rx, "TP-UART: bad frame ({e}); looking for the next boundary");
                self.resync();
            }
        }
    }

    /// The header of a frame is in: echo check and U_AckInformation.
    fn on_header(&mut self, live: bool) {
        let header = normalised(&self.rx);
        if let Some(f) = &self.in_flight
            && f.con_deadline.is_some()
            && normalised(&f.bytes).get(..header.len()) == Some(&header[..])
        {
            self.rx_echo = true;
            return;
        }
        if !live {
            return;
        }
        let extended = self.rx.first().is_some_and(|c| c & 0x80 == 0);
        let (type_byte, dst) = if extended {
            (self.rx.get(1), self.rx.get(4..6))
        } else {
            (self.rx.get(5), self.rx.get(3..5))
        };
        let (Some(&type_byte), Some(&[hi, lo])) = (type_byte, dst) else {
            return;
        };
        let raw = u16::from_be_bytes([hi, lo]);
        let addressed = if type_byte & 0x80 != 0 {
            self.options.ack_groups.wants(GroupAddress::from_raw(raw))
        } else {
            raw == self.own.raw() && !(self.options.set_address && self.own.raw() != 0)
        };
        if addressed {
            self.send(HostRequest::AckInformation {
                nack: false,
                busy: false,
                addressed: true,
            });
        }
    }

    fn deliver(&mut self, now: Instant, frame: &TpFrame, bytes: &[u8], echo: bool) {
        if echo {
            tracing::trace!("TP-UART: echo of our frame");
            return;
        }
        let key = normalised(bytes);
        if frame.repeated
            && self.last_delivered.as_ref().is_some_and(|(last, at)| {
                *last == key && now.duration_since(*at) < DUPLICATE_WINDOW
            })
        {
            tracing::debug!(%frame, "TP-UART: repetition of a frame already delivered");
            return;
        }
        self.last_delivered = Some((key, now));
        self.stats.received += 1;
        self.events
            .push_back(LinkEvent::Frame(frame.to_ldata(LDataService::Ind)));
    }

    fn on_reset_ind(&mut self, now: Instant) {
        match self.phase {
            Phase::Resetting { .. } => {
                self.report(LinkState::Reconnecting);
                self.start_setup(now);
            }
            Phase::AwaitState { .. } => self.start_setup(now),
            Phase::Online { .. } => {
                tracing::warn!(
                    "TP-UART chip reset (bus voltage returned, or the chip restarted); setting it up again"
                );
                self.stats.chip_resets += 1;
                if let Some(f) = self.in_flight.take() {
                    self.requeue_front(f.frame);
                }
                self.report(LinkState::Reconnecting);
                self.start_setup(now);
            }
            Phase::Closed => {}
        }
    }

    fn on_state_ind(&mut self, now: Instant, state: u8) {
        if self.last_state_byte != Some(state) {
            if state & 0xF8 != 0 {
                tracing::warn!(
                    state = format_args!("{state:#04x}"),
                    slave_collision = state & 0x80 != 0,
                    receive_error = state & 0x40 != 0,
                    transmit_error = state & 0x20 != 0,
                    protocol_error = state & 0x10 != 0,
                    temperature_warning = state & 0x08 != 0,
                    "TP-UART reports errors"
                );
            }
            self.last_state_byte = Some(state);
        }
        match self.phase {
            Phase::AwaitState { .. } => {
                tracing::info!(own = %self.own, "TP-UART online");
                self.phase = Phase::Online { probe: None };
                self.con_timeouts = 0;
                self.report(LinkState::Connected);
            }
            Phase::Online { .. } => self.phase = Phase::Online { probe: None },
            Phase::Resetting { .. } | Phase::Closed => {}
        }
        let _ = now;
    }

    fn on_con(&mut self, now: Instant, positive: bool) {
        let Some(f) = self.in_flight.as_mut() else {
            tracing::debug!(positive, "TP-UART: L_Data.con without a frame in flight");
            return;
        };
        if f.con_deadline.is_none() {
            tracing::debug!(
                positive,
                "TP-UART: L_Data.con while pausing before a repeat"
            );
            return;
        }
        self.con_timeouts = 0;
        if positive {
            self.stats.confirmed += 1;
            self.in_flight = None;
        } else {
            self.stats.negative += 1;
            self.repeat_or_drop(
                now,
                "negative L_Data.con (NACK, BUSY or no ACK after the chip's repetitions)",
            );
        }
    }

    fn repeat_or_drop(&mut self, now: Instant, why: &str) {
        let Some(f) = self.in_flight.as_mut() else {
            return;
        };
        if f.sends > self.options.host_repeats {
            tracing::warn!(frame = %f.frame, sends = f.sends, "TP frame dropped: {why}");
            self.stats.dropped += 1;
            self.in_flight = None;
        } else {
            tracing::debug!(frame = %f.frame, "TP frame will be repeated: {why}");
            f.con_deadline = None;
            f.repeat_at = Some(now + REPEAT_PAUSE);
        }
    }

    fn try_send(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Online { .. }) {
            return;
        }
        if let Some(f) = &self.in_flight {
            if f.repeat_at.is_some_and(|t| now >= t) {
                let mut frame = f.frame.clone();
                frame.repeated = true;
                let sends = f.sends + 1;
                self.transmit(now, frame, sends);
            }
            return;
        }
        while let Some(frame) = self.queues.iter_mut().find_map(VecDeque::pop_front) {
            if self.transmit(now, frame, 1) {
                return;
            }
        }
    }

    /// Sends `frame`; false when it cannot be encoded (dropped).
    fn transmit(&mut self, now: Instant, frame: TpFrame, sends: u8) -> bool {
        let encoded = frame
            .to_bytes()
            .and_then(|bytes| encode_transmit(&bytes).map(|enc| (bytes, enc)));
        match encoded {
            Ok((bytes, enc)) => {
                self.out.push_back(enc);
                self.in_flight = Some(InFlight {
                    frame,
                    bytes,
                    sends,
                    con_deadline: Some(now + CON_TIMEOUT),
                    repeat_at: None,
                });
                true
            }
            Err(e) => {
                tracing::warn!(%frame, "TP frame cannot be sent: {e}");
                self.stats.dropped += 1;
                self.in_flight = None;
                false
            }
        }
    }
}

impl Link for TpUartLink {
    /// Acknowledges the new group addresses from now on; a new individual address is given
    /// to the chip (U_SetAddress) when it is online, else at the next set-up.
    fn set_own_device(&mut self, device: super::OwnDevice) {
        if let Some(groups) = device.groups {
            self.options.ack_groups = AckGroups::Only(groups.into_iter().collect());
        }
        if device.own != self.own {
            tracing::info!(own = %device.own, "TP-UART: new individual address");
            self.own = device.own;
            if self.options.set_address
                && self.own.raw() != 0
                && matches!(self.phase, Phase::Online { .. })
            {
                self.send(HostRequest::SetAddress(self.own));
            }
        }
    }

    /// The gateway wants `frame` sent (L_Data.req; source 0.0.0 = our address).
    fn handle_frame(&mut self, now: Instant, mut frame: LData) {
        if self.phase == Phase::Closed {
            return;
        }
        if frame.source.raw() == 0 {
            frame.source = self.own;
        }
        let mut tp = TpFrame::from_ldata(&frame);
        // On a request the flag means "repetitions allowed"; a first send is no repetition.
        tp.repeated = false;
        if tp.frame_format == FrameFormat::Standard && tp.tpdu.buffer_len() > 16 {
            tp.frame_format = FrameFormat::Extended;
        }
        if self.queued() >= MAX_QUEUE {
            tracing::warn!(%tp, "TP send queue full; frame dropped");
            self.stats.dropped += 1;
            return;
        }
        self.queue_mut(tp.priority).push_back(tp);
        self.try_send(now);
    }

    /// The time returned by [`Link::poll_timeout`] has come.
    fn handle_timeout(&mut self, now: Instant) {
        self.expire_rx(now, false);
        match self.phase {
            Phase::Resetting { attempt, deadline } if now >= deadline => {
                if attempt >= RESET_ATTEMPTS {
                    if self.reported != Some(LinkState::Down) {
                        tracing::warn!(attempt, "TP-UART does not answer resets; link down");
                    }
                    self.report(LinkState::Down);
                }
                self.start_reset(now, attempt.saturating_add(1));
            }
            Phase::AwaitState { deadline } if now >= deadline => {
                tracing::warn!("TP-UART does not answer U_State.req; resetting it");
                self.report(LinkState::Reconnecting);
                self.start_reset(now, 1);
            }
            Phase::Online { probe } => match probe {
                Some((n, deadline)) if now >= deadline => {
                    if n >= KEEPALIVE_ATTEMPTS {
                        tracing::warn!(
                            "TP-UART silent (bus voltage lost or line cut); resetting it"
                        );
                        self.report(LinkState::Reconnecting);
                        self.start_reset(now, 1);
                    } else {
                        self.send(HostRequest::State);
                        self.phase = Phase::Online {
                            probe: Some((n + 1, now + STATE_TIMEOUT)),
                        };
                    }
                }
                None if now >= self.last_chip_byte + self.options.keepalive => {
                    self.send(HostRequest::State);
                    self.phase = Phase::Online {
                        probe: Some((1, now + STATE_TIMEOUT)),
                    };
                }
                _ => {}
            },
            _ => {}
        }
        if let Some(f) = &self.in_flight
            && f.con_deadline.is_some_and(|t| now >= t)
        {
            self.stats.negative += 1;
            self.con_timeouts = self.con_timeouts.saturating_add(1);
            if self.con_timeouts >= MAX_CON_TIMEOUTS {
                tracing::warn!("TP-UART confirms no frames; resetting it");
                self.con_timeouts = 0;
                self.report(LinkState::Reconnecting);
                self.start_reset(now, 1);
            } else {
                self.repeat_or_drop(now, "no L_Data.con");
            }
        }
        self.try_send(now);
    }

    /// Stops the link; nothing is sent any more.
    fn close(&mut self, _now: Instant) {
        self.phase = Phase::Closed;
        self.in_flight = None;
        self.queues = Default::default();
        self.report(LinkState::Down);
    }

    /// The next event for the gateway.
    fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`Link::handle_timeout`] is due next.
    fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Resetting { deadline, .. }
            | Phase::AwaitState { deadline }
            | Phase::Online {
                probe: Some((_, deadline)),
            } => Some(deadline),
            Phase::Online { probe: None } => Some(self.last_chip_byte + self.options.keepalive),
            Phase::Closed => return None,
        };
        let rx = self
            .rx_last
            .filter(|_| !self.rx.is_empty())
            .map(|t| t + self.options.inter_byte_timeout);
        let flight = self
            .in_flight
            .as_ref()
            .and_then(|f| f.con_deadline.or(f.repeat_at));
        [phase, rx, flight].into_iter().flatten().min()
    }

    /// False while the send queue is full.
    fn wants_frames(&self) -> bool {
        self.queued() < MAX_QUEUE
    }

    /// True once closed.
    fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }
}

impl ByteStream for TpUartLink {
    /// Bytes arrived from the chip at `now`.
    fn handle_bytes(&mut self, now: Instant, data: &[u8]) {
        if self.phase == Phase::Closed || data.is_empty() {
            return;
        }
        self.expire_rx(now, true);
        self.last_chip_byte = now;
        for (i, &byte) in data.iter().enumerate() {
            self.on_byte(now, byte, Source::Live);
            self.drain_replay(now, i + 1 < data.len());
        }
        if !self.rx.is_empty() {
            self.rx_last = Some(now);
        }
        self.try_send(now);
    }

    /// The next bytes for the serial line (one request or one frame).
    fn poll_write(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests;
