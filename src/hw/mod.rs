//! The board: its description (`hw/board.toml`, embedded default, or a file given with
//! `--board`) and what drives it.
//!
//! Owns the description (serial devices for the TP-UART and RS485, how the three LEDs —
//! Programming red, APP green, COM yellow —, the programming button and the RS485 termination
//! are wired, the data directory) and, in submodules, the LED patterns ([`leds`]), the
//! programming button ([`button`]), the hardware backends ([`backend`]: simulated, or Linux
//! GPIO character device / LED class / evdev, chosen by the board file), the RS485 mode
//! ([`rs485`]) and the task that runs the front panel ([`panel`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod backend;
pub mod button;
pub mod leds;
#[cfg(target_os = "linux")]
mod linux;
pub mod network;
pub mod panel;
pub mod rs485;
pub mod watchdog;

/// The embedded default board description.
pub const BOARD_TOML: &str = include_str!("../../hw/board.toml");

/// Board identity.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BoardInfo {
    /// Product name.
    pub name: String,
    /// Hardware revision.
    pub revision: String,
    /// What drives the LEDs, the button and the termination line.
    #[serde(default)]
    pub backend: BackendKind,
}

/// The hardware backend a board file names.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The kernel's GPIO character device, LED class and input devices.
    #[default]
    Linux,
    /// Nothing is driven: levels are kept in memory (demo, tests, a PC).
    Simulated,
}

/// The TP-UART serial port.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TpUartPort {
    /// Device path.
    pub device: PathBuf,
    /// Baud rate.
    pub baud: u32,
}

/// The RS485 serial port.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rs485Port {
    /// Device path.
    pub device: PathBuf,
    /// Direction switching by the kernel's RS485 mode (`TIOCSRS485`).
    pub kernel_rs485: bool,
    /// RTS level while sending is high (`SER_RS485_RTS_ON_SEND`); otherwise low.
    #[serde(default = "yes")]
    pub rts_on_send: bool,
    /// RTS level after sending is high (`SER_RS485_RTS_AFTER_SEND`).
    #[serde(default)]
    pub rts_after_send: bool,
    /// Delay between RTS and the first bit, ms.
    #[serde(default)]
    pub delay_rts_before_send_ms: u32,
    /// Delay between the last bit and RTS, ms.
    #[serde(default)]
    pub delay_rts_after_send_ms: u32,
}

fn yes() -> bool {
    true
}

/// Serial ports.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SerialPorts {
    /// KNX/TP transceiver.
    pub tpuart: TpUartPort,
    /// Modbus line.
    pub rs485: Rs485Port,
}

/// One LED, button or switch line: either a GPIO line (`chip` and `line`), or for an LED a
/// kernel LED class directory (`class`, e.g. `/sys/class/leds/red:prog`), or for the button
/// an evdev input device of `gpio-keys` (`input` and `code`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    /// Label on the front panel.
    #[serde(default)]
    pub label: String,
    /// LED colour.
    #[serde(default)]
    pub color: Option<String>,
    /// GPIO chip device.
    #[serde(default)]
    pub chip: Option<PathBuf>,
    /// Line offset on the chip.
    #[serde(default)]
    pub line: Option<u32>,
    /// Active low.
    #[serde(default)]
    pub active_low: bool,
    /// LED class directory (LEDs only).
    #[serde(default)]
    pub class: Option<PathBuf>,
    /// Input event device (button only).
    #[serde(default)]
    pub input: Option<PathBuf>,
    /// Key code the input device reports for the button (e.g. 148, KEY_PROG1).
    #[serde(default)]
    pub code: Option<u16>,
}

/// How a line is wired, resolved from a [`GpioLine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wiring {
    /// A GPIO character device line.
    Gpio {
        /// Chip device.
        chip: PathBuf,
        /// Offset.
        line: u32,
        /// Active low.
        active_low: bool,
    },
    /// A kernel LED class directory.
    LedClass(PathBuf),
    /// An evdev input device and key code.
    Input {
        /// Device node.
        device: PathBuf,
        /// Key code.
        code: u16,
    },
}

impl GpioLine {
    fn empty() -> Self {
        Self {
            label: String::new(),
            color: None,
            chip: None,
            line: None,
            active_low: false,
            class: None,
            input: None,
            code: None,
        }
    }

    /// A GPIO character-device line.
    pub fn for_gpio(chip: &Path, line: u32, active_low: bool) -> Self {
        Self {
            chip: Some(chip.to_owned()),
            line: Some(line),
            active_low,
            ..Self::empty()
        }
    }

    /// A kernel LED class directory.
    pub fn for_class(dir: &Path) -> Self {
        Self {
            class: Some(dir.to_owned()),
            ..Self::empty()
        }
    }

    /// An evdev input device and key code.
    pub fn for_input(device: &Path, code: u16) -> Self {
        Self {
            input: Some(device.to_owned()),
            code: Some(code),
            ..Self::empty()
        }
    }

    /// How it is wired; `what` names it in the error.
    pub fn wiring(&self, what: &str) -> Result<Wiring, String> {
        match (&self.chip, self.line, &self.class, &self.input, self.code) {
            (Some(chip), Some(line), None, None, None) => Ok(Wiring::Gpio {
                chip: chip.clone(),
                line,
                active_low: self.active_low,
            }),
            (None, None, Some(class), None, None) => Ok(Wiring::LedClass(class.clone())),
            (None, None, None, Some(device), Some(code)) => Ok(Wiring::Input {
                device: device.clone(),
                code,
            }),
            _ => Err(format!(
                "{what}: give either chip and line, or class (an LED), or input and code (the button)"
            )),
        }
    }
}

