//! The board as data: `hw/board.toml` (embedded default, or a file given with `--board`).
//!
//! Owns the description only: serial devices for the TP-UART and RS485, the GPIO lines of the
//! three LEDs (Programming red, APP green, COM yellow), the programming button and the RS485
//! termination, and the data directory. Nothing here drives the hardware.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod button;
pub mod leds;

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
    /// Direction switching by the kernel's RS485 mode.
    pub kernel_rs485: bool,
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

/// One GPIO line.
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
    pub chip: PathBuf,
    /// Line offset on the chip.
    pub line: u32,
    /// Active low.
    pub active_low: bool,
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
}

impl Board {
    /// Parses a board description.
    pub fn parse(text: &str, origin: &str) -> Result<Self, BoardError> {
        toml::from_str(text).map_err(|source| BoardError::Parse {
            path: origin.to_owned(),
            source,
        })
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
}
