//! Liveness of the gateway's tasks, for the systemd watchdog (`WatchdogSec=` in
//! `hw/knx-echarge.service`).
//!
//! Owns a registry of watched tasks ([`Registry`]) and the wrapper future ([`watched`]) the
//! core's task, the KNX link task and the charging-point tasks are spawned in. The wrapper
//! notes when a poll of the task began and ended: a task that stays inside one poll longer
//! than [`HUNG_AFTER`] (a blocking call, a loop that never yields) is hung, and a task that
//! panicked is dead. [`Registry::check`] says whether all are alive; the gateway sends
//! `WATCHDOG=1` only then, so systemd restarts a gateway with a hung task. (A task that waits
//! forever for an event is idle, not hung: it still answers when polled.)
//!
//! A blocked task can stall the whole runtime, not only itself: on the device's two-worker
//! runtime the other worker may be parked without the I/O and timer driver, so no timer fires
//! anywhere. [`RuntimeProbe`] notices that (a task on the runtime beats it; beats that stop
//! mean the runtime no longer schedules), and the gateway judges both from a thread of its own,
//! never from a task on the runtime it judges (`crate::gateway::device::spawn_watchdog`).
//!
//! Test-only trigger (debug builds only, documented in README "systemd"): the environment
//! variable `KNX_ECHARGE_TEST_HANG=<name prefix>@<seconds>` makes the first watched task whose
//! name starts with the prefix block inside a poll once that many seconds have passed since it
//! was spawned — the hang tests/systemd_notify.rs provokes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A poll that takes longer than this means the task is hung.
pub const HUNG_AFTER: Duration = Duration::from_secs(3);

/// No beat of the [`RuntimeProbe`] for this long means the runtime has stalled: a little
/// longer than [`HUNG_AFTER`], as the probe beats only every 250 ms, so that a task that
/// stalls the runtime is normally named before the stall.
pub const STALLED_AFTER: Duration = Duration::from_millis(3500);

#[derive(Debug)]
struct TaskState {
    name: String,
    /// Milliseconds after the registry's epoch + 1 at which the running poll began; 0 = idle.
    busy_since: AtomicU64,
    panicked: AtomicBool,
    ended: AtomicBool,
    #[cfg(debug_assertions)]
    hang_at: Option<Instant>,
}

/// The watched tasks.
#[derive(Debug, Clone)]
pub struct Registry {
    epoch: Instant,
    tasks: Arc<Mutex<Vec<Arc<TaskState>>>>,
}

/// Whether the watched tasks are alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// All alive (also when none is watched).
    Alive,
    /// These are hung or dead (names).
    Failed(Vec<String>),
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            tasks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The process's registry (the one [`watched`] uses).
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX - 1)
            + 1
    }

    /// Wraps `future` as the task `name` of this registry.
    pub fn watch<F: Future>(&self, name: &str, future: F) -> Watched<F> {
        let state = Arc::new(TaskState {
            name: name.to_owned(),
            busy_since: AtomicU64::new(0),
            panicked: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            #[cfg(debug_assertions)]
            hang_at: test_hang(name),
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks
                .retain(|t| !t.ended.load(Ordering::Relaxed) || t.panicked.load(Ordering::Relaxed));
            tasks.push(state.clone());
        }
        Watched {
            future: Box::pin(future),
            state,
            registry: self.clone(),
        }
    }

    /// Whether every watched task is alive at `now`.
    pub fn check(&self, now: Instant) -> Health {
        let limit = self
            .ms(now)
            .saturating_sub(u64::try_from(HUNG_AFTER.as_millis()).unwrap_or(u64::MAX));
        let Ok(tasks) = self.tasks.lock() else {
            return Health::Failed(vec!["watchdog registry".to_owned()]);
        };
        let failed: Vec<String> = tasks
            .iter()
            .filter_map(|t| {
                let since = t.busy_since.load(Ordering::Relaxed);
                if t.panicked.load(Ordering::Relaxed) {
                    Some(format!("{} (panicked)", t.name))
                } else if since != 0 && since < limit && !t.ended.load(Ordering::Relaxed) {
                    Some(format!("{} (hung)", t.name))
                } else {
                    None
                }
            })
            .collect();
        if failed.is_empty() {
            Health::Alive
        } else {
            Health::Failed(failed)
        }
    }

    /// Names of the watched tasks that have not ended (or ended by a panic).
    pub fn names(&self) -> Vec<String> {
        self.tasks
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|t| {
                        !t.ended.load(Ordering::Relaxed) || t.panicked.load(Ordering::Relaxed)
                    })
                    .map(|t| t.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Wraps `future` as the task `name` of the process's registry ([`Registry::global`]).
pub fn watched<F: Future>(name: &str, future: F) -> Watched<F> {
    Registry::global().watch(name, future)
}

#[cfg(debug_assertions)]
fn test_hang(name: &str) -> Option<Instant> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    let spec = std::env::var("KNX_ECHARGE_TEST_HANG").ok()?;
    let (prefix, secs) = spec.rsplit_once('@')?;
    let secs: u64 = secs.parse().ok()?;
    if !name.starts_with(prefix) || TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    tracing::warn!(
        task = name,
        secs,
        "KNX_ECHARGE_TEST_HANG: this task will hang"
    );
    Some(Instant::now() + Duration::from_secs(secs))
}

/// When a task on the runtime last ran: beaten from a task on the runtime, read from a thread
/// outside it.
#[derive(Debug)]
pub struct RuntimeProbe {
    epoch: Instant,
    /// Milliseconds after `epoch` + 1 of the last beat; 0 = none yet.
    last: AtomicU64,
}

impl RuntimeProbe {
    /// A probe whose clock starts at `now` (counts as a beat).
    pub fn new(now: Instant) -> Self {
        Self {
            epoch: now,
            last: AtomicU64::new(1),
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX - 1)
            + 1
    }

    /// The runtime ran a task at `now`.
    pub fn beat(&self, now: Instant) {
        self.last.fetch_max(self.ms(now), Ordering::Relaxed);
    }

    /// Whether no beat came for longer than [`STALLED_AFTER`] before `now`.
    pub fn stalled(&self, now: Instant) -> bool {
        let limit = self
            .ms(now)
            .saturating_sub(u64::try_from(STALLED_AFTER.as_millis()).unwrap_or(u64::MAX));
        self.last.load(Ordering::Relaxed) < limit
    }
}

/// The health of the watched tasks and of the runtime they run on: the failed tasks first,
/// then `tokio runtime (stalled)` when the probe has stopped beating.
pub fn health(registry: &Registry, probe: &RuntimeProbe, now: Instant) -> Health {
    let mut failed = match registry.check(now) {
        Health::Alive => Vec::new(),
        Health::Failed(f) => f,
    };
    if probe.stalled(now) {
        failed.push("tokio runtime (stalled)".to_owned());
    }
    if failed.is_empty() {
        Health::Alive
    } else {
        Health::Failed(failed)
    }
}

/// A future watched by a [`Registry`].
pub struct Watched<F> {
    future: Pin<Box<F>>,
    state: Arc<TaskState>,
    registry: Registry,
}

impl<F> std::fmt::Debug for Watched<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("name", &self.state.name)
            .finish_non_exhaustive()
    }
}

