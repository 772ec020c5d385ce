//! The three front LEDs as the electrician sees them (spec ch. 8.1, 8.2, tables 5–10, and the
//! factory-reset signals of ch. 8.3.5), rendered at injected time.
//!
//! Owns the LED *states* the core decides ([`Leds`]: programming on/off, APP, COM) and the
//! sans-IO [`Renderer`] that turns the state on show ([`Display`]) into on/off levels at a given
//! instant: [`Renderer::levels`] says what each LED shows at `now`, [`Renderer::poll_timeout`]
//! when the next LED changes, [`Renderer::timeline`] the on/off instants over a window. It
//! reads no clock and drives no line: the hardware backends (`crate::hw::backend`) set the
//! levels it gives.
//!
//! Timing (the spec says "approx. 1 Hz" for slow and only "rapid" for rapid flashing):
//! slow flashing is 500 ms on / 500 ms off ([`SLOW_HALF`]), rapid flashing 100 ms on / 100 ms
//! off ([`RAPID_HALF`]); the fault codes of table 10 are three or five slow flashes followed by
//! [`BURST_GAP`] (2 s) off, so that the count can be read, then again.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Half period of slow flashing (approx. 1 Hz, tables 7 and 10).
pub const SLOW_HALF: Duration = Duration::from_millis(500);
/// Half period of rapid flashing (tables 7 and 9).
pub const RAPID_HALF: Duration = Duration::from_millis(100);
/// The APP LED stays off this long between two groups of fault flashes (table 10).
pub const BURST_GAP: Duration = Duration::from_secs(2);

/// The APP LED in operation, as the core decides it (spec ch. 8.1.1–8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppLed {
    /// Steady green: normal operation.
    On,
    /// Slow flashing: started but not configured.
    Unconfigured,
    /// Three slow flashes: a fault of severity 60–110.
    ThreeFlashes,
    /// Five slow flashes: a fault of severity 120–130.
    FiveFlashes,
}

/// The COM LED in operation (table 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComLed {
    /// Off: no KNX connection.
    Off,
    /// Steady yellow: connected, no traffic.
    On,
    /// Rapid flashing: telegram traffic.
    Traffic,
}

/// All three front LEDs as the core decides them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Leds {
    /// Programming LED (red).
    pub prog: bool,
    /// APP LED (green).
    pub app: AppLed,
    /// COM LED (yellow).
    pub com: ComLed,
}

/// What the front panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Display {
    /// Table 7 "Device starting up": APP off, COM on (programming LED off).
    StartingUp,
    /// The core's state: table 5 (programming LED), table 7 "ready" and "not yet configured",
    /// tables 8–10.
    Operating(Leds),
    /// Table 7 "The firmware cannot be started": APP rapid flashing, COM off.
    FirmwareFailed,
    /// Table 7 "The newly loaded firmware cannot be started … trying to activate the previous
    /// firmware": APP and COM flashing slowly in an alternating pattern.
    FirmwareRestoring,
    /// Ch. 8.3.5 step 2: the button was held at power-on long enough; all three flash slowly.
    ResetArmed,
    /// Ch. 8.3.5 step 4: held again long enough; all three flash rapidly.
    ResetConfirmed,
}

/// One of the three front LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Led {
    /// Programming (red).
    Prog,
    /// APP (green).
    App,
    /// COM (yellow).
    Com,
}

impl Led {
    /// All three, in panel order.
    pub const ALL: [Led; 3] = [Led::Prog, Led::App, Led::Com];

    fn index(self) -> usize {
        match self {
            Led::Prog => 0,
            Led::App => 1,
            Led::Com => 2,
        }
    }
}

/// On/off levels of the three LEDs at one instant (true = lit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Levels {
    /// Programming (red).
    pub prog: bool,
    /// APP (green).
    pub app: bool,
    /// COM (yellow).
    pub com: bool,
}

impl Levels {
    /// The level of one LED.
    pub fn get(self, led: Led) -> bool {
        match led {
            Led::Prog => self.prog,
            Led::App => self.app,
            Led::Com => self.com,
        }
    }
}

/// One LED switching on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// When.
    pub at: Instant,
    /// Which LED.
    pub led: Led,
    /// Lit afterwards.
    pub on: bool,
}

/// What one LED does, repeating from its anchor instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Off,
    On,
    /// Equal halves, starting lit (or dark when `dark_first`).
    Blink {
        half: Duration,
        dark_first: bool,
    },
    /// `flashes` slow flashes, then [`BURST_GAP`] dark.
    Burst {
        flashes: u8,
    },
}

