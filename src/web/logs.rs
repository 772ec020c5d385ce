//! Logging for the website's log download (spec ch. 11.2): a ring buffer of recent log lines
//! next to stderr, and the logging mode (Simple = `info`, Extended = `debug`) switched at run
//! time through a `tracing_subscriber::reload` handle.
//!
//! [`init`] installs the global subscriber once (the binary calls it instead of a plain
//! `fmt().init()`); [`LogControl::global`] is what the website uses. Without [`init`] (tests
//! of the router) the website still works: the ZIP holds an empty log and the mode is
//! remembered but changes nothing.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// How much log text the ring buffer keeps.
const RING_BYTES: usize = 4 * 1024 * 1024;

/// The logging mode of the device website.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogMode {
    /// Basic information (`info`).
    #[default]
    Simple,
    /// Detailed information (`debug`); costs performance.
    Extended,
}

impl LogMode {
    /// The tracing filter of the mode.
    pub fn filter(self) -> &'static str {
        match self {
            Self::Simple => "info",
            Self::Extended => "debug",
        }
    }
}

/// Recent log lines, oldest first.
#[derive(Debug, Clone, Default)]
pub struct LogRing {
    inner: Arc<Mutex<RingInner>>,
}

#[derive(Debug, Default)]
struct RingInner {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl LogRing {
    /// Appends raw log output.
    pub fn push(&self, chunk: &[u8]) {
        let Ok(mut r) = self.inner.lock() else { return };
        r.bytes += chunk.len();
        r.lines.push_back(chunk.to_vec());
        while r.bytes > RING_BYTES {
            match r.lines.pop_front() {
                Some(old) => r.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Everything kept, as one text.
    pub fn contents(&self) -> Vec<u8> {
        self.inner
            .lock()
            .map(|r| r.lines.iter().flatten().copied().collect())
            .unwrap_or_default()
    }
}

/// A writer into the ring (one per event, as `MakeWriter` hands them out).
#[derive(Debug)]
pub struct RingWriter(LogRing);

impl Write for RingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogRing {
    type Writer = RingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RingWriter(self.clone())
    }
}

/// The ring and the mode switch.
#[derive(Debug)]
pub struct LogControl {
    ring: LogRing,
    reload: Option<reload::Handle<EnvFilter, Registry>>,
    mode: Mutex<LogMode>,
    /// `RUST_LOG` was set: it wins over the mode at start.
    env_override: bool,
}

static GLOBAL: OnceLock<Arc<LogControl>> = OnceLock::new();

/// Installs the global subscriber: stderr and the ring, filtered by `RUST_LOG` or `info`.
pub fn init() {
    let ring = LogRing::default();
    let from_env = EnvFilter::try_from_default_env().ok();
    let env_override = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(LogMode::Simple.filter()));
    let (filter, handle) = reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(ring.clone()),
        )
        .try_init()
        .is_ok();
    let _ = GLOBAL.set(Arc::new(LogControl {
        ring,
        reload: installed.then_some(handle),
        mode: Mutex::new(LogMode::Simple),
        env_override,
    }));
}

impl LogControl {
    /// The control installed by [`init`], or a detached one (no subscriber).
    pub fn global() -> Arc<Self> {
        GLOBAL
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::new(Self::detached()))
    }

    /// A control with no subscriber behind it (tests).
    pub fn detached() -> Self {
        Self {
            ring: LogRing::default(),
            reload: None,
            mode: Mutex::new(LogMode::Simple),
            env_override: false,
        }
    }

    /// The ring buffer.
    pub fn ring(&self) -> &LogRing {
        &self.ring
    }

    /// The mode in force.
    pub fn mode(&self) -> LogMode {
        self.mode.lock().map(|m| *m).unwrap_or_default()
    }

    /// Switches the mode (at start: only if `RUST_LOG` did not choose a filter).
    pub fn set_mode(&self, mode: LogMode, at_start: bool) {
        if let Ok(mut m) = self.mode.lock() {
            *m = mode;
        }
        if at_start && self.env_override {
            return;
        }
        if let Some(handle) = &self.reload {
            if let Err(e) = handle.reload(EnvFilter::new(mode.filter())) {
                tracing::warn!("cannot switch the logging mode: {e}");
            }
        }
    }
}
