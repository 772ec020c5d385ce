//! What the DLM learns about the vehicle at one charging point while it charges (issue 15,
//! build 1 and 2): how long it takes to follow a new current (its reaction delay, IEC 61851-1
//! allows up to 5 s), and its real ceiling when it draws less than it is offered (an on-board
//! charger smaller than the box, a battery that tapers or is full).
//!
//! A [`VehicleModel`] is fed every setpoint change ([`VehicleModel::commanded`]) and every poll
//! ([`VehicleModel::polled`]) at injected instants. It is forgotten when the vehicle leaves.
//!
//! * **Reaction**: after a change from one non-zero current to another, the first poll at
//!   which the draw has gone half the way to the new current gives a sample (time since the
//!   change). The model follows a slower sample at once and a faster one slowly (1/8 per
//!   sample), so it errs towards slow. Until the first sample it is 2 s (what the DLM
//!   assumed before); it is never taken below 1 s (polls come about every second). A sample
//!   counts only when the vehicle drew the old current at its last two polls.
//! * **Ceiling**: a vehicle that draws, on its most loaded phase, at least 1 A less than it
//!   is offered, for [`SETTLE`] after it had time to follow, has a ceiling of what it draws.
//!   The DLM then offers it its ceiling + 1 A and gives the rest to others. When it draws
//!   within 1 A of its offer again it asks for more and the ceiling goes; every [`PROBE`]
//!   the ceiling is dropped anyway, so a vehicle that could take more again gets the chance
//!   (the upward probe).

use std::time::{Duration, Instant};

use crate::units::Current;

/// The reaction assumed before one is measured (what the DLM assumed before issue 15; the
/// model takes a slower sample at once, IEC 61851-1 allows up to 5 s).
pub const DEFAULT_REACTION: Duration = Duration::from_secs(2);

/// The DLM never assumes a vehicle follows faster than this (polls come about every second,
/// so a faster sample is not resolved).
pub const MIN_REACTION: Duration = Duration::from_millis(500);

/// Reactions longer than this are not reactions (the vehicle paused, or could not follow).
const MAX_REACTION: Duration = Duration::from_secs(10);

/// How long a vehicle must draw less than it is offered before the difference goes to others.
pub const SETTLE: Duration = Duration::from_secs(30);

/// How often a ceiling is dropped so the vehicle can show that it takes more again.
pub const PROBE: Duration = Duration::from_secs(600);

/// The margin below the offer that counts as drawing less, and the headroom above a ceiling.
pub const MARGIN: Current = Current::from_milliamps(1_000);

/// A setpoint change waiting to be seen followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    at: Instant,
    from: Current,
    to: Current,
}

/// What the DLM knows about one vehicle (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VehicleModel {
    reaction: Option<Duration>,
    change: Option<Change>,
    /// When the current offered last changed.
    offered_at: Option<Instant>,
    ceiling: Option<Current>,
    ceiling_at: Option<Instant>,
    below_since: Option<Instant>,
    /// What it drew at the last two polls.
    drawn: Option<Current>,
    drawn_before: Option<Current>,
}

impl VehicleModel {
    /// The reaction delay learned so far (the default before the first sample), never less
    /// than [`MIN_REACTION`].
    pub fn reaction(&self) -> Duration {
        self.reaction.unwrap_or(DEFAULT_REACTION).max(MIN_REACTION)
    }

    /// Whether a reaction was measured.
    pub fn reaction_known(&self) -> bool {
        self.reaction.is_some()
    }

    /// The vehicle's ceiling, if it draws less than it is offered.
    pub fn ceiling(&self) -> Option<Current> {
        self.ceiling
    }

    /// The most the DLM should offer it: its ceiling + [`MARGIN`], or `max`.
    pub fn offer_limit(&self, max: Current) -> Current {
        self.ceiling.map_or(max, |c| (c + MARGIN).min(max))
    }

    /// The current offered changed from `from` to `to` at `now`.
    pub fn commanded(&mut self, now: Instant, from: Current, to: Current) {
        if from == to {
            return;
        }
        self.offered_at = Some(now);
        self.below_since = None;
        // A sample needs a vehicle that was drawing about `from` at its last two polls when
        // told `to` (not one still on its way to an earlier current).
        // A change not yet seen followed stays the one to time: the next poll tells whether
        // the vehicle followed it (a quick later change, such as a reduction right after a
        // raise, cannot have been followed at that poll yet).
        if self
            .change
            .is_some_and(|c| now.saturating_duration_since(c.at) <= MAX_REACTION)
        {
            return;
        }
        let near = |d: Option<Current>| d.is_some_and(|d| d + MARGIN > from && d < from + MARGIN);
        let at_from = near(self.drawn) && near(self.drawn_before);
        self.change = (from > Current::ZERO && to > Current::ZERO && at_from).then_some(Change {
            at: now,
            from,
            to,
        });
    }

