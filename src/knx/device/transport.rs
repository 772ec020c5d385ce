//! The device side of the KNX transport layer (KNX 03.03.04 §5): one connection-oriented
//! link at a time, with sequence numbers, T_ACK/T_NAK, the 6 s connection timeout and the
//! 3 s acknowledge timeout with at most 3 repetitions. Sans-IO: TPDUs and `now` in, TPDUs to
//! send (each with its destination) and delivered APDUs out.
//!
//! Rules as thelsing/knx `src/knx/transport_layer.cpp` applies them (connection timeout
//! 6000 ms, acknowledge timeout 3000 ms, 3 repetitions, `transport_layer.h`):
//! * T_Connect from anyone while closed opens the connection; from the partner while open
//!   restarts it (sequence numbers back to 0); from a third device it is refused with
//!   T_Disconnect to that device, and the open connection stays.
//! * T_Data_Connected with the expected sequence number is acknowledged and delivered; the
//!   previous sequence number (a repetition whose T_ACK was lost) is acknowledged again and
//!   not delivered; any other number gets a T_NAK.
//! * Our own T_Data_Connected waits for its T_ACK; a T_NAK or 3 s without answer repeats it
//!   up to 3 times, then the connection is closed with T_Disconnect.
//! * 6 s without a frame on the connection (either way) closes the connection with T_Disconnect.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::knx::address::IndividualAddress;
use crate::knx::wire::apdu::{Apdu, Tpdu};

/// Connection idle timeout (KNX 03.03.04 §5.3; thelsing/knx `transport_layer.h`).
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(6);
/// Time to wait for the T_ACK of our T_Data_Connected.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// Repetitions of an unacknowledged T_Data_Connected before disconnecting.
pub const MAX_REPETITIONS: u8 = 3;

/// What the transport layer hands up or down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportOutput {
    /// Send this TPDU point-to-point to the address.
    Send(IndividualAddress, Tpdu),
    /// An APDU arrived over the connection from the partner.
    Deliver(IndividualAddress, Apdu),
    /// A connection was opened by the partner.
    Opened(IndividualAddress),
    /// The connection was closed (by the partner, a timeout or a protocol error).
    Closed(IndividualAddress),
}

#[derive(Debug, Clone)]
struct Pending {
    apdu: Apdu,
    sent_at: Instant,
    repetitions: u8,
}

#[derive(Debug, Clone)]
struct Connection {
    partner: IndividualAddress,
    /// Sequence number of the next T_Data_Connected we send.
    send_seq: u8,
    /// Sequence number we expect next from the partner.
    recv_seq: u8,
    /// Last frame on the connection in either direction (restarts the connection timeout).
    last_activity: Instant,
    /// Our T_Data_Connected waiting for its T_ACK.
    waiting: Option<Pending>,
    /// APDUs queued behind `waiting`.
    queue: VecDeque<Apdu>,
}

/// The connection-oriented transport layer of one device.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    connection: Option<Connection>,
    out: VecDeque<TransportOutput>,
}

const fn next(seq: u8) -> u8 {
    (seq + 1) & 0x0F
}

impl Transport {
    /// A transport layer with no connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// The partner of the open connection.
    pub fn partner(&self) -> Option<IndividualAddress> {
        self.connection.as_ref().map(|c| c.partner)
    }

    /// Handles a point-to-point TPDU from `source` (connection-oriented ones only; others are
    /// ignored and returned as `false`).
    pub fn handle(&mut self, now: Instant, source: IndividualAddress, tpdu: &Tpdu) -> bool {
        match tpdu {
            Tpdu::Connect => self.on_connect(now, source),
            Tpdu::Disconnect => {
                if self.partner() == Some(source) {
                    self.connection = None;
                    self.out.push_back(TransportOutput::Closed(source));
                }
            }
            Tpdu::ConnectedData { sequence, apdu } => self.on_data(now, source, *sequence, apdu),
            Tpdu::Ack { sequence } => self.on_ack(now, source, *sequence),
            Tpdu::Nak { sequence } => self.on_nak(now, source, *sequence),
            Tpdu::Data(_) | Tpdu::TagGroupData(_) => return false,
        }
        true
    }

