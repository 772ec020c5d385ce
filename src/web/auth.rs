//! Authentication of the device website: the device password, sessions, CSRF tokens and the
//! login lockout.
//!
//! * The password is stored only as an Argon2id hash (PHC string) in `web-password.json` in
//!   the data directory, next to the hash of the *initial* password, which a factory reset
//!   restores (spec ch. 8.3.5). The initial password is generated once, at first start, and
//!   shown on the console (stderr) — never through `tracing`, so it is in no log file.
//! * A session is a random 256-bit token in an `HttpOnly; SameSite=Strict` cookie. It expires
//!   after [`Policy::idle`] without requests and after [`Policy::absolute`] in any case.
//! * Each session has its own CSRF token; every state-changing request must echo it in the
//!   `X-CSRF-Token` header (synchroniser token pattern).
//! * Login attempts are limited per client address: every attempt is counted *before* its
//!   password is verified ([`Sessions::admit`] reserves it), so at most
//!   [`Policy::max_failures`] passwords per [`Policy::failure_window`] are ever checked for one
//!   address, however many requests arrive at once; the next attempt locks the address out for
//!   [`Policy::lockout`]. A successful login clears the address's count.
//! * Argon2 verifications and hashes (19 MiB of memory each) run one at a time
//!   ([`HashGate`]), so parallel logins from many addresses cannot exhaust the device's
//!   memory.
//! * New passwords must follow the rule of the device family: at least 10 characters, at most
//!   2 identical characters in a row, and 3 of the 4 classes upper case, lower case, digit,
//!   special character.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::store::DataDir;

/// File in the data directory holding the password hashes.
pub const PASSWORD_FILE: &str = "web-password.json";

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "kec_session";

/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authentication operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The password store could not be read or written.
    #[error("password store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The password file is unreadable.
    #[error("password file {PASSWORD_FILE} is corrupt: {0}")]
    Corrupt(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The new password breaks the strength rule.
    #[error("{}", .0.message())]
    Weak(WeakRule),
}

/// The part of the strength rule a password breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeakRule {
    /// Fewer than 10 characters.
    Length,
    /// 3 identical characters in a row.
    Repeat,
    /// Fewer than 3 of the 4 character classes.
    Classes,
}

impl WeakRule {
    /// The English text.
    pub const fn message(self) -> &'static str {
        match self {
            Self::Length => "at least 10 characters are required",
            Self::Repeat => "at most 2 identical characters may follow each other",
            Self::Classes => {
                "use 3 of: upper-case letter, lower-case letter, digit, special character"
            }
        }
    }
}

/// Timing rules for sessions and logins.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A session ends after this long without a request.
    pub idle: Duration,
    /// A session ends this long after login, whatever happens.
    pub absolute: Duration,
    /// Login attempts are counted over this window.
    pub failure_window: Duration,
    /// Attempts (not yet cleared by a successful login) allowed within the window; the next
    /// attempt is locked out.
    pub max_failures: usize,
    /// How long a locked-out address must wait.
    pub lockout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            failure_window: Duration::from_secs(60),
            max_failures: 5,
            lockout: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HashFile {
    /// Hash of the initial password (restored by a factory reset).
    initial: String,
    /// Hash of the password in force.
    current: String,
}

/// Checks the strength rule; `Err` names the first rule broken.
pub fn check_strength(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < 10 {
        return Err(AuthError::Weak(WeakRule::Length));
    }
    let chars: Vec<char> = password.chars().collect();
    if chars
        .windows(3)
        .any(|w| matches!(w, [a, b, c] if a == b && b == c))
    {
        return Err(AuthError::Weak(WeakRule::Repeat));
    }
    let classes = [
        chars.iter().any(char::is_ascii_uppercase),
        chars.iter().any(char::is_ascii_lowercase),
        chars.iter().any(char::is_ascii_digit),
        chars.iter().any(|c| !c.is_ascii_alphanumeric()),
    ];
    if classes.iter().filter(|c| **c).count() < 3 {
        return Err(AuthError::Weak(WeakRule::Classes));
    }
    Ok(())
}