/// The three front-panel LEDs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Leds {
    /// Programming (red).
    pub prog: GpioLine,
    /// APP (green).
    pub app: GpioLine,
    /// COM (yellow).
    pub com: GpioLine,
}

/// Buttons.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Buttons {
    /// Programming button.
    pub prog: GpioLine,
}

/// Data directory.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Default data directory.
    pub dir: PathBuf,
}

/// The board.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Identity.
    pub board: BoardInfo,
    /// Serial ports.
    pub serial: SerialPorts,
    /// LEDs.
    pub led: Leds,
    /// Buttons.
    pub button: Buttons,
    /// RS485 termination switch.
    pub rs485_termination: GpioLine,
    /// Data directory.
    pub data: DataSection,
    /// The Ethernet interface the IP settings apply to.
    #[serde(default)]
    pub network: NetworkSection,
}

/// The network interface.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Interface name (systemd-networkd `[Match] Name=`, globs allowed).
    pub interface: String,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            interface: "eth0".to_owned(),
        }
    }
}

/// A board file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// Unreadable file.
    #[error("cannot read board file {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a valid board description.
    #[error("board file {path}: {source}")]
    Parse {
        /// Path.
        path: String,
        /// Cause (with line and column).
        source: toml::de::Error,
    },
    /// A line's wiring is incomplete or does not fit.
    #[error("board file {path}: {problem}")]
    Wiring {
        /// Path.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

impl Board {
    /// Parses a board description.
    pub fn parse(text: &str, origin: &str) -> Result<Self, BoardError> {
        let board: Self = toml::from_str(text).map_err(|source| BoardError::Parse {
            path: origin.to_owned(),
            source,
        })?;
        let lines = [
            (&board.led.prog, "led.prog", false),
            (&board.led.app, "led.app", false),
            (&board.led.com, "led.com", false),
            (&board.button.prog, "button.prog", true),
            (&board.rs485_termination, "rs485_termination", false),
        ];
        for (line, what, is_button) in lines {
            let wiring = line.wiring(what);
            let fits = match &wiring {
                Ok(Wiring::Gpio { .. }) => true,
                Ok(Wiring::LedClass(_)) => what.starts_with("led."),
                Ok(Wiring::Input { .. }) => is_button,
                Err(_) => false,
            };
            if !fits {
                return Err(BoardError::Wiring {
                    path: origin.to_owned(),
                    problem: wiring.err().unwrap_or_else(|| {
                        format!("{what}: this kind of wiring does not fit this line")
                    }),
                });
            }
        }
        Ok(board)
    }

    /// The embedded default board.
    pub fn builtin() -> Result<Self, BoardError> {
        Self::parse(BOARD_TOML, "hw/board.toml (built in)")
    }

    /// Reads a board file.
    pub fn load(path: &Path) -> Result<Self, BoardError> {
        let text = std::fs::read_to_string(path).map_err(|source| BoardError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The same board with the simulated backend (demo, tests).
    #[must_use]
    pub fn simulated(mut self) -> Self {
        self.board.backend = BackendKind::Simulated;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_board_describes_leds_button_and_ports() {
        let b = Board::builtin().unwrap();
        assert_eq!(b.led.prog.color.as_deref(), Some("red"));
        assert_eq!(b.led.app.color.as_deref(), Some("green"));
        assert_eq!(b.led.com.color.as_deref(), Some("yellow"));
        assert!(b.button.prog.active_low);
        assert_ne!(b.serial.tpuart.device, b.serial.rs485.device);
    }

    #[test]
    fn bad_board_file_names_the_problem() {
        let err = Board::parse("[board]\nname = 1\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml"), "{err}");
    }

    #[test]
    fn leds_may_be_led_class_files_and_the_button_an_input_device() {
        let text = BOARD_TOML
            .replace(
                "chip = \"/dev/gpiochip0\"\nline = 18",
                "class = \"/sys/class/leds/green:app\"",
            )
            .replace(
                "chip = \"/dev/gpiochip0\"\nline = 20\nactive_low = true",
                "input = \"/dev/input/event0\"\ncode = 148",
            );
        let b = Board::parse(&text, "t").unwrap();
        assert_eq!(
            b.led.app.wiring("app").unwrap(),
            Wiring::LedClass("/sys/class/leds/green:app".into())
        );
        assert_eq!(
            b.button.prog.wiring("b").unwrap(),
            Wiring::Input {
                device: "/dev/input/event0".into(),
                code: 148
            }
        );
        // An LED cannot be an input device, nor a line half given.
        let bad = BOARD_TOML.replace(
            "chip = \"/dev/gpiochip0\"\nline = 18",
            "input = \"/dev/input/event0\"\ncode = 148",
        );
        let err = Board::parse(&bad, "t").unwrap_err().to_string();
        assert!(err.contains("led.app"), "{err}");
        let bad = BOARD_TOML.replace("line = 19\n", "");
        let err = Board::parse(&bad, "t").unwrap_err().to_string();
        assert!(err.contains("led.com"), "{err}");
    }
}