    fn on_connect(&mut self, now: Instant, source: IndividualAddress) {
        match &self.connection {
            Some(c) if c.partner != source => {
                // One connection at a time: refuse the second one.
                self.out
                    .push_back(TransportOutput::Send(source, Tpdu::Disconnect));
            }
            _ => {
                self.connection = Some(Connection {
                    partner: source,
                    send_seq: 0,
                    recv_seq: 0,
                    last_activity: now,
                    waiting: None,
                    queue: VecDeque::new(),
                });
                self.out.push_back(TransportOutput::Opened(source));
            }
        }
    }

    fn on_data(&mut self, now: Instant, source: IndividualAddress, seq: u8, apdu: &Apdu) {
        let Some(c) = self.connection.as_mut().filter(|c| c.partner == source) else {
            // Connected data outside a connection: tell the sender it has none.
            self.out
                .push_back(TransportOutput::Send(source, Tpdu::Disconnect));
            return;
        };
        c.last_activity = now;
        if seq == c.recv_seq {
            c.recv_seq = next(seq);
            self.out
                .push_back(TransportOutput::Send(source, Tpdu::Ack { sequence: seq }));
            self.out
                .push_back(TransportOutput::Deliver(source, apdu.clone()));
        } else if next(seq) == c.recv_seq {
            // A repetition: our T_ACK was lost. Acknowledge again, do not deliver twice.
            self.out
                .push_back(TransportOutput::Send(source, Tpdu::Ack { sequence: seq }));
        } else {
            self.out
                .push_back(TransportOutput::Send(source, Tpdu::Nak { sequence: seq }));
        }
    }

    fn on_ack(&mut self, now: Instant, source: IndividualAddress, seq: u8) {
        let Some(c) = self.connection.as_mut().filter(|c| c.partner == source) else {
            return;
        };
        c.last_activity = now;
        if c.waiting.is_some() && seq == c.send_seq {
            c.waiting = None;
            c.send_seq = next(seq);
            self.send_next(now);
        } else {
            self.disconnect();
        }
    }

    fn on_nak(&mut self, now: Instant, source: IndividualAddress, seq: u8) {
        let Some(c) = self.connection.as_mut().filter(|c| c.partner == source) else {
            return;
        };
        c.last_activity = now;
        let repeat = match &mut c.waiting {
            Some(p) if seq == c.send_seq && p.repetitions < MAX_REPETITIONS => {
                p.repetitions += 1;
                p.sent_at = now;
                c.last_activity = now;
                Some(Tpdu::ConnectedData {
                    sequence: c.send_seq,
                    apdu: p.apdu.clone(),
                })
            }
            _ => None,
        };
        match repeat {
            Some(tpdu) => self.out.push_back(TransportOutput::Send(source, tpdu)),
            None => self.disconnect(),
        }
    }

    /// Queues an APDU for the partner of the open connection; dropped without a connection.
    pub fn send(&mut self, now: Instant, apdu: Apdu) -> bool {
        let Some(c) = self.connection.as_mut() else {
            return false;
        };
        c.queue.push_back(apdu);
        self.send_next(now);
        true
    }

    fn send_next(&mut self, now: Instant) {
        let Some(c) = self.connection.as_mut() else {
            return;
        };
        if c.waiting.is_some() {
            return;
        }
        if let Some(apdu) = c.queue.pop_front() {
            let tpdu = Tpdu::ConnectedData {
                sequence: c.send_seq,
                apdu: apdu.clone(),
            };
            c.waiting = Some(Pending {
                apdu,
                sent_at: now,
                repetitions: 0,
            });
            c.last_activity = now;
            self.out.push_back(TransportOutput::Send(c.partner, tpdu));
        }
    }

    /// Closes the connection with T_Disconnect to the partner.
    pub fn disconnect(&mut self) {
        if let Some(c) = self.connection.take() {
            self.out
                .push_back(TransportOutput::Send(c.partner, Tpdu::Disconnect));
            self.out.push_back(TransportOutput::Closed(c.partner));
        }
    }