/// A fresh initial password that follows the strength rule (no look-alike characters).
pub fn generate_password() -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SPECIAL: &[u8] = b"-_+!";
    let mut rng = rand::rng();
    loop {
        let mut out = String::new();
        for i in 0..12 {
            let set = match i % 4 {
                0 => UPPER,
                1 | 2 => LOWER,
                _ => DIGIT,
            };
            let set = if i == 6 { SPECIAL } else { set };
            let pick = set
                .get(rng.random_range(0..set.len()))
                .copied()
                .unwrap_or(b'x');
            out.push(char::from(pick));
        }
        if check_strength(&out).is_ok() {
            return out;
        }
    }
}

fn hash(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The stored password hashes.
#[derive(Debug)]
pub struct PasswordStore {
    data: DataDir,
    hashes: Mutex<HashFile>,
    damaged: Option<String>,
}

impl PasswordStore {
    /// Opens the store. At first start (no file) it sets the initial password — `initial`, or
    /// a generated one — and returns it as the second value so that the caller can show it on
    /// the console once.
    pub fn open(data: DataDir, initial: Option<&str>) -> Result<(Self, Option<String>), AuthError> {
        let (file, fresh) = if let Some(bytes) = data.read(PASSWORD_FILE)? {
            match serde_json::from_slice::<HashFile>(&bytes) {
                Ok(file) if PasswordHash::new(&file.current).is_ok() => (file, None),
                Ok(_) => return Ok((Self::damaged(data, "its hash is not valid"), None)),
                Err(e) => return Ok((Self::damaged(data, &e.to_string()), None)),
            }
        } else {
            {
                let password = initial.map_or_else(generate_password, str::to_owned);
                let h = hash(&password)?;
                let file = HashFile {
                    initial: h.clone(),
                    current: h,
                };
                write_file(&data, &file)?;
                (file, Some(password))
            }
        };
        Ok((
            Self {
                data,
                hashes: Mutex::new(file),
                damaged: None,
            },
            fresh,
        ))
    }

    /// A store whose file is damaged: nobody can log in; the website says why and how to
    /// recover ([`Self::damage`]).
    fn damaged(data: DataDir, why: &str) -> Self {
        let message = format!(
            "the password file {PASSWORD_FILE} in the data directory is damaged ({why}); nobody can log in until it is replaced: delete it (the next start sets a new initial password and prints it on the console) or restore it from a backup"
        );
        tracing::error!("{message}");
        Self {
            data,
            hashes: Mutex::new(HashFile {
                initial: String::new(),
                current: String::new(),
            }),
            damaged: Some(message),
        }
    }

    /// What is damaged and how to recover, when the password file could not be read.
    pub fn damage(&self) -> Option<&str> {
        self.damaged.as_deref()
    }

    fn current(&self) -> String {
        self.hashes
            .lock()
            .map(|h| h.current.clone())
            .unwrap_or_default()
    }

    /// Whether `password` is the password in force (slow on purpose: call off the runtime).
    pub fn verify(&self, password: &str) -> bool {
        verify(password, &self.current())
    }

    /// Sets a new password after checking the strength rule.
    pub fn set(&self, password: &str) -> Result<(), AuthError> {
        if let Some(d) = &self.damaged {
            return Err(AuthError::Corrupt(d.clone()));
        }
        check_strength(password)?;
        let h = hash(password)?;
        let mut guard = self
            .hashes
            .lock()
            .map_err(|_| AuthError::Hash("lock poisoned".to_owned()))?;
        let mut next = guard.clone();
        next.current = h;
        write_file(&self.data, &next)?;
        *guard = next;
        Ok(())
    }

    /// Restores the initial password (factory reset).
    pub fn reset_to_initial(&self) -> Result<(), AuthError> {
        if let Some(d) = &self.damaged {
            return Err(AuthError::Corrupt(d.clone()));
        }
        let mut guard = self
            .hashes
            .lock()
            .map_err(|_| AuthError::Hash("lock poisoned".to_owned()))?;
        let mut next = guard.clone();
        next.current.clone_from(&next.initial);
        write_file(&self.data, &next)?;
        *guard = next;
        Ok(())
    }
}

fn write_file(data: &DataDir, file: &HashFile) -> Result<(), AuthError> {
    let bytes = serde_json::to_vec_pretty(file).map_err(|e| AuthError::Corrupt(e.to_string()))?;
    data.write(PASSWORD_FILE, &bytes)?;
    Ok(())
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The CSRF token of the session.
    pub csrf: String,
    created: Instant,
    last: Instant,
}

/// The outcome of a login attempt's admission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The attempt may be checked.
    Allowed,
    /// Locked out; try again after this long.
    Locked(Duration),
}

