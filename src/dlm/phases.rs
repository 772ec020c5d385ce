//! 1-/3-phase switching: when a charging point that can switch should charge on one phase
//! or on three, and the sequence that takes a box from one to the other (issue 15, item 7).
//!
//! Sans-IO, one [`PointPhases`] per charging point, driven at injected instants:
//!
//! * [`fit()`] says, from what is left for the point on each grid phase (and the power cap of
//!   grid-supporting control), whether its 3-phase minimum fits, fits with the hysteresis
//!   margin, and whether its 1-phase minimum fits on its first grid phase (the phase a box
//!   switched to one phase charges on: the point's phase 1, through its rotation).
//! * [`PointPhases::decide`] applies the rules: to one phase when the 3-phase minimum does not
//!   fit but the 1-phase one does; back to three when the 3-phase minimum fits with the margin
//!   for [`PhaseSettings::hold`]; never sooner than the minimum on/off time after the last
//!   switch (a switch stops and restarts the vehicle: it counts as an on/off).
//! * The switch itself: the point is paused (0 A) until a poll shows it not drawing (at most
//!   [`PhaseSettings::stop_bound`]), then [`Action::SetPhases`] is due, then the pause is held
//!   for [`PhaseSettings::pause`] after the box confirmed (the box needs it to move its relays
//!   and the vehicle to re-negotiate), then the point resumes at its minimum.
//! * Fail safe: a refused switch ([`PointPhases::refused`]) or a box whose reported phases do
//!   not follow within [`PhaseSettings::follow_bound`] ends switching for this point until the
//!   vehicle leaves ([`PointPhases::vehicle_left`]); the normal rules (queue, interruption)
//!   apply. A refusal of an automatic switch is logged by the core, never a user fault.

use std::time::{Duration, Instant};

use crate::units::{Current, PerPhase, Phase, PhaseCount, Voltage};

/// The parameters of phase switching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseSettings {
    /// Margin on top of the 3-phase minimum, per phase, before switching back to three.
    pub hysteresis: Current,
    /// How long the 3-phase minimum must fit with the margin before switching back.
    pub hold: Duration,
    /// Minimum time between two switches (the DLM's minimum on/off time).
    pub min_switch_time: Duration,
    /// How long to wait for a poll that shows the paused point not drawing.
    pub stop_bound: Duration,
    /// The pause held after the box confirmed the switch, before the point resumes.
    pub pause: Duration,
    /// How long the box may take to answer the command and report the new phases.
    pub follow_bound: Duration,
}

impl PhaseSettings {
    /// The defaults: +1 A margin, 60 s hold, 15 s to stop, 15 s pause (the simulated boxes
    /// pause 10 s; openWB needs at least 7 s), 60 s to follow (evcc's `phaseSwitchDuration`).
    pub fn with_min_switch_time(min_switch_time: Duration) -> Self {
        Self {
            hysteresis: Current::from_amps(1),
            hold: Duration::from_secs(60),
            min_switch_time,
            stop_bound: Duration::from_secs(15),
            pause: Duration::from_secs(15),
            follow_bound: Duration::from_secs(60),
        }
    }
}

/// Whether the minimums of one charging point fit what is left for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fit {
    /// The 3-phase minimum fits on all three grid phases (and the power cap).
    pub three: bool,
    /// The 3-phase minimum plus the hysteresis margin fits.
    pub three_with_margin: bool,
    /// The 1-phase minimum fits on the point's first grid phase (and the power cap).
    pub one: bool,
}

/// Whether `min` fits `left` (what is left for the point per grid phase, its own current
/// included) on three phases and on `first` alone; `power` is the cap of grid-supporting
/// control (watts and the nominal voltage), if active.
pub fn fit(
    left: PerPhase<Current>,
    min: Current,
    first: Phase,
    margin: Current,
    power: Option<(u32, Voltage)>,
) -> Fit {
    let power_allows = |phases: i64, current: Current| {
        power.is_none_or(|(watts, v)| {
            phases * i64::from(current.milliamps()) * i64::from(v.millivolts()) / 1_000_000
                <= i64::from(watts)
        })
    };
    let all = |c: Current| left.0.iter().all(|l| *l >= c);
    Fit {
        three: all(min) && power_allows(3, min),
        three_with_margin: all(min + margin) && power_allows(3, min + margin),
        one: left.get(first) >= min && power_allows(1, min),
    }
}