    /// Drops the connection without a word (the device restarts).
    pub fn drop_connection(&mut self) {
        if let Some(c) = self.connection.take() {
            self.out.push_back(TransportOutput::Closed(c.partner));
        }
    }

    /// When [`Transport::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = self.connection.as_ref()?;
        let idle = c.last_activity + CONNECTION_TIMEOUT;
        Some(match &c.waiting {
            Some(p) => idle.min(p.sent_at + ACK_TIMEOUT),
            None => idle,
        })
    }

    /// Runs the timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(c) = self.connection.as_mut() else {
            return;
        };
        if now >= c.last_activity + CONNECTION_TIMEOUT {
            self.disconnect();
            return;
        }
        let partner = c.partner;
        let seq = c.send_seq;
        let mut give_up = false;
        let mut repeat = None;
        if let Some(p) = c
            .waiting
            .as_mut()
            .filter(|p| now >= p.sent_at + ACK_TIMEOUT)
        {
            if p.repetitions < MAX_REPETITIONS {
                p.repetitions += 1;
                p.sent_at = now;
                c.last_activity = now;
                repeat = Some(Tpdu::ConnectedData {
                    sequence: seq,
                    apdu: p.apdu.clone(),
                });
            } else {
                give_up = true;
            }
        }
        if let Some(tpdu) = repeat {
            self.out.push_back(TransportOutput::Send(partner, tpdu));
        }
        if give_up {
            self.disconnect();
        }
    }

    /// The next output.
    pub fn poll(&mut self) -> Option<TransportOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ia(raw: u16) -> IndividualAddress {
        IndividualAddress::from_raw(raw)
    }

    fn drain(t: &mut Transport) -> Vec<TransportOutput> {
        std::iter::from_fn(|| t.poll()).collect()
    }

    const ETS: u16 = 0x0001;
    const OTHER: u16 = 0x0002;

    fn open(t: &mut Transport, now: Instant) {
        t.handle(now, ia(ETS), &Tpdu::Connect);
        assert_eq!(drain(t), vec![TransportOutput::Opened(ia(ETS))]);
    }

    #[test]
    fn data_is_acked_and_delivered_once() {
        let now = Instant::now();
        let mut t = Transport::new();
        open(&mut t, now);
        let data = Tpdu::ConnectedData {
            sequence: 0,
            apdu: Apdu::Restart,
        };
        t.handle(now, ia(ETS), &data);
        assert_eq!(
            drain(&mut t),
            vec![
                TransportOutput::Send(ia(ETS), Tpdu::Ack { sequence: 0 }),
                TransportOutput::Deliver(ia(ETS), Apdu::Restart),
            ]
        );
        // The repetition (our ACK was lost) is acknowledged again, not delivered again.
        t.handle(now, ia(ETS), &data);
        assert_eq!(
            drain(&mut t),
            vec![TransportOutput::Send(ia(ETS), Tpdu::Ack { sequence: 0 })]
        );
    }

    #[test]
    fn out_of_order_sequence_gets_a_nak() {
        let now = Instant::now();
        let mut t = Transport::new();
        open(&mut t, now);
        t.handle(
            now,
            ia(ETS),
            &Tpdu::ConnectedData {
                sequence: 5,
                apdu: Apdu::Restart,
            },
        );
        assert_eq!(
            drain(&mut t),
            vec![TransportOutput::Send(ia(ETS), Tpdu::Nak { sequence: 5 })]
        );
        assert_eq!(t.partner(), Some(ia(ETS)));
    }

    #[test]
    fn second_connection_is_refused() {
        let now = Instant::now();
        let mut t = Transport::new();
        open(&mut t, now);
        t.handle(now, ia(OTHER), &Tpdu::Connect);
        assert_eq!(
            drain(&mut t),
            vec![TransportOutput::Send(ia(OTHER), Tpdu::Disconnect)]
        );
        assert_eq!(t.partner(), Some(ia(ETS)));
        // Data from the third device is refused too.
        t.handle(
            now,
            ia(OTHER),
            &Tpdu::ConnectedData {
                sequence: 0,
                apdu: Apdu::Restart,
            },
        );
        assert_eq!(
            drain(&mut t),
            vec![TransportOutput::Send(ia(OTHER), Tpdu::Disconnect)]
        );
    }

    #[test]
    fn idle_connection_times_out_after_6_s() {
        let start = Instant::now();
        let mut t = Transport::new();
        open(&mut t, start);
        assert_eq!(t.poll_timeout(), Some(start + CONNECTION_TIMEOUT));
        t.handle_timeout(start + Duration::from_millis(5999));
        assert!(drain(&mut t).is_empty());
        t.handle_timeout(start + CONNECTION_TIMEOUT);
        assert_eq!(
            drain(&mut t),
            vec![
                TransportOutput::Send(ia(ETS), Tpdu::Disconnect),
                TransportOutput::Closed(ia(ETS)),
            ]
        );
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn unacknowledged_data_is_repeated_three_times_then_disconnected() {
        let start = Instant::now();
        let mut t = Transport::new();
        open(&mut t, start);
        let apdu = Apdu::AuthorizeResponse { level: 0 };
        t.send(start, apdu.clone());
        let sent = TransportOutput::Send(
            ia(ETS),
            Tpdu::ConnectedData {
                sequence: 0,
                apdu: apdu.clone(),
            },
        );
        assert_eq!(drain(&mut t), vec![sent.clone()]);
        let mut now = start;
        for _ in 0..MAX_REPETITIONS {
            now += ACK_TIMEOUT;
            assert_eq!(t.poll_timeout(), Some(now));
            t.handle_timeout(now);
            assert_eq!(drain(&mut t), vec![sent.clone()]);
        }
        now += ACK_TIMEOUT;
        t.handle_timeout(now);
        assert_eq!(
            drain(&mut t),
            vec![
                TransportOutput::Send(ia(ETS), Tpdu::Disconnect),
                TransportOutput::Closed(ia(ETS)),
            ]
        );
    }

    #[test]
    fn ack_sends_the_next_queued_apdu_and_nak_repeats() {
        let now = Instant::now();
        let mut t = Transport::new();
        open(&mut t, now);
        t.send(now, Apdu::KeyResponse { level: 1 });
        t.send(now, Apdu::KeyResponse { level: 2 });
        assert_eq!(drain(&mut t).len(), 1);
        t.handle(now, ia(ETS), &Tpdu::Nak { sequence: 0 });
        assert_eq!(
            drain(&mut t),
            vec![TransportOutput::Send(
                ia(ETS),
                Tpdu::ConnectedData {
                    sequence: 0,
                    apdu: Apdu::KeyResponse { level: 1 }
                }
            )]
        );
        t.handle(now, ia(ETS), &Tpdu::Ack { sequence: 0 });
        assert_eq!(
            drain(&mut t),
            vec![TransportOutput::Send(
                ia(ETS),
                Tpdu::ConnectedData {
                    sequence: 1,
                    apdu: Apdu::KeyResponse { level: 2 }
                }
            )]
        );
        // A T_ACK with the wrong number closes the connection.
        t.handle(now, ia(ETS), &Tpdu::Ack { sequence: 7 });
        assert_eq!(
            drain(&mut t),
            vec![
                TransportOutput::Send(ia(ETS), Tpdu::Disconnect),
                TransportOutput::Closed(ia(ETS)),
            ]
        );
    }

    #[test]
    fn sequence_numbers_wrap_at_16() {
        let now = Instant::now();
        let mut t = Transport::new();
        open(&mut t, now);
        for i in 0..40u8 {
            t.handle(
                now,
                ia(ETS),
                &Tpdu::ConnectedData {
                    sequence: i % 16,
                    apdu: Apdu::Restart,
                },
            );
            let out = drain(&mut t);
            assert_eq!(out.len(), 2, "{i}: {out:?}");
        }
    }
}