/// Most sessions at once; a login beyond ends the least recently used one.
pub const MAX_SESSIONS: usize = 32;

/// Sessions and login failures (in memory: a restart logs everybody out).
#[derive(Debug)]
pub struct Sessions {
    policy: Policy,
    live: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<Option<IpAddr>, Failures>>,
}

#[derive(Debug, Default)]
struct Failures {
    /// Attempts within the window (each counted when it was admitted).
    recent: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Failures {
    fn prune(&mut self, now: Instant, policy: &Policy) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.failure_window)
        {
            self.recent.pop_front();
        }
    }

    fn expired(&self, now: Instant, policy: &Policy) -> bool {
        self.locked_until.is_none_or(|u| u <= now)
            && self
                .recent
                .back()
                .is_none_or(|t| now.duration_since(*t) > policy.failure_window)
    }
}

/// Lets Argon2 run for one request at a time: each verification or hash takes 19 MiB and a
/// core for a while, and the device has little of either.
///
/// Waiting requests form a bounded queue ([`HASH_QUEUE`]) that is fair between client
/// addresses: the next check goes to the request whose address had the fewest attempts
/// counted before it (its `strikes`), the earliest among equals. A flood of wrong passwords
/// from many addresses therefore queues behind a client that tries for the first time; when
/// the queue is full, a newcomer with fewer strikes takes the place of the one with the most
/// (which is answered "busy"). Requests with strikes share a global budget of
/// [`HASH_BUDGET`] checks per minute; over it they are answered "busy" at once.
#[derive(Debug, Default)]
pub struct HashGate {
    state: std::sync::Arc<Mutex<GateState>>,
    peak: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Default)]
struct GateState {
    running: usize,
    waiting: Vec<Waiter>,
    seq: u64,
    budget: Option<(Instant, usize)>,
}

#[derive(Debug)]
struct Waiter {
    strikes: usize,
    seq: u64,
    go: tokio::sync::oneshot::Sender<()>,
}

/// Argon2 computations allowed at the same time.
pub const PARALLEL_HASHES: usize = 1;

/// Most requests waiting for their turn at the [`HashGate`].
pub const HASH_QUEUE: usize = 16;

/// Checks per minute for requests from addresses with earlier attempts in the window.
pub const HASH_BUDGET: usize = 120;

/// How long a request waits for its turn at the [`HashGate`] before it is answered "busy".
pub const HASH_WAIT: Duration = Duration::from_secs(10);

/// The gate was busy for longer than [`HASH_WAIT`] (or the computation failed to run).
#[derive(Debug, thiserror::Error)]
#[error("the device is busy checking other passwords; try again")]
pub struct Busy;

/// A running computation's place; the next waiter gets it when this is dropped.
struct Running(std::sync::Arc<Mutex<GateState>>);

impl Drop for Running {
    fn drop(&mut self) {
        let Ok(mut st) = self.0.lock() else { return };
        st.running = st.running.saturating_sub(1);
        while st.running < PARALLEL_HASHES {
            let Some(next) = st
                .waiting
                .iter()
                .enumerate()
                .min_by_key(|(_, w)| (w.strikes, w.seq))
                .map(|(i, _)| i)
            else {
                break;
            };
            let w = st.waiting.swap_remove(next);
            if w.go.send(()).is_ok() {
                st.running += 1;
            }
        }
    }
}

/// A request waiting in the queue. Dropped before its turn was used (timed out, client gone),
/// it leaves the queue, or passes on the place it was given meanwhile.
struct Wait {
    state: std::sync::Arc<Mutex<GateState>>,
    seq: u64,
    rx: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Drop for Wait {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        let granted = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            let before = st.waiting.len();
            st.waiting.retain(|w| w.seq != self.seq);
            st.waiting.len() == before && rx.try_recv().is_ok()
        };
        if granted {
            drop(Running(self.state.clone()));
        }
    }
}

