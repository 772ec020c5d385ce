//! The Linux backend: GPIO character-device lines (`gpiocdev`), kernel LED class files and
//! evdev input devices, as the board file names them.
//!
//! Kernel interfaces used (Documentation/ in the kernel tree): the GPIO character device v2
//! uAPI (`userspace-api/gpio/chardev.rst`) through gpiocdev; the LED class
//! (`leds/leds-class.rst`: writing 0 … `max_brightness` to `brightness`); the input event
//! interface (`input/input.rst`, `struct input_event` from `include/uapi/linux/input.h`:
//! a `timeval` of two `long`s, then `__u16 type`, `__u16 code`, `__s32 value`; `EV_KEY` = 1,
//! value 1 = pressed, 0 = released, 2 = autorepeat). `gpio-keys` reports a key held when the
//! device is opened with an event right away (`gpio_keys_open` → report state), which is how
//! a button held at power-on is seen.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gpiocdev::line::{EdgeDetection, EdgeKind, Value};
use gpiocdev::request::Request;
use tokio::sync::mpsc;

use super::backend::{ButtonFeed, Hardware, HwError, Output};
use super::{Board, GpioLine, Wiring};

/// Consumer label of the requested GPIO lines (shown by `gpioinfo`).
const CONSUMER: &str = "knx-echarge";
/// `EV_KEY` (include/uapi/linux/input-event-codes.h).
const EV_KEY: u16 = 1;
/// How long to wait at open for the report of a key already held.
const INITIAL_WAIT: Duration = Duration::from_millis(100);

/// Opens everything the board file names; what fails is listed in `problems`.
pub(super) fn open(board: &Board) -> Hardware {
    let mut hw = Hardware::default();
    let leds = [
        (&board.led.prog, "Programming LED"),
        (&board.led.app, "APP LED"),
        (&board.led.com, "COM LED"),
    ];
    for (slot, (line, what)) in hw.leds.iter_mut().zip(leds) {
        match output(line, what) {
            Ok(out) => *slot = Some(out),
            Err(e) => hw.problems.push(e),
        }
    }
    match output(&board.rs485_termination, "RS485 termination") {
        Ok(out) => hw.termination = Some(out),
        Err(e) => hw.problems.push(e),
    }
    match button(&board.button.prog, "Programming button") {
        Ok(feed) => hw.button = Some(feed),
        Err(e) => hw.problems.push(e),
    }
    hw
}

fn wiring(line: &GpioLine, what: &str) -> Result<Wiring, HwError> {
    line.wiring(what).map_err(|reason| HwError::Unsupported {
        what: what.to_owned(),
        reason,
    })
}

/// An LED or switch output.
pub(super) fn output(line: &GpioLine, what: &str) -> Result<Box<dyn Output>, HwError> {
    match wiring(line, what)? {
        Wiring::Gpio {
            chip,
            line,
            active_low,
        } => Ok(Box::new(GpioOutput::open(&chip, line, active_low, what)?)),
        Wiring::LedClass(dir) => Ok(Box::new(LedClass::open(&dir, what)?)),
        Wiring::Input { .. } => Err(HwError::Unsupported {
            what: what.to_owned(),
            reason: "an input device cannot be an output".to_owned(),
        }),
    }
}

/// The programming button.
pub(super) fn button(line: &GpioLine, what: &str) -> Result<ButtonFeed, HwError> {
    match wiring(line, what)? {
        Wiring::Gpio {
            chip,
            line,
            active_low,
        } => gpio_button(&chip, line, active_low, what),
        Wiring::Input { device, code } => {
            let file = File::open(&device).map_err(|e| HwError::io(what, device.clone(), &e))?;
            Ok(evdev_button(file, code, what))
        }
        Wiring::LedClass(_) => Err(HwError::Unsupported {
            what: what.to_owned(),
            reason: "an LED class directory cannot be a button".to_owned(),
        }),
    }
}

fn gpio_error(what: &str, chip: &Path, e: &gpiocdev::Error) -> HwError {
    if chip.exists() {
        HwError::Refused {
            what: what.to_owned(),
            path: chip.to_owned(),
            reason: e.to_string(),
        }
    } else {
        HwError::Missing {
            what: what.to_owned(),
            path: chip.to_owned(),
        }
    }
}

#[derive(Debug)]
struct GpioOutput {
    request: Request,
    line: u32,
    what: String,
    chip: PathBuf,
}

impl GpioOutput {
    fn open(chip: &Path, line: u32, active_low: bool, what: &str) -> Result<Self, HwError> {
        let mut builder = Request::builder();
        builder
            .on_chip(chip)
            .with_consumer(CONSUMER)
            .with_line(line)
            .as_output(Value::Inactive);
        if active_low {
            builder.as_active_low();
        }
        let request = builder.request().map_err(|e| gpio_error(what, chip, &e))?;
        Ok(Self {
            request,
            line,
            what: what.to_owned(),
            chip: chip.to_owned(),
        })
    }
}

