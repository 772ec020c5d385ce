//! The programming button (spec ch. 8.3.3 and 8.3.5) as a sans-IO state machine at injected
//! time.
//!
//! Owns debouncing and the meaning of presses: a short press toggles programming mode
//! ([`Output::ToggleProgramming`]); the manual factory reset is a sequence that starts with the
//! button held while power returns:
//!
//! 1. held at power-on for [`ARM_HOLD`] (spec: "usual duration approx. 30 seconds") → all three
//!    LEDs flash slowly ([`Output::Show`] with [`Display::ResetArmed`]);
//! 2. released briefly (pressed again within [`RELEASE_WINDOW`]);
//! 3. held again for [`CONFIRM_HOLD`] → all three flash rapidly ([`Display::ResetConfirmed`]);
//! 4. released → [`Output::FactoryReset`] (the device resets without a restart).
//!
//! Aborting at any step (released too early, not pressed again in time, held far too long)
//! gives [`Output::Show`]`(None)` — the normal display returns — and nothing else: programming
//! mode is not toggled, nothing is reset.
//!
//! Calling protocol: [`Button::new`] with the level read at power-on, then
//! [`Button::input`] with every raw level change (contacts bounce: any number of changes),
//! and [`Button::handle_timeout`] at [`Button::poll_timeout`].

use std::time::{Duration, Instant};

use super::leds::Display;

/// A level must stay this long before it counts (contact bounce).
pub const DEBOUNCE: Duration = Duration::from_millis(30);
/// A press held at least this long in operation is not a short press (it does nothing).
pub const SHORT_PRESS_MAX: Duration = Duration::from_secs(3);
/// Held at power-on this long: the factory reset is armed (spec: approx. 30 s).
pub const ARM_HOLD: Duration = Duration::from_secs(30);
/// After arming, the button must be pressed again within this time ("release briefly").
pub const RELEASE_WINDOW: Duration = Duration::from_secs(5);
/// Held again this long: the factory reset is confirmed.
pub const CONFIRM_HOLD: Duration = Duration::from_secs(5);
/// Held longer than this in any reset step: the sequence is abandoned (a stuck button or a
/// jammed cover never resets the device).
pub const STEP_MAX_HOLD: Duration = Duration::from_secs(120);

/// What the button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A short press: toggle programming mode.
    ToggleProgramming,
    /// Show this instead of the normal display (`None`: the normal display again).
    Show(Option<Display>),
    /// The reset sequence was completed: reset to factory settings (without a restart).
    FactoryReset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Normal operation, button up (or a long press being ignored).
    Idle,
    /// Normal operation, pressed since.
    Pressed { since: Instant },
    /// Held since power-on, not yet long enough.
    PowerOnHeld { since: Instant },
    /// Armed, still held (all flash slowly).
    ArmedHeld { since: Instant },
    /// Armed, released at.
    ArmedReleased { at: Instant },
    /// Pressed again since, not yet long enough.
    ConfirmHeld { since: Instant },
    /// Confirmed, waiting for the release (all flash rapidly).
    Confirmed { since: Instant },
}

/// The programming button's state machine (see the module docs).
#[derive(Debug, Clone)]
pub struct Button {
    /// Debounced level (true = pressed).
    stable: bool,
    /// Last raw level and when it was seen.
    raw: bool,
    raw_since: Instant,
    step: Step,
}

impl Button {
    /// The button as read at power-on: `pressed` starts the factory-reset sequence.
    pub fn new(now: Instant, pressed: bool) -> Self {
        Self {
            stable: pressed,
            raw: pressed,
            raw_since: now,
            step: if pressed {
                Step::PowerOnHeld { since: now }
            } else {
                Step::Idle
            },
        }
    }

    /// Whether the button counts as pressed now (debounced).
    pub fn pressed(&self) -> bool {
        self.stable
    }

    /// Whether a factory-reset sequence is under way.
    pub fn in_reset_sequence(&self) -> bool {
        !matches!(self.step, Step::Idle | Step::Pressed { .. })
    }

    /// A raw level read from the line at `now`.
    pub fn input(&mut self, pressed: bool, now: Instant) -> Vec<Output> {
        let mut out = self.handle_timeout(now);
        if pressed != self.raw {
            self.raw = pressed;
            self.raw_since = now;
        }
        out.extend(self.handle_timeout(now));
        out
    }