impl HashGate {
    /// Runs `work` (Argon2) on the blocking pool once it is its turn; `strikes` are the
    /// attempts counted for the client's address before this one. The place moves into the
    /// blocking task, so a client that hangs up does not free it before the work ends.
    pub async fn run<T: Send + 'static>(
        &self,
        strikes: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let rx = {
            let mut st = self.state.lock().map_err(|_| Busy)?;
            let now = Instant::now();
            if strikes > 0 {
                let (since, used) = st.budget.get_or_insert((now, 0));
                if now.duration_since(*since) >= Duration::from_secs(60) {
                    *since = now;
                    *used = 0;
                }
                if *used >= HASH_BUDGET {
                    return Err(Busy);
                }
                *used += 1;
            }
            if st.running < PARALLEL_HASHES && st.waiting.is_empty() {
                st.running += 1;
                None
            } else {
                if st.waiting.len() >= HASH_QUEUE {
                    let worst = st
                        .waiting
                        .iter()
                        .enumerate()
                        .max_by_key(|(_, w)| (w.strikes, w.seq))
                        .filter(|(_, w)| w.strikes > strikes)
                        .map(|(i, _)| i)
                        .ok_or(Busy)?;
                    // Dropping its sender answers it "busy".
                    st.waiting.swap_remove(worst);
                }
                st.seq += 1;
                let seq = st.seq;
                let (go, rx) = tokio::sync::oneshot::channel();
                st.waiting.push(Waiter { strikes, seq, go });
                Some((seq, rx))
            }
        };
        if let Some((seq, rx)) = rx {
            let mut wait = Wait {
                state: self.state.clone(),
                seq,
                rx: Some(rx),
            };
            let granted = match wait.rx.as_mut() {
                Some(rx) => matches!(tokio::time::timeout(HASH_WAIT, rx).await, Ok(Ok(()))),
                None => false,
            };
            if !granted {
                return Err(Busy);
            }
            // The place is ours now: `Running` below releases it.
            wait.rx = None;
        }
        let place = Running(self.state.clone());
        let peak = self.peak.clone();
        let running = self.state.lock().map_or(PARALLEL_HASHES, |st| st.running);
        peak.fetch_max(running, std::sync::atomic::Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(place);
            out
        })
        .await
        .map_err(|_| Busy)
    }

    /// The most Argon2 computations that ran at the same time so far (diagnostics, tests).
    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.state.lock().map_or(0, |st| st.waiting.len())
    }
}