impl Output for GpioOutput {
    fn set(&mut self, on: bool) -> Result<(), HwError> {
        let value = if on { Value::Active } else { Value::Inactive };
        self.request
            .set_value(self.line, value)
            .map_err(|e| gpio_error(&self.what, &self.chip, &e))
    }
}

fn gpio_button(
    chip: &Path,
    line: u32,
    active_low: bool,
    what: &str,
) -> Result<ButtonFeed, HwError> {
    let mut builder = Request::builder();
    builder
        .on_chip(chip)
        .with_consumer(CONSUMER)
        .with_line(line)
        .as_input()
        .with_edge_detection(EdgeDetection::BothEdges);
    if active_low {
        builder.as_active_low();
    }
    let request = builder.request().map_err(|e| gpio_error(what, chip, &e))?;
    let initial = request
        .value(line)
        .map_err(|e| gpio_error(what, chip, &e))?
        == Value::Active;
    let (tx, rx) = mpsc::unbounded_channel();
    let what = what.to_owned();
    std::thread::Builder::new()
        .name("button".to_owned())
        .spawn(move || {
            loop {
                match request.read_edge_event() {
                    Ok(event) => {
                        if tx.send(event.kind == EdgeKind::Rising).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!(%what, error = %e, "button line failed; the button is ignored from now on");
                        return;
                    }
                }
            }
        })
        .map_err(|e| HwError::Refused {
            what: "button thread".to_owned(),
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
    Ok(ButtonFeed {
        initial,
        levels: rx,
    })
}

/// A kernel LED class directory: `brightness` written with 0 or `max_brightness`.
#[derive(Debug)]
pub(super) struct LedClass {
    path: PathBuf,
    max: String,
    what: String,
}

impl LedClass {
    pub(super) fn open(dir: &Path, what: &str) -> Result<Self, HwError> {
        let path = dir.join("brightness");
        // Opening for writing checks that it is there and writable.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| HwError::io(what, path.clone(), &e))?;
        let max = std::fs::read_to_string(dir.join("max_brightness"))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| "1".to_owned());
        Ok(Self {
            path,
            max,
            what: what.to_owned(),
        })
    }
}

impl Output for LedClass {
    fn set(&mut self, on: bool) -> Result<(), HwError> {
        let text = if on { self.max.as_str() } else { "0" };
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| HwError::io(&self.what, self.path.clone(), &e))
    }
}

/// Size of `struct input_event`: a `timeval` of two `long`s (also with the 64-bit time ABI of
/// 32-bit systems, which uses `__kernel_ulong_t`), two `__u16`, one `__s32`.
pub(super) const INPUT_EVENT_SIZE: usize = 2 * std::mem::size_of::<std::ffi::c_long>() + 8;

/// One key event from an `input_event` record: `Some(pressed)` for `code`, `None` otherwise
/// (other types, other keys, autorepeat).
pub(super) fn key_event(record: &[u8], code: u16) -> Option<bool> {
    let at = INPUT_EVENT_SIZE - 8;
    let tail = record.get(at..at + 8)?;
    let kind = u16::from_ne_bytes([*tail.first()?, *tail.get(1)?]);
    let key = u16::from_ne_bytes([*tail.get(2)?, *tail.get(3)?]);
    let value = i32::from_ne_bytes([*tail.get(4)?, *tail.get(5)?, *tail.get(6)?, *tail.get(7)?]);
    (kind == EV_KEY && key == code && (value == 0 || value == 1)).then_some(value == 1)
}