impl Pattern {
    /// The repeating cycle as (length, lit) segments, adjacent equal levels merged; `None`
    /// for a steady level.
    fn cycle(self) -> Result<Vec<(Duration, bool)>, bool> {
        match self {
            Pattern::Off => Err(false),
            Pattern::On => Err(true),
            Pattern::Blink { half, dark_first } => {
                Ok(vec![(half, !dark_first), (half, dark_first)])
            }
            Pattern::Burst { flashes } => {
                let mut segments = Vec::with_capacity(usize::from(flashes) * 2);
                for i in 0..flashes {
                    segments.push((SLOW_HALF, true));
                    let dark = if i + 1 == flashes {
                        SLOW_HALF + BURST_GAP
                    } else {
                        SLOW_HALF
                    };
                    segments.push((dark, false));
                }
                Ok(segments)
            }
        }
    }

    /// Level `elapsed` after the anchor, and how long until it changes (`None`: never).
    fn at(self, elapsed: Duration) -> (bool, Option<Duration>) {
        match self.cycle() {
            Err(level) => (level, None),
            Ok(segments) => {
                let period: Duration = segments.iter().map(|(d, _)| *d).sum();
                let period_ns = period.as_nanos().max(1);
                let mut pos = Duration::from_nanos(
                    u64::try_from(elapsed.as_nanos() % period_ns).unwrap_or(0),
                );
                for (len, lit) in &segments {
                    if pos < *len {
                        return (*lit, Some(len.saturating_sub(pos)));
                    }
                    pos = pos.saturating_sub(*len);
                }
                // Not reached: pos < period. A steady "off" is the safe answer.
                (false, None)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    pattern: Pattern,
    anchor: Instant,
}

/// Renders a [`Display`] into LED levels at injected instants.
///
/// A pattern starts at the instant it is first shown; an LED whose pattern does not change
/// when the display does keeps its rhythm (the COM LED flashing with traffic is not restarted
/// by every telegram). Patterns that belong together (APP/COM alternating, the three LEDs of
/// the factory-reset signals) start together.
#[derive(Debug, Clone)]
pub struct Renderer {
    display: Display,
    channels: [Channel; 3],
}

impl Renderer {
    /// A panel showing [`Display::StartingUp`] from `now` (power has just returned).
    pub fn new(now: Instant) -> Self {
        let display = Display::StartingUp;
        let patterns = patterns(display);
        Self {
            display,
            channels: patterns.map(|pattern| Channel {
                pattern,
                anchor: now,
            }),
        }
    }

    /// What is on show.
    pub fn display(&self) -> Display {
        self.display
    }

    /// Shows `display` from `now` on.
    pub fn show(&mut self, display: Display, now: Instant) {
        let together = !matches!(display, Display::Operating(_))
            && std::mem::discriminant(&display) != std::mem::discriminant(&self.display);
        for (channel, pattern) in self.channels.iter_mut().zip(patterns(display)) {
            if together || channel.pattern != pattern {
                *channel = Channel {
                    pattern,
                    anchor: now,
                };
            }
        }
        self.display = display;
    }

    /// What each LED shows at `now`.
    pub fn levels(&self, now: Instant) -> Levels {
        let level = |led: Led| self.channel_at(led, now).0;
        Levels {
            prog: level(Led::Prog),
            app: level(Led::App),
            com: level(Led::Com),
        }
    }

    /// When the next LED changes after `now` (`None`: all steady).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        Led::ALL
            .iter()
            .filter_map(|led| self.channel_at(*led, now).1)
            .min()
    }

    /// Every change strictly after `from` up to and including `until`, in order (LEDs in panel
    /// order at equal instants), with the current display kept on show.
    pub fn timeline(&self, from: Instant, until: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut now = from;
        let mut levels = self.levels(from);
        while let Some(next) = self.poll_timeout(now) {
            if next > until {
                break;
            }
            let after = self.levels(next);
            for led in Led::ALL {
                if after.get(led) != levels.get(led) {
                    changes.push(Change {
                        at: next,
                        led,
                        on: after.get(led),
                    });
                }
            }
            levels = after;
            now = next;
        }
        changes
    }

    fn channel_at(&self, led: Led, now: Instant) -> (bool, Option<Instant>) {
        let Some(channel) = self.channels.get(led.index()) else {
            return (false, None);
        };
        let elapsed = now.saturating_duration_since(channel.anchor);
        let (lit, left) = channel.pattern.at(elapsed);
        (lit, left.map(|d| now + d))
    }
}

const SLOW: Pattern = Pattern::Blink {
    half: SLOW_HALF,
    dark_first: false,
};
const RAPID: Pattern = Pattern::Blink {
    half: RAPID_HALF,
    dark_first: false,
};

/// Patterns of (Prog, APP, COM) for a display.
fn patterns(display: Display) -> [Pattern; 3] {
    let steady = |on: bool| if on { Pattern::On } else { Pattern::Off };
    match display {
        Display::StartingUp => [Pattern::Off, Pattern::Off, Pattern::On],
        Display::Operating(leds) => [
            steady(leds.prog),
            match leds.app {
                AppLed::On => Pattern::On,
                AppLed::Unconfigured => SLOW,
                AppLed::ThreeFlashes => Pattern::Burst { flashes: 3 },
                AppLed::FiveFlashes => Pattern::Burst { flashes: 5 },
            },
            match leds.com {
                ComLed::Off => Pattern::Off,
                ComLed::On => Pattern::On,
                ComLed::Traffic => RAPID,
            },
        ],
        Display::FirmwareFailed => [Pattern::Off, RAPID, Pattern::Off],
        Display::FirmwareRestoring => [
            Pattern::Off,
            SLOW,
            Pattern::Blink {
                half: SLOW_HALF,
                dark_first: true,
            },
        ],
        Display::ResetArmed => [SLOW; 3],
        Display::ResetConfirmed => [RAPID; 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The timeline as (ms after `t0`, LED, lit) triples.
    fn tl(r: &Renderer, t0: Instant, from_ms: u64, until_ms: u64) -> Vec<(u64, Led, bool)> {
        r.timeline(t0 + ms(from_ms), t0 + ms(until_ms))
            .into_iter()
            .map(|c| (u64::try_from((c.at - t0).as_millis()).unwrap(), c.led, c.on))
            .collect()
    }

    fn operating(prog: bool, app: AppLed, com: ComLed) -> Display {
        Display::Operating(Leds { prog, app, com })
    }

    fn lv(prog: bool, app: bool, com: bool) -> Levels {
        Levels { prog, app, com }
    }

    use Led::{App, Com, Prog};

    #[test]
    fn table_7_starting_up_then_ready() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        // Starting up: APP off, COM on, steady.
        assert_eq!(r.levels(t0), lv(false, false, true));
        assert_eq!(r.poll_timeout(t0), None);
        assert!(tl(&r, t0, 0, 10_000).is_empty());
        // Ready: both on, steady; the change happens at the instant shown.
        r.show(operating(false, AppLed::On, ComLed::On), t0 + ms(1200));
        assert_eq!(r.levels(t0 + ms(1200)), lv(false, true, true));
        assert_eq!(r.poll_timeout(t0 + ms(1200)), None);
    }

    #[test]
    fn table_7_unconfigured_app_flashes_slowly_com_with_the_bus() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(operating(false, AppLed::Unconfigured, ComLed::On), t0);
        assert_eq!(r.levels(t0), lv(false, true, true));
        assert_eq!(
            tl(&r, t0, 0, 2000),
            [
                (500, App, false),
                (1000, App, true),
                (1500, App, false),
                (2000, App, true)
            ]
        );
        // Bus interrupted: COM off, APP keeps its rhythm.
        r.show(
            operating(false, AppLed::Unconfigured, ComLed::Off),
            t0 + ms(2200),
        );
        assert_eq!(r.levels(t0 + ms(2200)), lv(false, true, false));
        assert_eq!(
            tl(&r, t0, 2200, 3600),
            [(2500, App, false), (3000, App, true), (3500, App, false)]
        );
    }

    #[test]
    fn table_7_firmware_cannot_start_app_rapid_com_off() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(Display::FirmwareFailed, t0);
        assert_eq!(r.levels(t0), lv(false, true, false));
        assert_eq!(
            tl(&r, t0, 0, 400),
            [
                (100, App, false),
                (200, App, true),
                (300, App, false),
                (400, App, true)
            ]
        );
    }

    #[test]
    fn table_7_invalid_firmware_app_and_com_alternate_slowly() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(Display::FirmwareRestoring, t0 + ms(300));
        assert_eq!(r.levels(t0 + ms(300)), lv(false, true, false));
        assert_eq!(
            tl(&r, t0, 300, 2300),
            [
                (800, App, false),
                (800, Com, true),
                (1300, App, true),
                (1300, Com, false),
                (1800, App, false),
                (1800, Com, true),
                (2300, App, true),
                (2300, Com, false),
            ]
        );
        // Never both lit, never both dark.
        for step in 0..100 {
            let l = r.levels(t0 + ms(300 + step * 37));
            assert_ne!(l.app, l.com, "at {step}");
        }
    }