/// A random 256-bit token, hex.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// No sessions.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            live: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `client` may try a password now. An allowed attempt is counted at once (before
    /// the password is verified), so concurrent requests cannot slip past the limit: the
    /// attempt after [`Policy::max_failures`] counted ones within the window is refused and
    /// locks the address out for [`Policy::lockout`].
    pub fn admit(&self, client: Option<IpAddr>, now: Instant) -> Admission {
        let Ok(mut all) = self.failures.lock() else {
            return Admission::Locked(self.policy.lockout);
        };
        // Forget addresses whose record has run out (bounded memory).
        all.retain(|_, f| !f.expired(now, &self.policy));
        let f = all.entry(client).or_default();
        if let Some(until) = f.locked_until {
            if until > now {
                return Admission::Locked(until - now);
            }
            f.locked_until = None;
        }
        f.prune(now, &self.policy);
        if f.recent.len() >= self.policy.max_failures {
            f.recent.clear();
            f.locked_until = Some(now + self.policy.lockout);
            return Admission::Locked(self.policy.lockout);
        }
        f.recent.push_back(now);
        Admission::Allowed
    }

    /// Attempts counted for `client` within the window (including one just admitted).
    pub fn attempts(&self, client: Option<IpAddr>, now: Instant) -> usize {
        let Ok(mut all) = self.failures.lock() else {
            return usize::MAX;
        };
        all.get_mut(&client).map_or(0, |f| {
            f.prune(now, &self.policy);
            f.recent.len()
        })
    }

    /// Records a wrong password (the attempt itself was counted by [`Self::admit`]): once the
    /// window holds [`Policy::max_failures`] attempts the address is locked out from now on.
    pub fn failed(&self, client: Option<IpAddr>, now: Instant) {
        let Ok(mut all) = self.failures.lock() else {
            return;
        };
        let f = all.entry(client).or_default();
        f.prune(now, &self.policy);
        if f.recent.len() >= self.policy.max_failures {
            f.locked_until = Some(now + self.policy.lockout);
            f.recent.clear();
        }
    }

    /// Records a successful login (clears the failures of the address).
    pub fn succeeded(&self, client: Option<IpAddr>) {
        if let Ok(mut all) = self.failures.lock() {
            all.remove(&client);
        }
    }

    /// Starts a session; returns (session token, CSRF token).
    pub fn create(&self, now: Instant) -> (String, String) {
        let id = token();
        let csrf = token();
        if let Ok(mut all) = self.live.lock() {
            all.retain(|_, s| self.alive(s, now));
            // Bounded: the least recently used session goes when the table is full.
            while all.len() >= MAX_SESSIONS {
                let Some(oldest) = all
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                all.remove(&oldest);
            }
            all.insert(
                id.clone(),
                Session {
                    csrf: csrf.clone(),
                    created: now,
                    last: now,
                },
            );
        }
        (id, csrf)
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) < self.policy.idle
            && now.duration_since(s.created) < self.policy.absolute
    }

    /// The live session with this token (refreshing its idle timer).
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut all = self.live.lock().ok()?;
        let alive = all.get(id).is_some_and(|s| self.alive(s, now));
        if !alive {
            all.remove(id);
            return None;
        }
        let s = all.get_mut(id)?;
        s.last = now;
        Some(s.clone())
    }

    /// Whether the session is live, without refreshing its idle timer (long-lived streams).
    pub fn is_alive(&self, id: &str, now: Instant) -> bool {
        self.live
            .lock()
            .ok()
            .is_some_and(|all| all.get(id).is_some_and(|s| self.alive(s, now)))
    }

    /// Ends one session.
    pub fn remove(&self, id: &str) {
        if let Ok(mut all) = self.live.lock() {
            all.remove(id);
        }
    }

    /// Ends every session (password change, factory reset).
    pub fn clear(&self) {
        if let Ok(mut all) = self.live.lock() {
            all.clear();
        }
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_rule_of_the_device_family() {
        assert!(check_strength("Short1!").is_err());
        assert!(check_strength("abcdefghijk").is_err(), "one class");
        assert!(check_strength("abcdefgh12").is_err(), "two classes");
        assert!(check_strength("Abcdefgh12").is_ok(), "three classes");
        assert!(
            check_strength("Abcccdefg12").is_err(),
            "three identical in a row"
        );
        assert!(
            check_strength("Abccdefg12").is_ok(),
            "two identical in a row"
        );
        assert!(
            check_strength("abcdefgh1-").is_ok(),
            "lower, digit, special"
        );
        for _ in 0..50 {
            let p = generate_password();
            assert!(check_strength(&p).is_ok(), "{p}");
        }
    }

    #[test]
    fn sixth_wrong_password_within_a_minute_is_locked_out() {
        let s = Sessions::new(Policy::default());
        let t0 = Instant::now();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for i in 0..5 {
            assert_eq!(s.admit(ip, t0), Admission::Allowed, "attempt {}", i + 1);
            s.failed(ip, t0 + Duration::from_secs(i));
        }
        assert!(matches!(
            s.admit(ip, t0 + Duration::from_secs(6)),
            Admission::Locked(_)
        ));
        // Another address is not affected.
        assert_eq!(
            s.admit(Some(IpAddr::from([127, 0, 0, 2])), t0),
            Admission::Allowed
        );
        // Spread over more than a minute: no lockout.
        let other = Some(IpAddr::from([10, 0, 0, 1]));
        for i in 0..10 {
            assert_eq!(
                s.admit(other, t0 + Duration::from_secs(20 * i)),
                Admission::Allowed
            );
            s.failed(other, t0 + Duration::from_secs(20 * i));
        }
    }

    #[test]
    fn attempts_are_counted_before_they_are_verified() {
        let s = Sessions::new(Policy::default());
        let t0 = Instant::now();
        let ip = Some(IpAddr::from([192, 168, 1, 20]));
        // Five attempts in flight at once (none has finished): the sixth is refused already.
        for i in 0..5 {
            assert_eq!(s.admit(ip, t0), Admission::Allowed, "attempt {}", i + 1);
        }
        assert_eq!(
            s.admit(ip, t0),
            Admission::Locked(Policy::default().lockout)
        );
        assert!(matches!(
            s.admit(ip, t0 + Duration::from_secs(299)),
            Admission::Locked(_)
        ));
        // After the lockout a fresh window starts.
        assert_eq!(
            s.admit(ip, t0 + Duration::from_secs(301)),
            Admission::Allowed
        );
        // A successful login clears the count.
        let other = Some(IpAddr::from([192, 168, 1, 21]));
        for _ in 0..4 {
            assert_eq!(s.admit(other, t0), Admission::Allowed);
        }
        s.succeeded(other);
        for _ in 0..5 {
            assert_eq!(s.admit(other, t0), Admission::Allowed);
        }
        assert!(matches!(s.admit(other, t0), Admission::Locked(_)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_hash_gate_runs_one_computation_at_a_time() {
        let gate = std::sync::Arc::new(HashGate::default());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8u64 {
            let gate = gate.clone();
            tasks.spawn(async move {
                gate.run(0, move || {
                    std::thread::sleep(Duration::from_millis(20));
                    i
                })
                .await
            });
        }
        let mut done = 0;
        while let Some(r) = tasks.join_next().await {
            assert!(r.unwrap().is_ok());
            done += 1;
        }
        assert_eq!(done, 8);
        assert_eq!(gate.peak(), PARALLEL_HASHES);
    }

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let policy = Policy {
            idle: Duration::from_secs(10),
            absolute: Duration::from_secs(25),
            ..Policy::default()
        };
        let s = Sessions::new(policy);
        let t0 = Instant::now();
        let (id, _) = s.create(t0);
        assert!(s.get(&id, t0 + Duration::from_secs(9)).is_some());
        assert!(s.get(&id, t0 + Duration::from_secs(18)).is_some());
        assert!(
            s.get(&id, t0 + Duration::from_secs(26)).is_none(),
            "absolute"
        );
        let (id, _) = s.create(t0);
        assert!(s.get(&id, t0 + Duration::from_secs(11)).is_none(), "idle");
    }

    #[test]
    fn password_store_keeps_hashes_only_and_resets_to_initial() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let (store, shown) = PasswordStore::open(data.clone(), Some("Initial-Pass1")).unwrap();
        assert_eq!(shown.as_deref(), Some("Initial-Pass1"));
        let text = String::from_utf8(data.read(PASSWORD_FILE).unwrap().unwrap()).unwrap();
        assert!(!text.contains("Initial-Pass1"));
        assert!(text.contains("$argon2id$"));
        assert!(store.verify("Initial-Pass1"));
        store.set("Changed-Pass2").unwrap();
        assert!(!store.verify("Initial-Pass1"));
        // Reopened: no new initial password is shown.
        let (store, shown) = PasswordStore::open(data, None).unwrap();
        assert!(shown.is_none());
        assert!(store.verify("Changed-Pass2"));
        assert!(store.set("weak").is_err());
        store.reset_to_initial().unwrap();
        assert!(store.verify("Initial-Pass1"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_attempt_overtakes_a_queue_of_repeated_ones() {
        let gate = std::sync::Arc::new(HashGate::default());
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        // A long first computation, then more waiters with strikes than the queue holds.
        for i in 0..=(HASH_QUEUE + 4) {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.spawn(async move {
                gate.run(if i == 0 { 0 } else { 3 }, move || {
                    std::thread::sleep(Duration::from_millis(if i == 0 { 200 } else { 5 }));
                    order.lock().unwrap().push(i);
                })
                .await
                .is_ok()
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(gate.waiting(), HASH_QUEUE, "the queue is bounded");
        let (g, o) = (gate.clone(), order.clone());
        let newcomer =
            tokio::spawn(
                async move { g.run(0, move || o.lock().unwrap().push(999)).await.is_ok() },
            );
        assert!(newcomer.await.unwrap(), "the first attempt is checked");
        let mut busy = 0;
        while let Some(ok) = tasks.join_next().await {
            busy += usize::from(!ok.unwrap());
        }
        assert_eq!(
            busy,
            4 + 1,
            "the overflow and the one evicted are answered busy"
        );
        let order = order.lock().unwrap();
        assert_eq!(order[..2], [0, 999], "the newcomer went next: {order:?}");
        assert_eq!(gate.peak(), PARALLEL_HASHES);
    }

    #[test]
    fn the_session_table_is_bounded() {
        let s = Sessions::new(Policy::default());
        let t0 = Instant::now();
        let (first, _) = s.create(t0);
        for i in 1..=MAX_SESSIONS as u64 {
            s.create(t0 + Duration::from_millis(i));
        }
        assert!(
            !s.is_alive(&first, t0 + Duration::from_secs(1)),
            "the oldest went"
        );
        assert_eq!(s.live.lock().unwrap().len(), MAX_SESSIONS);
    }
}
