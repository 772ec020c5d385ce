//! Logging for the website's log download (spec ch. 11.2): a ring buffer of recent log lines
//! next to stderr, and the logging mode (Simple = `info`, Extended = `debug`) switched at run
//! time through a `tracing_subscriber::reload` handle.
//!
//! A flood must not wipe the log (issue 17, point 3):
//! * [`RateLimit`] lets through at most [`BURST`] messages per [`WINDOW`] from one call site
//!   and source (the `client`/`from`/`peer` field's address); the rest are counted and
//!   reported as one "N similar messages suppressed" line when the window is over.
//! * The ring keeps three parts ([`LogRing`]): the first [`START_BYTES`] of output (the
//!   start-up), the last [`IMPORTANT_BYTES`] of important entries (target [`SECURITY`]:
//!   logins, lockouts, password changes, factory resets; `knx_echarge::faults`: faults raised
//!   and cleared; errors), and the last `RING_BYTES` of everything else. The download
//!   merges them in order, so routine lines are the only ones a flood pushes out.
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

/// How much routine log text the ring buffer keeps.
const RING_BYTES: usize = 4 * 1024 * 1024;

/// How much of the first log output (the start-up) is kept for good.
pub const START_BYTES: usize = 64 * 1024;

/// How much important log text (security, faults, errors) is kept apart from the routine.
pub const IMPORTANT_BYTES: usize = 1024 * 1024;

/// The log target of security events (logins, lockouts, password changes, factory resets).
pub const SECURITY: &str = "security";

/// Messages per call site and source let through in one [`WINDOW`].
pub const BURST: u32 = 10;

/// The rate limit's window.
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Most call-site/source pairs tracked; beyond, sources share one count per call site.
const MAX_KEYS: usize = 512;

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

/// Recent log lines, oldest first, in three parts (start-up, important, routine).
#[derive(Debug, Clone, Default)]
pub struct LogRing {
    inner: Arc<Mutex<RingInner>>,
}

#[derive(Debug, Default)]
struct RingInner {
    seq: u64,
    start: Vec<(u64, Vec<u8>)>,
    start_bytes: usize,
    start_full: bool,
    important: Part,
    routine: Part,
}

#[derive(Debug, Default)]
struct Part {
    lines: VecDeque<(u64, Vec<u8>)>,
    bytes: usize,
    dropped: u64,
}

impl Part {
    fn push(&mut self, seq: u64, chunk: &[u8], limit: usize) {
        self.bytes += chunk.len();
        self.lines.push_back((seq, chunk.to_vec()));
        while self.bytes > limit {
            match self.lines.pop_front() {
                Some((_, old)) => {
                    self.bytes -= old.len();
                    self.dropped += 1;
                }
                None => break,
            }
        }
    }
}

impl LogRing {
    /// Appends raw routine log output.
    pub fn push(&self, chunk: &[u8]) {
        self.push_as(chunk, false);
    }

    /// Appends raw log output; `important` entries are kept apart from routine ones.
    pub fn push_as(&self, chunk: &[u8], important: bool) {
        let Ok(mut r) = self.inner.lock() else { return };
        r.seq += 1;
        let seq = r.seq;
        if !r.start_full && r.start_bytes + chunk.len() > START_BYTES {
            r.start_full = true;
        }
        if !r.start_full {
            r.start_bytes += chunk.len();
            r.start.push((seq, chunk.to_vec()));
        } else if important {
            r.important.push(seq, chunk, IMPORTANT_BYTES);
        } else {
            r.routine.push(seq, chunk, RING_BYTES);
        }
    }

    /// Everything kept, as one text in the order it was logged; a note says where routine
    /// lines were dropped.
    pub fn contents(&self) -> Vec<u8> {
        let Ok(r) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(r.start_bytes + r.important.bytes + r.routine.bytes + 200);
        for (_, line) in &r.start {
            out.extend_from_slice(line);
        }
        if r.routine.dropped + r.important.dropped > 0 {
            out.extend_from_slice(
                format!(
                    "… {} older routine and {} older important log entries dropped …\n",
                    r.routine.dropped, r.important.dropped
                )
                .as_bytes(),
            );
        }
        let (mut a, mut b) = (
            r.important.lines.iter().peekable(),
            r.routine.lines.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(_) | None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => break,
            };
            if let Some((_, line)) = next {
                out.extend_from_slice(line);
            }
        }
        out
    }
}

/// A writer into the ring (one per event, as `MakeWriter` hands them out).
#[derive(Debug)]
pub struct RingWriter(LogRing, bool);

impl Write for RingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.push_as(buf, self.1);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether an event of `meta` is kept with the important entries.
pub fn is_important(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == SECURITY
        || meta.target().starts_with("knx_echarge::faults")
        || *meta.level() == tracing::Level::ERROR
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogRing {
    type Writer = RingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        RingWriter(self.clone(), false)
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RingWriter(self.clone(), is_important(meta))
    }
}

/// The rate limit of log messages per call site and source (see the module documentation).
#[derive(Debug)]
pub struct RateLimit {
    ring: LogRing,
    to_stderr: bool,
    state: Mutex<RateState>,
}

#[derive(Debug, Default)]
struct RateState {
    keys: std::collections::HashMap<RateKey, Window>,
    last_sweep: Option<std::time::Instant>,
}

/// Call site, source address, and the subject the event is about (its `object`, `cp` or
/// `channel` field): each object or charging point has its own budget, so a burst about one
/// never hides what the gateway says about another.
type RateKey = (
    tracing::callsite::Identifier,
    Option<std::net::IpAddr>,
    Option<u64>,
);