/// What is left for one charging point on each grid phase: `available` (the budget after
/// the other load) minus what the plan gives every other point, each on its grid phases
/// (`Demand::phases`). The input of [`fit()`].
pub fn left_for(
    available: PerPhase<Current>,
    others: impl IntoIterator<Item = (Current, [bool; 3])>,
) -> PerPhase<Current> {
    let mut left = available;
    for (current, phases) in others {
        for (p, used) in Phase::ALL.into_iter().zip(phases) {
            if used {
                left.set(p, left.get(p).saturating_sub(current).max(Current::ZERO));
            }
        }
    }
    left
}

/// What the core must do for the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send `ChargerCommand::SetPhases` with this count.
    SetPhases(PhaseCount),
}

/// Where a switch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Charging (or ready to) on these phases.
    Steady,
    /// Paused (0 A) since the instant, waiting for the point to stop drawing.
    Stopping { to: PhaseCount, since: Instant },
    /// The command is due or out since the instant; waiting for the box to follow.
    Commanded {
        to: PhaseCount,
        at: Instant,
        sent: bool,
        done: bool,
    },
    /// The box follows; the pause runs until the instant.
    Pausing { until: Instant },
}

/// Why switching ended for a point (logged by the core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// The box refused the command.
    Refused(String),
    /// The box did not report the new phases in time.
    DidNotFollow,
}

/// What happened in one call, for the core's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A switch begins (the point is paused).
    Begin(PhaseCount),
    /// The box switched to these phases; the pause runs.
    Switched(PhaseCount),
    /// The switch is complete; the point resumes on these phases.
    Complete(PhaseCount),
    /// Switching ends for this point until the vehicle leaves.
    GaveUp(GiveUp),
}

/// The phase-switching state of one charging point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointPhases {
    settings: PhaseSettings,
    /// What the point charges on (as far as switching is concerned).
    phases: PhaseCount,
    step: Step,
    /// Since when the 3-phase minimum fits with the margin (while on one phase).
    fits_since: Option<Instant>,
    /// When the last switch was commanded.
    last_switch: Option<Instant>,
    /// Switching ended until the vehicle leaves.
    given_up: bool,
}

impl PointPhases {
    /// A point wired with three phases, charging on three.
    pub fn new(settings: PhaseSettings) -> Self {
        Self {
            settings,
            phases: PhaseCount::Three,
            step: Step::Steady,
            fits_since: None,
            last_switch: None,
            given_up: false,
        }
    }

    /// The phases to book the point on: the target of a switch once it is commanded.
    pub fn phases(&self) -> PhaseCount {
        match self.step {
            Step::Commanded { to, .. } => to,
            _ => self.phases,
        }
    }

    /// The point must be held at 0 A (a switch is under way).
    pub fn paused(&self) -> bool {
        self.step != Step::Steady
    }

    /// Switching ended for this point until the vehicle leaves.
    pub fn given_up(&self) -> bool {
        self.given_up
    }

    /// Applies the rules with the point's minimums as they fit now. `eligible`: the point can
    /// switch now (capability, the box's `phase_switch_available` not false, allowed by the
    /// configuration, wired with three phases, a vehicle connected).
    pub fn decide(&mut self, now: Instant, fit: Fit, eligible: bool) -> Option<Event> {
        if self.step != Step::Steady || self.given_up || !eligible {
            self.fits_since = None;
            return None;
        }
        let switch_allowed = self
            .last_switch
            .is_none_or(|t| now.saturating_duration_since(t) >= self.settings.min_switch_time);
        let to = match self.phases {
            PhaseCount::Three => {
                if fit.three || !fit.one {
                    return None;
                }
                PhaseCount::One
            }
            PhaseCount::One => {
                if !fit.three_with_margin {
                    self.fits_since = None;
                    return None;
                }
                let since = *self.fits_since.get_or_insert(now);
                if now.saturating_duration_since(since) < self.settings.hold {
                    return None;
                }
                PhaseCount::Three
            }
        };
        if !switch_allowed {
            return None;
        }
        self.fits_since = None;
        self.step = Step::Stopping { to, since: now };
        Some(Event::Begin(to))
    }

    /// A poll of the point: whether it draws current and the phases the box reports.
    pub fn polled(
        &mut self,
        now: Instant,
        drawing: bool,
        switched: Option<PhaseCount>,
    ) -> Option<Event> {
        match self.step {
            Step::Stopping { to, .. } if !drawing => {
                self.command(to, now);
                None
            }
            Step::Commanded { to, done, .. } if done && switched == Some(to) => {
                Some(self.follow(to, now))
            }
            _ => None,
        }
    }