/// Marks the poll's end, or a panic when unwinding through it.
struct PollGuard<'a>(&'a TaskState);

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.panicked.store(true, Ordering::Relaxed);
        }
        self.0.busy_since.store(0, Ordering::Relaxed);
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let now = Instant::now();
        self.state
            .busy_since
            .store(self.registry.ms(now), Ordering::Relaxed);
        let state = self.state.clone();
        let _guard = PollGuard(&state);
        #[cfg(debug_assertions)]
        if state.hang_at.is_some_and(|at| now >= at) {
            tracing::warn!(task = %state.name, "KNX_ECHARGE_TEST_HANG: hanging now");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let result = self.future.as_mut().poll(cx);
        if result.is_ready() {
            state.ended.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl<F> Drop for Watched<F> {
    fn drop(&mut self) {
        self.state.ended.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_tasks_are_alive_a_blocked_one_is_hung_a_panicked_one_dead() {
        let r = Registry::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let idle = tokio::spawn(r.watch("idle", async move {
            let _ = rx.await;
        }));
        tokio::task::yield_now().await;
        assert_eq!(
            r.check(Instant::now() + Duration::from_secs(60)),
            Health::Alive
        );

        // A poll that began long ago and has not ended: hung.
        let blocked = r.watch("charging point 1", std::future::pending::<()>());
        blocked
            .state
            .busy_since
            .store(r.ms(Instant::now()), Ordering::Relaxed);
        assert_eq!(r.check(Instant::now()), Health::Alive, "not yet");
        assert_eq!(
            r.check(Instant::now() + HUNG_AFTER + Duration::from_millis(10)),
            Health::Failed(vec!["charging point 1 (hung)".to_owned()])
        );
        drop(blocked);
        assert_eq!(
            r.check(Instant::now() + Duration::from_secs(60)),
            Health::Alive,
            "ended"
        );

        let dead = tokio::spawn(r.watch("KNX link", async { panic!("boom") }));
        assert!(dead.await.is_err());
        assert_eq!(
            r.check(Instant::now()),
            Health::Failed(vec!["KNX link (panicked)".to_owned()])
        );
        let _ = tx.send(());
        idle.await.unwrap();
        assert_eq!(r.names(), ["KNX link"]);
    }

    #[test]
    fn a_runtime_that_stops_beating_is_stalled_and_named_after_the_tasks() {
        let t0 = Instant::now();
        let probe = RuntimeProbe::new(t0);
        let r = Registry::new();
        assert_eq!(health(&r, &probe, t0 + STALLED_AFTER), Health::Alive);
        probe.beat(t0 + Duration::from_secs(2));
        assert_eq!(
            health(&r, &probe, t0 + Duration::from_secs(2) + STALLED_AFTER),
            Health::Alive
        );
        let late = t0 + Duration::from_secs(2) + STALLED_AFTER + Duration::from_millis(10);
        assert_eq!(
            health(&r, &probe, late),
            Health::Failed(vec!["tokio runtime (stalled)".to_owned()])
        );
        let blocked = r.watch("charging point 1", std::future::pending::<()>());
        blocked.state.busy_since.store(r.ms(t0), Ordering::Relaxed);
        assert_eq!(
            health(&r, &probe, late),
            Health::Failed(vec![
                "charging point 1 (hung)".to_owned(),
                "tokio runtime (stalled)".to_owned()
            ]),
            "the hung task first: it is the cause"
        );
        // An older beat never moves the probe back.
        probe.beat(late);
        probe.beat(t0);
        assert!(!probe.stalled(late + Duration::from_secs(1)));
    }
}
