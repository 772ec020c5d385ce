//! The front panel task: renders the LED state onto the board and turns the programming
//! button's raw levels into requests.
//!
//! Owns the async loop around the two sans-IO machines ([`Renderer`], [`Button`]): it feeds
//! them the instants of `tokio::time` (so tests can pause time), writes LED levels to the
//! backend's outputs when they change, and sends [`Request`]s to whoever runs the gateway.
//! The factory-reset signals of the button take the panel over until the sequence ends.

use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::backend::{ButtonFeed, Hardware};
use super::button::{Button, Output};
use super::leds::{Display, Leds, Levels, Renderer};

/// What the button asks the gateway for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Toggle programming mode (a short press).
    ToggleProgramming,
    /// Reset to factory settings (the sequence of ch. 8.3.5 was completed).
    FactoryReset,
}

/// The running panel.
#[derive(Debug)]
pub struct Panel {
    /// What the panel shows: `None` = starting up, then the core's LED state; the firmware
    /// displays of table 7 are sent as a [`Display`] through [`Panel::display`].
    pub leds: watch::Sender<Option<Leds>>,
    /// Overrides the core's state (firmware failures, table 7); `None` = the core's state.
    pub display: watch::Sender<Option<Display>>,
    /// Requests from the button.
    pub requests: mpsc::UnboundedReceiver<Request>,
    task: JoinHandle<()>,
}

impl Panel {
    /// Starts the panel on `hw` (takes its LEDs and button).
    pub fn spawn(hw: Hardware) -> Self {
        let (leds_tx, leds_rx) = watch::channel(None);
        let (display_tx, display_rx) = watch::channel(None);
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(hw, leds_rx, display_rx, req_tx));
        Self {
            leds: leds_tx,
            display: display_tx,
            requests: req_rx,
            task,
        }
    }

    /// Stops the panel.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn run(
    mut hw: Hardware,
    mut leds: watch::Receiver<Option<Leds>>,
    mut display: watch::Receiver<Option<Display>>,
    requests: mpsc::UnboundedSender<Request>,
) {
    let start = now();
    let mut renderer = Renderer::new(start);
    let (mut button, mut feed) = match hw.button.take() {
        Some(ButtonFeed { initial, levels }) => {
            if initial {
                info!("programming button held at power-on: factory-reset sequence begins");
            }
            (Some(Button::new(start, initial)), Some(levels))
        }
        None => (None, None),
    };
    let mut overlay: Option<Display> = None;
    let mut shown: Option<Levels> = None;
    let mut failing = false;
    let normal = |leds: &watch::Receiver<Option<Leds>>,
                  display: &watch::Receiver<Option<Display>>| {
        (*display.borrow())
            .or_else(|| leds.borrow().map(Display::Operating))
            .unwrap_or(Display::StartingUp)
    };
    renderer.show(normal(&leds, &display), start);
    loop {
        let t = now();
        let levels = renderer.levels(t);
        if shown != Some(levels) {
            for e in hw.show(levels) {
                // Logged once: the LEDs change several times a second.
                if !failing {
                    warn!(error = %e, "LED cannot be set (logged once)");
                }
                failing = true;
            }
            shown = Some(levels);
        }
        let due = [
            renderer.poll_timeout(t),
            button.as_ref().and_then(Button::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut outputs = Vec::new();
        tokio::select! {
            changed = leds.changed() => {
                if changed.is_err() { return; }
                if overlay.is_none() { renderer.show(normal(&leds, &display), now()); }
            }
            changed = display.changed() => {
                if changed.is_err() { return; }
                if overlay.is_none() { renderer.show(normal(&leds, &display), now()); }
            }
            level = async { match feed.as_mut() { Some(f) => f.recv().await, None => std::future::pending().await } } => {
                match (level, button.as_mut()) {
                    (Some(level), Some(b)) => outputs = b.input(level, now()),
                    _ => { feed = None; }
                }
            }
            () = async { match due { Some(d) => tokio::time::sleep_until(d.into()).await, None => std::future::pending().await } } => {
                if let Some(b) = button.as_mut() { outputs = b.handle_timeout(now()); }
            }
        }
        for output in outputs {
            match output {
                Output::ToggleProgramming => {
                    let _ = requests.send(Request::ToggleProgramming);
                }
                Output::FactoryReset => {
                    info!("factory-reset sequence completed at the programming button");
                    let _ = requests.send(Request::FactoryReset);
                }
                Output::Show(Some(d)) => {
                    info!(display = ?d, "factory-reset sequence: LEDs signal the next step");
                    overlay = Some(d);
                    renderer.show(d, now());
                }
                Output::Show(None) => {
                    if overlay.take().is_some() {
                        renderer.show(normal(&leds, &display), now());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hw::backend::SimBoard;
    use crate::hw::leds::{AppLed, ComLed};

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_panel_shows_start_up_then_the_cores_state_and_flashes() {
        let (hw, sim) = SimBoard::new(false);
        let panel = Panel::spawn(hw);
        settle().await;
        let s = sim.state();
        assert_eq!((s.levels.app, s.levels.com), (false, true), "starting up");
        panel.leds.send_replace(Some(Leds {
            prog: true,
            app: AppLed::Unconfigured,
            com: ComLed::On,
        }));
        settle().await;
        assert!(sim.state().levels.prog && sim.state().levels.app);
        tokio::time::sleep(Duration::from_millis(600)).await;
        settle().await;
        assert!(!sim.state().levels.app, "slow flashing: dark after 500 ms");
        tokio::time::sleep(Duration::from_millis(500)).await;
        settle().await;
        assert!(sim.state().levels.app);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_press_asks_to_toggle_programming_mode() {
        let (hw, sim) = SimBoard::new(false);
        let mut panel = Panel::spawn(hw);
        settle().await;
        sim.button(true);
        settle().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        sim.button(false);
        settle().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            panel.requests.recv().await,
            Some(Request::ToggleProgramming)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_reset_sequence_takes_the_panel_over_and_asks_for_a_reset() {
        let (hw, sim) = SimBoard::new(true);
        let mut panel = Panel::spawn(hw);
        panel.leds.send_replace(Some(Leds {
            prog: false,
            app: AppLed::On,
            com: ComLed::On,
        }));
        tokio::time::sleep(Duration::from_millis(30_100)).await;
        settle().await;
        assert_eq!(
            sim.state().levels,
            Levels {
                prog: true,
                app: true,
                com: true
            }
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        settle().await;
        assert_eq!(
            sim.state().levels,
            Levels::default(),
            "all three flash together"
        );
        sim.button(false);
        settle().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        sim.button(true);
        settle().await;
        tokio::time::sleep(Duration::from_millis(5_100)).await;
        settle().await;
        let before = sim.state().changes;
        tokio::time::sleep(Duration::from_secs(1)).await;
        settle().await;
        assert!(
            sim.state().changes >= before + 9,
            "rapid flashing of three LEDs"
        );
        sim.button(false);
        settle().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(panel.requests.recv().await, Some(Request::FactoryReset));
        settle().await;
        assert_eq!(
            sim.state().levels,
            Levels {
                prog: false,
                app: true,
                com: true
            },
            "the normal display returns"
        );
    }
}