    /// When [`Button::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let debounce = (self.raw != self.stable).then(|| self.raw_since + DEBOUNCE);
        let step = match self.step {
            Step::Idle => None,
            Step::Pressed { since } => Some(since + SHORT_PRESS_MAX),
            Step::PowerOnHeld { since } => Some(since + ARM_HOLD),
            Step::ArmedHeld { since } | Step::Confirmed { since } => Some(since + STEP_MAX_HOLD),
            Step::ArmedReleased { at } => Some(at + RELEASE_WINDOW),
            Step::ConfirmHeld { since } => Some(since + CONFIRM_HOLD),
        };
        [debounce, step].into_iter().flatten().min()
    }

    /// Time has passed up to `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        // A debounced edge happened at raw_since + DEBOUNCE; handle timed steps due before it
        // first, so that a hold that ran out before the release counts.
        if self.raw != self.stable && now >= self.raw_since + DEBOUNCE {
            let edge_at = self.raw_since;
            self.timed(edge_at, &mut out);
            self.stable = self.raw;
            self.edge(edge_at, &mut out);
        }
        self.timed(now, &mut out);
        out
    }

    /// Steps that end by time alone.
    fn timed(&mut self, now: Instant, out: &mut Vec<Output>) {
        match self.step {
            Step::Idle => {}
            Step::Pressed { since } => {
                if now >= since + SHORT_PRESS_MAX {
                    // A long press in operation does nothing; wait for the release.
                    self.step = Step::Idle;
                }
            }
            Step::PowerOnHeld { since } => {
                if now >= since + ARM_HOLD {
                    self.step = Step::ArmedHeld { since: now };
                    out.push(Output::Show(Some(Display::ResetArmed)));
                }
            }
            Step::ArmedHeld { since } | Step::Confirmed { since } => {
                if now >= since + STEP_MAX_HOLD {
                    self.abort(out);
                }
            }
            Step::ArmedReleased { at } => {
                if now >= at + RELEASE_WINDOW {
                    self.abort(out);
                }
            }
            Step::ConfirmHeld { since } => {
                if now >= since + CONFIRM_HOLD {
                    self.step = Step::Confirmed { since: now };
                    out.push(Output::Show(Some(Display::ResetConfirmed)));
                }
            }
        }
    }

    /// A debounced edge (the new level is `self.stable`), which happened at `at`.
    fn edge(&mut self, at: Instant, out: &mut Vec<Output>) {
        let pressed = self.stable;
        self.step = match (self.step, pressed) {
            (Step::Idle, true) => Step::Pressed { since: at },
            (Step::Pressed { .. }, false) => {
                out.push(Output::ToggleProgramming);
                Step::Idle
            }
            (Step::PowerOnHeld { .. } | Step::ConfirmHeld { .. }, false) => {
                // Released too early: nothing happens (the display never changed in
                // PowerOnHeld; it shows the slow flashing in ConfirmHeld).
                if matches!(self.step, Step::ConfirmHeld { .. }) {
                    out.push(Output::Show(None));
                }
                Step::Idle
            }
            (Step::ArmedHeld { .. }, false) => Step::ArmedReleased { at },
            (Step::ArmedReleased { .. }, true) => Step::ConfirmHeld { since: at },
            (Step::Confirmed { .. }, false) => {
                out.push(Output::Show(None));
                out.push(Output::FactoryReset);
                Step::Idle
            }
            (step, _) => step,
        };
    }

    fn abort(&mut self, out: &mut Vec<Output>) {
        out.push(Output::Show(None));
        // If still held, the release in Idle does not count as a press.
        self.step = Step::Idle;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives the button: raw levels at ms offsets, handling every timeout on the way, and
    /// returns the outputs with the ms at which they came.
    struct Rig {
        t0: Instant,
        b: Button,
        out: Vec<(u64, Output)>,
    }

    impl Rig {
        fn new(pressed_at_power_on: bool) -> Self {
            let t0 = Instant::now();
            Self {
                t0,
                b: Button::new(t0, pressed_at_power_on),
                out: Vec::new(),
            }
        }

        fn run_until(&mut self, at_ms: u64) {
            let end = self.t0 + ms(at_ms);
            while let Some(due) = self.b.poll_timeout() {
                if due > end {
                    break;
                }
                let got = self.b.handle_timeout(due);
                self.record(due, got);
            }
        }

        fn set(&mut self, at_ms: u64, pressed: bool) {
            self.run_until(at_ms);
            let now = self.t0 + ms(at_ms);
            let got = self.b.input(pressed, now);
            self.record(now, got);
        }

        /// A contact that bounces for 10 ms before settling.
        fn bouncy(&mut self, at_ms: u64, pressed: bool) {
            for (i, level) in [pressed, !pressed, pressed, !pressed, pressed]
                .into_iter()
                .enumerate()
            {
                self.set(at_ms + 2 * i as u64, level);
            }
        }

        fn record(&mut self, at: Instant, got: Vec<Output>) {
            let at = u64::try_from((at - self.t0).as_millis()).unwrap();
            self.out.extend(got.into_iter().map(|o| (at, o)));
        }
    }

    #[test]
    fn a_short_press_toggles_programming_mode_once_despite_bouncing() {
        let mut r = Rig::new(false);
        r.bouncy(1000, true);
        r.bouncy(1300, false);
        r.run_until(5000);
        assert_eq!(r.out, [(1338, Output::ToggleProgramming)]);
        // And again.
        r.bouncy(6000, true);
        r.bouncy(6100, false);
        r.run_until(9000);
        assert_eq!(r.out.len(), 2);
    }

    #[test]
    fn spikes_shorter_than_the_debounce_time_are_ignored() {
        let mut r = Rig::new(false);
        r.set(1000, true);
        r.set(1020, false);
        r.run_until(5000);
        assert!(r.out.is_empty());
        assert!(!r.b.pressed());
    }

    #[test]
    fn a_long_press_in_operation_does_nothing() {
        let mut r = Rig::new(false);
        r.set(1000, true);
        r.set(5000, false);
        r.run_until(60_000);
        assert!(r.out.is_empty(), "{:?}", r.out);
    }

    /// The whole sequence of ch. 8.3.5.
    #[test]
    fn the_factory_reset_sequence_resets_without_a_restart() {
        let mut r = Rig::new(true);
        assert!(r.b.in_reset_sequence());
        r.run_until(29_999);
        assert!(r.out.is_empty());
        r.run_until(30_000);
        assert_eq!(r.out, [(30_000, Output::Show(Some(Display::ResetArmed)))]);
        // Released briefly, pressed again.
        r.bouncy(31_000, false);
        r.bouncy(32_000, true);
        // Held again for 5 s from the (last bounce of the) press at 32 008 ms.
        r.run_until(37_007);
        assert_eq!(r.out.len(), 1);
        r.run_until(37_008);
        assert_eq!(
            r.out.last(),
            Some(&(37_008, Output::Show(Some(Display::ResetConfirmed))))
        );
        r.bouncy(38_000, false);
        r.run_until(40_000);
        assert_eq!(
            r.out.get(2..),
            Some([(38_038, Output::Show(None)), (38_038, Output::FactoryReset)].as_slice())
        );
        assert!(!r.b.in_reset_sequence());
        // Afterwards the button works as usual.
        r.set(41_000, true);
        r.set(41_200, false);
        r.run_until(42_000);
        assert_eq!(r.out.last(), Some(&(41_230, Output::ToggleProgramming)));
    }

    fn no_reset_no_toggle(out: &[(u64, Output)]) {
        assert!(
            out.iter()
                .all(|(_, o)| !matches!(o, Output::FactoryReset | Output::ToggleProgramming)),
            "{out:?}"
        );
    }

    #[test]
    fn abort_released_before_the_leds_flash() {
        let mut r = Rig::new(true);
        r.bouncy(20_000, false);
        r.run_until(120_000);
        assert!(r.out.is_empty(), "display never changed: {:?}", r.out);
        assert!(!r.b.in_reset_sequence());
    }

    #[test]
    fn abort_not_pressed_again_in_time() {
        let mut r = Rig::new(true);
        r.run_until(30_000);
        r.set(31_000, false);
        r.run_until(35_999);
        assert_eq!(r.out.len(), 1, "still armed");
        r.run_until(36_000);
        assert_eq!(r.out.last(), Some(&(36_000, Output::Show(None))));
        // A later press is an ordinary short press again.
        r.set(40_000, true);
        r.set(40_100, false);
        r.run_until(41_000);
        assert_eq!(r.out.last(), Some(&(40_130, Output::ToggleProgramming)));
    }

    #[test]
    fn abort_released_before_the_rapid_flashing() {
        let mut r = Rig::new(true);
        r.run_until(30_000);
        r.set(31_000, false);
        r.set(32_000, true);
        r.set(34_000, false);
        r.run_until(60_000);
        assert_eq!(r.out.last(), Some(&(34_030, Output::Show(None))));
        no_reset_no_toggle(&r.out);
    }

    #[test]
    fn abort_held_far_too_long_after_arming_or_confirming() {
        let mut r = Rig::new(true);
        r.run_until(30_000 + 120_000);
        assert_eq!(r.out.last(), Some(&(150_000, Output::Show(None))));
        r.set(200_000, false);
        r.run_until(300_000);
        no_reset_no_toggle(&r.out);

        let mut r = Rig::new(true);
        r.run_until(30_000);
        r.set(31_000, false);
        r.set(32_000, true);
        r.run_until(37_000 + 120_000);
        assert_eq!(r.out.last(), Some(&(157_000, Output::Show(None))));
        r.set(170_000, false);
        r.run_until(200_000);
        no_reset_no_toggle(&r.out);
    }
}