    /// The action due now, if any (marked as sent).
    pub fn take_action(&mut self) -> Option<Action> {
        if let Step::Commanded { to, sent, .. } = &mut self.step
            && !*sent
        {
            *sent = true;
            return Some(Action::SetPhases(*to));
        }
        None
    }

    /// The box carried out the command (`Done`). `reports`: the model reports its switched
    /// phases (else `Done` is all the confirmation there is).
    pub fn done(&mut self, now: Instant, reports: bool) -> Option<Event> {
        if let Step::Commanded { to, done, .. } = &mut self.step {
            *done = true;
            let to = *to;
            if !reports {
                return Some(self.follow(to, now));
            }
        }
        None
    }

    /// The box refused the command (`NotPossible`): switching ends for this point.
    pub fn refused(&mut self, reason: &str) -> Option<Event> {
        if matches!(self.step, Step::Commanded { .. }) {
            return Some(self.give_up(GiveUp::Refused(reason.to_owned())));
        }
        None
    }

    /// The vehicle left: switching may be tried again with the next one.
    pub fn vehicle_left(&mut self) {
        self.given_up = false;
        self.fits_since = None;
        if self.step != Step::Steady {
            self.step = Step::Steady;
        }
    }

    /// The box switched by itself (or at start-up): what it reports is what the point
    /// charges on while no switch is under way.
    pub fn observed(&mut self, switched: PhaseCount) {
        if self.step == Step::Steady {
            self.phases = switched;
        }
    }