    /// A poll at `now`: the vehicle draws `drawn` (its most loaded phase) while offered
    /// `offered`; `charging` as the box reports it.
    pub fn polled(&mut self, now: Instant, drawn: Current, offered: Current, charging: bool) {
        self.drawn_before = self.drawn;
        self.drawn = Some(drawn);
        if let Some(c) = self.change {
            let since = now.saturating_duration_since(c.at);
            let half = Current::from_milliamps((c.from.milliamps() + c.to.milliamps()) / 2);
            let followed = if c.to > c.from {
                drawn >= half
            } else {
                drawn <= half
            };
            if followed {
                self.reaction = Some(match self.reaction {
                    Some(r) if since < r => (r * 7 + since) / 8,
                    _ => since,
                });
                self.change = None;
            } else if since > MAX_REACTION {
                self.change = None;
            }
        }
        if self
            .ceiling_at
            .is_some_and(|t| now.saturating_duration_since(t) >= PROBE)
        {
            // The upward probe: offer the full share again and see.
            self.ceiling = None;
            self.ceiling_at = None;
            self.below_since = None;
        }
        let settled = self
            .offered_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.reaction());
        if !charging || offered == Current::ZERO || !settled {
            self.below_since = None;
            return;
        }
        if drawn + MARGIN <= offered {
            let since = *self.below_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= SETTLE {
                // Whole amperes, lowered only by whole amperes: a tapering vehicle moves its
                // ceiling a step at a time, not at every poll.
                let whole = Current::from_milliamps((drawn.milliamps() + 999) / 1000 * 1000);
                match self.ceiling {
                    None => {
                        self.ceiling = Some(whole);
                        self.ceiling_at = Some(now);
                    }
                    Some(c) if whole + MARGIN <= c => self.ceiling = Some(whole),
                    Some(_) => {}
                }
            }
        } else {
            self.below_since = None;
            if self.ceiling.is_some_and(|c| drawn > c) {
                // It takes what it is offered above its ceiling: it asks for more.
                self.ceiling = None;
                self.ceiling_at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(amps: i32) -> Current {
        Current::from_milliamps(amps * 1000)
    }

    #[test]
    fn the_reaction_is_learned_from_the_first_poll_half_way_to_the_new_current() {
        let t0 = Instant::now();
        let mut m = VehicleModel::default();
        assert_eq!(m.reaction(), DEFAULT_REACTION);
        m.polled(t0, a(16), a(16), true);
        m.polled(t0, a(16), a(16), true);
        m.commanded(t0, a(16), a(6));
        m.polled(t0 + Duration::from_secs(1), a(16), a(6), true);
        m.polled(t0 + Duration::from_secs(2), a(16), a(6), true);
        m.polled(t0 + Duration::from_secs(3), a(6), a(6), true);
        assert_eq!(m.reaction(), Duration::from_secs(3));
        // A faster sample moves it down slowly, a slower one up at once.
        m.polled(t0 + Duration::from_secs(4), a(6), a(6), true);
        m.commanded(t0 + Duration::from_secs(10), a(6), a(10));
        m.polled(t0 + Duration::from_secs(11), a(10), a(10), true);
        assert!(m.reaction() > Duration::from_millis(2700));
        m.polled(t0 + Duration::from_secs(12), a(10), a(10), true);
        m.commanded(t0 + Duration::from_secs(20), a(10), a(8));
        m.polled(t0 + Duration::from_secs(24), a(8), a(8), true);
        assert_eq!(m.reaction(), Duration::from_secs(4));
    }

    #[test]
    fn a_vehicle_drawing_less_for_the_settle_time_gets_a_ceiling_and_loses_it_when_it_takes_more() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut m = VehicleModel::default();
        m.commanded(t0, a(6), a(12));
        for i in 1..=40 {
            m.polled(t0 + s(i), a(10), a(12), true);
        }
        assert_eq!(m.ceiling(), Some(a(10)));
        assert_eq!(m.offer_limit(a(16)), a(11));
        // Offered its ceiling + 1 A, it takes it all: it wants more.
        m.commanded(t0 + s(41), a(12), a(11));
        m.polled(t0 + s(50), a(11), a(11), true);
        assert_eq!(m.ceiling(), None);
    }

    #[test]
    fn the_ceiling_is_dropped_every_probe_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut m = VehicleModel::default();
        m.commanded(t0, a(6), a(12));
        for i in 1..=40 {
            m.polled(t0 + s(i), a(3), a(12), true);
        }
        assert_eq!(m.ceiling(), Some(a(3)));
        m.polled(t0 + s(40) + PROBE, a(3), a(4), true);
        assert_eq!(m.ceiling(), None);
    }
}