    #[test]
    fn table_8_app_on_in_operation() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(operating(false, AppLed::On, ComLed::On), t0);
        assert!(tl(&r, t0, 0, 60_000).is_empty());
        assert!(r.levels(t0 + ms(59_999)).app);
    }

    #[test]
    fn table_9_com_steady_rapid_with_traffic_off_without_bus() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(operating(false, AppLed::On, ComLed::On), t0);
        assert!(r.levels(t0).com);
        r.show(operating(false, AppLed::On, ComLed::Traffic), t0 + ms(1000));
        // A new telegram (same state shown again) does not restart the rhythm.
        r.show(operating(false, AppLed::On, ComLed::Traffic), t0 + ms(1150));
        assert_eq!(
            tl(&r, t0, 1000, 1500),
            [
                (1100, Com, false),
                (1200, Com, true),
                (1300, Com, false),
                (1400, Com, true),
                (1500, Com, false)
            ]
        );
        r.show(operating(false, AppLed::On, ComLed::On), t0 + ms(1550));
        assert_eq!(r.levels(t0 + ms(1550)), lv(false, true, true));
        r.show(operating(false, AppLed::On, ComLed::Off), t0 + ms(3000));
        assert_eq!(r.levels(t0 + ms(3000)), lv(false, true, false));
        assert_eq!(r.poll_timeout(t0 + ms(3000)), None);
    }

    fn burst(flashes: u64, start: u64) -> Vec<(u64, Led, bool)> {
        let mut v = Vec::new();
        for i in 0..flashes {
            if i > 0 {
                v.push((start + i * 1000, App, true));
            }
            v.push((start + i * 1000 + 500, App, false));
        }
        v
    }

    #[test]
    fn table_10_three_slow_flashes_then_a_gap() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(operating(false, AppLed::ThreeFlashes, ComLed::On), t0);
        assert!(r.levels(t0).app);
        // 3 flashes (on 500, off 500), 2.5 s dark after the last, then again at 5 s.
        let mut want = burst(3, 0);
        want.push((5000, App, true));
        want.extend(burst(3, 5000));
        want.push((10_000, App, true));
        assert_eq!(tl(&r, t0, 0, 10_000), want);
        let on_count = tl(&r, t0, 0, 4999).iter().filter(|c| c.2).count();
        assert_eq!(on_count + 1, 3, "three flashes in one group");
    }

    #[test]
    fn table_10_five_slow_flashes_then_a_gap() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(operating(false, AppLed::FiveFlashes, ComLed::Off), t0);
        let mut want = burst(5, 0);
        want.push((7000, App, true));
        assert_eq!(tl(&r, t0, 0, 7000), want);
    }

    #[test]
    fn table_10_highest_severity_wins_and_restarts_the_count() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(operating(false, AppLed::ThreeFlashes, ComLed::On), t0);
        // A serious fault appears in the middle of a group: five flashes from then on.
        assert!(!r.levels(t0 + ms(1699)).app);
        r.show(
            operating(false, AppLed::FiveFlashes, ComLed::On),
            t0 + ms(1700),
        );
        let mut want = burst(5, 1700);
        want.push((8700, App, true));
        // At 1700 the APP LED was dark (second flash's off half) and lights up at once.
        let got: Vec<_> = tl(&r, t0, 1700, 8700);
        assert!(r.levels(t0 + ms(1700)).app);
        assert_eq!(got, want);
    }

    #[test]
    fn table_5_programming_led_steady_red_in_any_mode() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(operating(true, AppLed::Unconfigured, ComLed::Traffic), t0);
        assert!(r.levels(t0).prog);
        assert!(
            tl(&r, t0, 0, 5000).iter().all(|c| c.1 != Prog),
            "steady, not flashing"
        );
        r.show(
            operating(false, AppLed::Unconfigured, ComLed::Traffic),
            t0 + ms(5000),
        );
        assert!(!r.levels(t0 + ms(5000)).prog);
        assert!(tl(&r, t0, 5000, 10_000).iter().all(|c| c.1 != Prog));
    }

    #[test]
    fn factory_reset_signals_flash_all_three_together() {
        let t0 = Instant::now();
        let mut r = Renderer::new(t0);
        r.show(
            operating(false, AppLed::Unconfigured, ComLed::On),
            t0 + ms(250),
        );
        r.show(Display::ResetArmed, t0 + ms(30_000));
        let slow = tl(&r, t0, 30_000, 31_000);
        assert_eq!(
            slow,
            [
                (30_500, Prog, false),
                (30_500, App, false),
                (30_500, Com, false),
                (31_000, Prog, true),
                (31_000, App, true),
                (31_000, Com, true)
            ]
        );
        r.show(Display::ResetConfirmed, t0 + ms(40_000));
        let rapid = tl(&r, t0, 40_000, 40_200);
        assert_eq!(rapid.len(), 6);
        assert!(rapid.iter().all(|c| c.0 == 40_100 || c.0 == 40_200));
        assert_eq!(r.levels(t0 + ms(40_150)), lv(false, false, false));
        assert_eq!(r.levels(t0 + ms(40_250)), lv(true, true, true));
    }
}