    /// The next instant a call to [`PointPhases::tick`] changes something.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.step {
            Step::Steady => self.fits_since.map(|t| {
                let hold = t + self.settings.hold;
                self.last_switch
                    .map_or(hold, |s| hold.max(s + self.settings.min_switch_time))
            }),
            Step::Stopping { since, .. } => Some(since + self.settings.stop_bound),
            Step::Commanded { at, .. } => Some(at + self.settings.follow_bound),
            Step::Pausing { until } => Some(until),
        }
    }

    /// Time passed: the bounds of the switch.
    pub fn tick(&mut self, now: Instant) -> Option<Event> {
        match self.step {
            Step::Stopping { to, since } if now >= since + self.settings.stop_bound => {
                self.command(to, now);
                None
            }
            Step::Commanded { at, .. } if now >= at + self.settings.follow_bound => {
                Some(self.give_up(GiveUp::DidNotFollow))
            }
            Step::Pausing { until } if now >= until => {
                self.step = Step::Steady;
                Some(Event::Complete(self.phases))
            }
            _ => None,
        }
    }

    fn command(&mut self, to: PhaseCount, now: Instant) {
        self.step = Step::Commanded {
            to,
            at: now,
            sent: false,
            done: false,
        };
        self.last_switch = Some(now);
    }

    fn follow(&mut self, to: PhaseCount, now: Instant) -> Event {
        self.phases = to;
        self.step = Step::Pausing {
            until: now + self.settings.pause,
        };
        Event::Switched(to)
    }

    fn give_up(&mut self, why: GiveUp) -> Event {
        // The box stays where it was; the pause ends; the normal rules apply.
        self.step = Step::Steady;
        self.given_up = true;
        self.fits_since = None;
        Event::GaveUp(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: fn(i32) -> Current = Current::from_amps;
    const MIN: Current = Current::from_amps(6);

    fn settings() -> PhaseSettings {
        PhaseSettings::with_min_switch_time(Duration::from_secs(300))
    }

    fn left(l1: i32, l2: i32, l3: i32) -> PerPhase<Current> {
        PerPhase([A(l1), A(l2), A(l3)])
    }

    const SHORT_L3: Fit = Fit {
        three: false,
        three_with_margin: false,
        one: true,
    };
    const ROOM: Fit = Fit {
        three: true,
        three_with_margin: true,
        one: true,
    };

    /// A point short on L3 at `t`, seen not drawing and sent `SetPhases(One)` (no answer yet).
    fn asked_to_switch_to_one(t: Instant) -> PointPhases {
        let mut p = PointPhases::new(settings());
        p.decide(t, SHORT_L3, true);
        p.polled(t, false, None);
        assert_eq!(p.take_action(), Some(Action::SetPhases(PhaseCount::One)));
        p
    }

    /// Runs a whole switch to `to` from `t`: stop seen, command sent, box done and follows,
    /// pause over. Returns the instant it completed.
    fn switch(p: &mut PointPhases, t: Instant, to: PhaseCount, fit: Fit) -> Instant {
        assert_eq!(p.decide(t, fit, true), Some(Event::Begin(to)));
        assert!(p.paused());
        assert_eq!(p.polled(t + Duration::from_secs(2), false, None), None);
        assert_eq!(p.take_action(), Some(Action::SetPhases(to)));
        assert_eq!(p.take_action(), None);
        assert_eq!(p.done(t + Duration::from_secs(3), true), None);
        assert_eq!(
            p.polled(t + Duration::from_secs(4), false, Some(to)),
            Some(Event::Switched(to))
        );
        let end = t + Duration::from_secs(4) + p.settings.pause;
        assert_eq!(p.poll_timeout(), Some(end));
        assert_eq!(p.tick(t + Duration::from_secs(3) + p.settings.pause), None);
        assert!(p.paused());
        assert_eq!(p.tick(end), Some(Event::Complete(to)));
        assert!(!p.paused());
        assert_eq!(p.phases(), to);
        end
    }

    #[test]
    fn fit_three_phase_minimum_short_on_one_phase_one_phase_fits_on_first() {
        let f = fit(left(16, 16, 4), MIN, Phase::L1, A(1), None);
        assert_eq!(f, SHORT_L3);
        // The first grid phase is the short one: one phase does not help.
        let f = fit(left(16, 16, 4), MIN, Phase::L3, A(1), None);
        assert!(!f.three && !f.one);
        // Just the minimum: fits, but not with the margin.
        let f = fit(left(6, 6, 6), MIN, Phase::L1, A(1), None);
        assert!(f.three && !f.three_with_margin && f.one);
        assert!(fit(left(7, 7, 7), MIN, Phase::L1, A(1), None).three_with_margin);
    }

    #[test]
    fn fit_grid_control_power_cap_4_2_kw_allows_one_phase_only() {
        // §14a EnWG: 4.2 kW; 3 × 6 A × 230 V = 4.14 kW fits, 3 × 7 A × 230 V = 4.83 kW not.
        let cap = Some((4200, Voltage::from_volts(230)));
        let f = fit(left(32, 32, 32), MIN, Phase::L1, A(1), cap);
        assert!(f.three && !f.three_with_margin && f.one);
        // A point with an 8 A minimum: 5.52 kW on three phases, 1.84 kW on one.
        let f = fit(left(32, 32, 32), A(8), Phase::L1, A(1), cap);
        assert!(!f.three && f.one);
        // Cap 1 kW: not even one phase.
        let f = fit(
            left(32, 32, 32),
            MIN,
            Phase::L1,
            A(1),
            Some((1000, Voltage::from_volts(230))),
        );
        assert!(!f.three && !f.one);
    }

    #[test]
    fn left_for_subtracts_the_others_on_their_phases_never_below_zero() {
        let others = [(A(10), [true, true, true]), (A(16), [false, false, true])];
        assert_eq!(left_for(left(32, 32, 20), others), left(22, 22, 0));
    }

    #[test]
    fn switches_to_one_phase_when_three_do_not_fit_and_one_does() {
        let t = Instant::now();
        let mut p = PointPhases::new(settings());
        // Three fit: nothing happens.
        assert_eq!(p.decide(t, ROOM, true), None);
        // Nothing fits at all: stays on three (the queue pauses it).
        let none = Fit::default();
        assert_eq!(p.decide(t, none, true), None);
        switch(&mut p, t, PhaseCount::One, SHORT_L3);
    }

    #[test]
    fn not_eligible_never_switches() {
        let t = Instant::now();
        let mut p = PointPhases::new(settings());
        assert_eq!(p.decide(t, SHORT_L3, false), None);
        assert!(!p.paused());
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn waits_for_the_point_to_stop_drawing_at_most_the_stop_bound() {
        let t = Instant::now();
        let mut p = PointPhases::new(settings());
        p.decide(t, SHORT_L3, true);
        // Still drawing: no command yet.
        assert_eq!(p.polled(t + Duration::from_secs(2), true, None), None);
        assert_eq!(p.take_action(), None);
        assert_eq!(p.poll_timeout(), Some(t + p.settings.stop_bound));
        p.tick(t + p.settings.stop_bound);
        assert_eq!(p.take_action(), Some(Action::SetPhases(PhaseCount::One)));
        // Booked on the target once commanded.
        assert_eq!(p.phases(), PhaseCount::One);
    }

    #[test]
    fn back_to_three_only_after_the_margin_held_for_the_hold_time() {
        let t0 = Instant::now();
        let mut p = PointPhases::new(PhaseSettings::with_min_switch_time(Duration::from_secs(10)));
        let t = switch(&mut p, t0, PhaseCount::One, SHORT_L3);
        // Three fit, but not with the margin: stays on one.
        let bare = Fit {
            three: true,
            three_with_margin: false,
            one: true,
        };
        assert_eq!(p.decide(t, bare, true), None);
        assert_eq!(p.poll_timeout(), None);
        // With the margin: the hold starts.
        assert_eq!(p.decide(t, ROOM, true), None);
        assert_eq!(p.poll_timeout(), Some(t + p.settings.hold));
        // A dip resets it.
        let t2 = t + Duration::from_secs(30);
        assert_eq!(p.decide(t2, bare, true), None);
        assert_eq!(p.decide(t2, ROOM, true), None);
        assert_eq!(p.decide(t2 + Duration::from_secs(59), ROOM, true), None);
        switch(
            &mut p,
            t2 + Duration::from_secs(60),
            PhaseCount::Three,
            ROOM,
        );
    }

    #[test]
    fn never_switches_sooner_than_the_minimum_on_off_time() {
        let t0 = Instant::now();
        let mut p = PointPhases::new(settings());
        let t = switch(&mut p, t0, PhaseCount::One, SHORT_L3);
        // The margin holds from at once; the hold ends long before the min switch time.
        assert_eq!(p.decide(t, ROOM, true), None);
        let commanded = t0 + Duration::from_secs(2);
        let earliest = commanded + Duration::from_secs(300);
        assert_eq!(p.poll_timeout(), Some(earliest));
        assert_eq!(
            p.decide(commanded + Duration::from_secs(299), ROOM, true),
            None
        );
        assert_eq!(
            p.decide(earliest, ROOM, true),
            Some(Event::Begin(PhaseCount::Three))
        );
    }

    #[test]
    fn a_refused_switch_ends_switching_until_the_vehicle_leaves() {
        let t = Instant::now();
        let mut p = asked_to_switch_to_one(t);
        assert_eq!(
            p.refused("charging released"),
            Some(Event::GaveUp(GiveUp::Refused("charging released".into())))
        );
        // The pause ends; the point stays booked on three; the normal rules apply.
        assert!(!p.paused());
        assert!(p.given_up());
        assert_eq!(p.phases(), PhaseCount::Three);
        let later = t + Duration::from_secs(3600);
        assert_eq!(p.decide(later, SHORT_L3, true), None);
        p.vehicle_left();
        assert_eq!(
            p.decide(later, SHORT_L3, true),
            Some(Event::Begin(PhaseCount::One))
        );
    }

    #[test]
    fn a_box_that_does_not_follow_ends_switching() {
        let t = Instant::now();
        let mut p = asked_to_switch_to_one(t);
        p.done(t, true);
        // The box keeps reporting three phases.
        assert_eq!(
            p.polled(t + Duration::from_secs(10), false, Some(PhaseCount::Three)),
            None
        );
        assert_eq!(p.poll_timeout(), Some(t + p.settings.follow_bound));
        assert_eq!(
            p.tick(t + p.settings.follow_bound),
            Some(Event::GaveUp(GiveUp::DidNotFollow))
        );
        assert!(p.given_up() && !p.paused());
    }

    #[test]
    fn a_box_that_never_answers_ends_switching() {
        let t = Instant::now();
        let mut p = asked_to_switch_to_one(t);
        assert_eq!(
            p.tick(t + p.settings.follow_bound),
            Some(Event::GaveUp(GiveUp::DidNotFollow))
        );
    }

    #[test]
    fn done_is_the_confirmation_for_a_model_that_does_not_report_its_phases() {
        let t = Instant::now();
        let mut p = asked_to_switch_to_one(t);
        assert_eq!(p.done(t, false), Some(Event::Switched(PhaseCount::One)));
        assert!(p.paused());
        assert_eq!(
            p.tick(t + p.settings.pause),
            Some(Event::Complete(PhaseCount::One))
        );
    }

    #[test]
    fn a_box_switched_by_itself_is_observed() {
        let mut p = PointPhases::new(settings());
        p.observed(PhaseCount::One);
        assert_eq!(p.phases(), PhaseCount::One);
    }
}