#[derive(Debug)]
struct Window {
    started: std::time::Instant,
    passed: u32,
    suppressed: u64,
    name: &'static str,
    target: &'static str,
    important: bool,
}

/// Finds the source address of an event (its `client`, `from`, `peer` or `remote` field) and
/// its subject (`object`, `cp` or `channel`).
#[derive(Default)]
struct SourceField(Option<std::net::IpAddr>, Option<u64>);

impl SourceField {
    fn take(&mut self, field: &tracing::field::Field, text: &str) {
        if self.1.is_none() && matches!(field.name(), "object" | "cp" | "channel") {
            self.1 = text
                .trim_start_matches("GoNumber(")
                .trim_end_matches(')')
                .parse()
                .ok();
        }
        if self.0.is_none() && matches!(field.name(), "client" | "from" | "peer" | "remote") {
            let text = text.trim_start_matches("Some(").trim_end_matches(')');
            self.0 = text
                .parse::<std::net::SocketAddr>()
                .map(|a| a.ip())
                .or_else(|_| text.parse::<std::net::IpAddr>())
                .ok();
        }
    }
}

impl tracing::field::Visit for SourceField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.take(field, &format!("{value:?}"));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.take(field, &value.to_string());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.take(field, &value.to_string());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.take(field, value);
    }
}

impl RateLimit {
    /// A limit whose summaries go to `ring` (and to stderr when `to_stderr`).
    pub fn new(ring: LogRing, to_stderr: bool) -> Self {
        Self {
            ring,
            to_stderr,
            state: Mutex::new(RateState::default()),
        }
    }

    /// Whether an event from `callsite` with `source` may be logged at `now`.
    fn admit(
        &self,
        meta: &'static tracing::Metadata<'static>,
        source: Option<std::net::IpAddr>,
        subject: Option<u64>,
        now: std::time::Instant,
    ) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return true;
        };
        let mut summaries = Vec::new();
        if state
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1))
        {
            state.last_sweep = Some(now);
            state.keys.retain(|(_, src, _), w| {
                if now.duration_since(w.started) < WINDOW {
                    return true;
                }
                if w.suppressed > 0 {
                    summaries.push(summary(w, *src));
                }
                false
            });
        }
        let id = meta.callsite();
        let key = if state.keys.len() >= MAX_KEYS
            && !state.keys.contains_key(&(id.clone(), source, subject))
        {
            (id, None, None)
        } else {
            (id, source, subject)
        };
        let window = state.keys.entry(key).or_insert_with(|| Window {
            started: now,
            passed: 0,
            suppressed: 0,
            name: meta.name(),
            target: meta.target(),
            important: is_important(meta),
        });
        let admitted = if window.passed < BURST {
            window.passed += 1;
            true
        } else {
            window.suppressed += 1;
            false
        };
        drop(state);
        for (line, important) in summaries {
            self.ring.push_as(line.as_bytes(), important);
            if self.to_stderr {
                eprint!("{line}");
            }
        }
        admitted
    }
}

fn summary(w: &Window, source: Option<std::net::IpAddr>) -> (String, bool) {
    let from = source.map(|s| format!(" from {s}")).unwrap_or_default();
    let line = format!(
        "{}  WARN knx_echarge::log: {} similar messages suppressed ({}: {}{from}; at most {BURST} per {}s)\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        w.suppressed,
        w.target,
        w.name,
        WINDOW.as_secs()
    );
    (line, w.important)
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RateLimit {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let mut source = SourceField::default();
        event.record(&mut source);
        self.admit(
            event.metadata(),
            source.0,
            source.1,
            std::time::Instant::now(),
        )
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
        .with(RateLimit::new(ring.clone(), true))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_keeps_the_start_up_and_the_important_entries() {
        let ring = LogRing::default();
        ring.push(b"board started\n");
        for _ in 0..(START_BYTES / 100) {
            ring.push(&[b's'; 100]);
        }
        ring.push_as(b"login refused: locked out\n", true);
        let mut line = vec![b'x'; 99];
        line.push(b'\n');
        for _ in 0..100_000 {
            ring.push(&line);
        }
        ring.push(b"last routine line\n");
        let text = String::from_utf8(ring.contents()).unwrap();
        assert!(text.starts_with("board started\n"));
        assert!(text.contains("login refused: locked out"));
        assert!(text.contains("older routine and 0 older important log entries dropped"));
        assert!(text.ends_with("last routine line\n"));
        // In order: the lockout comes before the routine lines kept after it.
        let lockout = text.find("locked out").unwrap();
        assert!(text[lockout..].contains("xxxx"));
        assert!(text.len() <= START_BYTES + IMPORTANT_BYTES + RING_BYTES + 200);
    }

    #[test]
    fn the_rate_limit_lets_a_burst_through_per_call_site_and_source() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let ring = LogRing::default();
        let subscriber = tracing_subscriber::registry()
            .with(RateLimit::new(ring.clone(), false))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(ring.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..100 {
                tracing::warn!(from = %"10.0.0.1:3671", "flood {i}");
                tracing::warn!(from = %format!("10.0.0.2:{}", 1000 + i), "flood {i}");
            }
            tracing::warn!(target: SECURITY, "login refused: locked out");
        });
        let text = String::from_utf8(ring.contents()).unwrap();
        // Each source has its own burst (the port does not make a new source).
        assert_eq!(text.matches("flood").count(), 2 * BURST as usize, "{text}");
        assert!(text.contains("locked out"));
    }
}