/// Reads key events for `code` from an input device (or anything that gives `input_event`
/// records, e.g. a pipe in tests) on a thread. A key held at open is reported by gpio-keys
/// at once: the first event within [`INITIAL_WAIT`] sets the initial level.
pub(super) fn evdev_button<R: Read + Send + 'static>(
    mut input: R,
    code: u16,
    what: &str,
) -> ButtonFeed {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let what = what.to_owned();
    let spawned = std::thread::Builder::new()
        .name("button".to_owned())
        .spawn(move || {
            let mut record = [0_u8; INPUT_EVENT_SIZE];
            loop {
                if let Err(e) = input.read_exact(&mut record) {
                    tracing::error!(%what, error = %e, "button input device failed; the button is ignored from now on");
                    return;
                }
                if let Some(pressed) = key_event(&record, code) {
                    if tx.send(pressed).is_err() {
                        return;
                    }
                }
            }
        });
    if spawned.is_err() {
        tracing::error!("cannot start the button thread");
    }
    // The initial level: a press reported right after opening.
    let deadline = std::time::Instant::now() + INITIAL_WAIT;
    let mut initial = false;
    let mut early = Vec::new();
    while std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Ok(level) => early.push(level),
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(5)),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
    }
    if let Some(first) = early.first() {
        initial = *first;
    }
    // Changes after the first report are replayed.
    let (replay, levels) = mpsc::unbounded_channel();
    for level in early.into_iter().skip(1) {
        let _ = replay.send(level);
    }
    std::thread::spawn(move || {
        while let Some(level) = rx.blocking_recv() {
            if replay.send(level).is_err() {
                return;
            }
        }
    });
    ButtonFeed { initial, levels }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut r = vec![0_u8; INPUT_EVENT_SIZE - 8];
        r.extend(kind.to_ne_bytes());
        r.extend(code.to_ne_bytes());
        r.extend(value.to_ne_bytes());
        r
    }

    const KEY_PROG1: u16 = 148;

    #[test]
    fn input_event_records_are_read_as_the_kernel_writes_them() {
        assert_eq!(INPUT_EVENT_SIZE, 24, "x86-64 / aarch64 layout");
        assert_eq!(key_event(&record(1, KEY_PROG1, 1), KEY_PROG1), Some(true));
        assert_eq!(key_event(&record(1, KEY_PROG1, 0), KEY_PROG1), Some(false));
        assert_eq!(
            key_event(&record(1, KEY_PROG1, 2), KEY_PROG1),
            None,
            "autorepeat"
        );
        assert_eq!(key_event(&record(0, 0, 0), KEY_PROG1), None, "EV_SYN");
        assert_eq!(key_event(&record(1, 30, 1), KEY_PROG1), None, "another key");
        assert_eq!(key_event(&[1, 2, 3], KEY_PROG1), None, "short");
    }

    fn fifo(dir: &Path) -> PathBuf {
        let path = dir.join("event0");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        path
    }

    /// Writes records to a FIFO as the kernel's evdev would (key, then EV_SYN).
    fn press(w: &mut File, pressed: bool) {
        let mut bytes = record(1, KEY_PROG1, i32::from(pressed));
        bytes.extend(record(0, 0, 0));
        w.write_all(&bytes).unwrap();
    }

    #[tokio::test]
    async fn an_evdev_button_from_a_pipe_reports_presses_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || OpenOptions::new().write(true).open(path).unwrap())
        };
        let mut line = GpioLine::for_input(&path, KEY_PROG1);
        line.label = "Programming".to_owned();
        let feed = tokio::task::spawn_blocking(move || button(&line, "button"))
            .await
            .unwrap()
            .unwrap();
        let mut w = writer.join().unwrap();
        assert!(!feed.initial);
        let mut levels = feed.levels;
        press(&mut w, true);
        press(&mut w, false);
        assert_eq!(levels.recv().await, Some(true));
        assert_eq!(levels.recv().await, Some(false));
    }

    #[tokio::test]
    async fn a_key_reported_at_open_is_held_at_power_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        let p = path.clone();
        let writer = std::thread::spawn(move || {
            let mut w = OpenOptions::new().write(true).open(p).unwrap();
            press(&mut w, true);
            w
        });
        let line = GpioLine::for_input(&path, KEY_PROG1);
        let feed = tokio::task::spawn_blocking(move || button(&line, "button"))
            .await
            .unwrap()
            .unwrap();
        assert!(feed.initial);
        let mut w = writer.join().unwrap();
        press(&mut w, false);
        let mut levels = feed.levels;
        assert_eq!(levels.recv().await, Some(false));
    }

    #[test]
    fn led_class_files_get_max_brightness_or_zero() {
        let dir = tempfile::tempdir().unwrap();
        let led = dir.path().join("red:prog");
        std::fs::create_dir(&led).unwrap();
        std::fs::write(led.join("brightness"), "0\n").unwrap();
        std::fs::write(led.join("max_brightness"), "255\n").unwrap();
        let mut out = output(&GpioLine::for_class(&led), "Programming LED").unwrap();
        out.set(true).unwrap();
        assert_eq!(
            std::fs::read_to_string(led.join("brightness")).unwrap(),
            "255"
        );
        out.set(false).unwrap();
        assert_eq!(
            std::fs::read_to_string(led.join("brightness")).unwrap(),
            "0"
        );
    }

    #[test]
    fn missing_devices_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = output(&GpioLine::for_class(&dir.path().join("nope")), "APP LED").unwrap_err();
        assert!(matches!(err, HwError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("APP LED"), "{err}");
        let err = button(
            &GpioLine::for_input(&dir.path().join("event9"), 148),
            "Programming button",
        )
        .unwrap_err();
        assert!(err.to_string().contains("event9 is missing"), "{err}");
        let gpio = GpioLine::for_gpio(&dir.path().join("gpiochip7"), 3, false);
        let err = output(&gpio, "COM LED").unwrap_err();
        assert!(err.to_string().contains("gpiochip7 is missing"), "{err}");
        // A file that is not a GPIO chip refuses.
        std::fs::write(dir.path().join("gpiochip7"), "").unwrap();
        let err = output(&gpio, "COM LED").unwrap_err();
        assert!(matches!(err, HwError::Refused { .. }), "{err}");
    }
}
