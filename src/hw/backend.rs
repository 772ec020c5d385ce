//! The hardware backends behind one small interface: on/off outputs (the three LEDs and the
//! RS485 termination switch) and the programming button's raw levels.
//!
//! [`open`] builds them from the board file: [`BackendKind::Simulated`] keeps everything in
//! memory ([`SimBoard`] lets the demo and tests read the LEDs and press the button);
//! [`BackendKind::Linux`] drives GPIO character-device lines (`gpiocdev`), kernel LED class
//! files (`brightness`) and reads an evdev input device (`gpio-keys`), whichever each line of
//! the board file names. A device node that is missing or refuses becomes a [`HwError`] in
//! [`Hardware::problems`] (logged by the caller); the rest of the board still works.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::leds::{Led, Levels};
use super::{BackendKind, Board};

/// A board device that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HwError {
    /// The device node does not exist.
    #[error("{what}: {} is missing", path.display())]
    Missing {
        /// Which part of the board.
        what: String,
        /// The device node.
        path: PathBuf,
    },
    /// The device exists but refused the request.
    #[error("{what}: {} refused: {reason}", path.display())]
    Refused {
        /// Which part of the board.
        what: String,
        /// The device node.
        path: PathBuf,
        /// The kernel's answer.
        reason: String,
    },
    /// The board file's wiring cannot be used on this system.
    #[error("{what}: {reason}")]
    Unsupported {
        /// Which part of the board.
        what: String,
        /// Why.
        reason: String,
    },
}

impl HwError {
    /// From an I/O error on `path`: missing or refused.
    pub fn io(what: &str, path: PathBuf, e: &std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            Self::Missing {
                what: what.to_owned(),
                path,
            }
        } else {
            Self::Refused {
                what: what.to_owned(),
                path,
                reason: e.to_string(),
            }
        }
    }
}

/// An on/off output: an LED or the termination switch.
pub trait Output: Send + fmt::Debug {
    /// Switches it (true = LED lit / switch closed).
    fn set(&mut self, on: bool) -> Result<(), HwError>;
}

/// The programming button's raw levels (true = pressed), unfiltered: contacts bounce.
#[derive(Debug)]
pub struct ButtonFeed {
    /// The level at start (power-on).
    pub initial: bool,
    /// Every level change from then on.
    pub levels: mpsc::UnboundedReceiver<bool>,
}

/// The board's outputs and inputs as opened.
#[derive(Debug, Default)]
pub struct Hardware {
    /// Programming, APP and COM LEDs (`None`: could not be opened).
    pub leds: [Option<Box<dyn Output>>; 3],
    /// The programming button.
    pub button: Option<ButtonFeed>,
    /// The 120 Ω termination switch.
    pub termination: Option<Box<dyn Output>>,
    /// What could not be opened.
    pub problems: Vec<HwError>,
}

impl Hardware {
    /// Sets the LEDs that are present; returns the errors.
    pub fn show(&mut self, levels: Levels) -> Vec<HwError> {
        let mut errors = Vec::new();
        for (led, out) in Led::ALL.iter().zip(self.leds.iter_mut()) {
            if let Some(out) = out {
                if let Err(e) = out.set(levels.get(*led)) {
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// Sets the termination switch (a missing one was already reported at open).
    pub fn set_termination(&mut self, on: bool) -> Result<(), HwError> {
        match &mut self.termination {
            Some(out) => out.set(on),
            None => Ok(()),
        }
    }
}

/// Opens the board's hardware with the backend its file names.
pub fn open(board: &Board) -> Hardware {
    match board.board.backend {
        BackendKind::Simulated => SimBoard::new(false).0,
        BackendKind::Linux => open_linux(board),
    }
}

#[cfg(target_os = "linux")]
fn open_linux(board: &Board) -> Hardware {
    super::linux::open(board)
}

#[cfg(not(target_os = "linux"))]
fn open_linux(_board: &Board) -> Hardware {
    Hardware {
        problems: vec![HwError::Unsupported {
            what: "board".to_owned(),
            reason: "the Linux backend needs Linux".to_owned(),
        }],
        ..Hardware::default()
    }
}

/// What the simulated board shows, shared with whoever looks at it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SimState {
    /// LED levels now.
    pub levels: Levels,
    /// Termination switch.
    pub termination: bool,
    /// Number of LED level changes so far.
    pub changes: u64,
}

/// The simulated board's other side: read the LEDs, press the button.
#[derive(Debug, Clone)]
pub struct SimBoard {
    state: Arc<Mutex<SimState>>,
    button: mpsc::UnboundedSender<bool>,
}

impl SimBoard {
    /// A simulated board (`pressed`: the button is held at power-on) and its other side.
    pub fn new(pressed: bool) -> (Hardware, SimBoard) {
        let state = Arc::new(Mutex::new(SimState::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let out = |led: Option<Led>| -> Option<Box<dyn Output>> {
            Some(Box::new(SimOutput {
                led,
                state: state.clone(),
            }))
        };
        let hw = Hardware {
            leds: [
                out(Some(Led::Prog)),
                out(Some(Led::App)),
                out(Some(Led::Com)),
            ],
            button: Some(ButtonFeed {
                initial: pressed,
                levels: rx,
            }),
            termination: out(None),
            problems: Vec::new(),
        };
        (hw, SimBoard { state, button: tx })
    }

    /// What the board shows now.
    pub fn state(&self) -> SimState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Sets the button's raw level.
    pub fn button(&self, pressed: bool) {
        let _ = self.button.send(pressed);
    }
}

#[derive(Debug)]
struct SimOutput {
    /// `None`: the termination switch.
    led: Option<Led>,
    state: Arc<Mutex<SimState>>,
}

impl Output for SimOutput {
    fn set(&mut self, on: bool) -> Result<(), HwError> {
        if let Ok(mut s) = self.state.lock() {
            match self.led {
                None => s.termination = on,
                Some(led) => {
                    let slot = match led {
                        Led::Prog => &mut s.levels.prog,
                        Led::App => &mut s.levels.app,
                        Led::Com => &mut s.levels.com,
                    };
                    if *slot != on {
                        *slot = on;
                        s.changes += 1;
                    }
                }
            }
        }
        Ok(())
    }
}
