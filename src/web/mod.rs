//! The device website (spec ch. 7, 8.3.4, 8.3.5, 8.4, 11.2), served by the running gateway
//! with axum.
//!
//! * Pages: `/login`, `/` (status), `/settings`, `/licences`; static assets under `/assets/`,
//!   all compiled into the binary (the device has no internet and loads nothing from a CDN).
//! * JSON API under `/api/v1/` ([`api`]), used by the pages and by integrators; documented in
//!   README "Website". Live status is a server-sent event stream fed by the shell's
//!   `watch` channel.
//! * Security ([`auth`]): every page and API route except `/login`, `POST /api/v1/login` and
//!   `/assets/*` requires a session cookie (pages redirect to `/login`, the API answers 401).
//!   Every state-changing request needs the session's CSRF token in `X-CSRF-Token`, and a
//!   cross-site `Origin` is refused. The login is rate-limited with a lockout.
//!
//! [`spawn`] starts the server next to the shell; [`router`] builds the same service for
//! tests (`tower::ServiceExt::oneshot`). Every route is added through [`Routes`], which
//! records it, so [`route_table`] lists exactly the routes [`router`] serves (the tests check
//! each of them for access control and CSRF).

pub mod api;
pub mod auth;
pub mod firmware;
pub mod hosts;
pub mod logs;
pub mod network;
pub mod pages;
pub mod serve;
pub mod settings;
pub mod status;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::MethodRouter;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::core::Event;
use crate::gateway::shell::Snapshot;
use crate::store::DataDir;

/// The website could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Password store.
    #[error("{0}")]
    Auth(#[from] auth::AuthError),
    /// Binding the address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// What the website needs from the gateway.
#[derive(Debug, Clone)]
pub struct Context {
    /// The configuration the gateway runs.
    pub config: Config,
    /// The data directory.
    pub data: DataDir,
    /// Events into the core.
    pub events: mpsc::Sender<Event>,
    /// The shell's snapshot.
    pub snapshot: watch::Receiver<Snapshot>,
    /// Initial password to use at first start instead of a generated one (the demo's).
    pub initial_password: Option<String>,
    /// Session and lockout timing.
    pub policy: auth::Policy,
    /// How often the DLM chart takes a sample.
    pub sample_every: Duration,
    /// The address the website listens on ([`spawn`] sets it once bound): the status page
    /// shows it as the address in use when it is not the wildcard address.
    pub listen: Option<SocketAddr>,
    /// Timeouts and connection caps of the server.
    pub limits: serve::Limits,
    /// What the UPnP device description (`/upnp/device.xml`, no session needed) says; `None`:
    /// no description is served.
    pub upnp: Option<crate::ssdp::Device>,
}

impl Context {
    /// A context with the default policy and a 5-second chart sample.
    pub fn new(
        config: Config,
        data: DataDir,
        events: mpsc::Sender<Event>,
        snapshot: watch::Receiver<Snapshot>,
    ) -> Self {
        Self {
            config,
            data,
            events,
            snapshot,
            initial_password: None,
            policy: auth::Policy::default(),
            sample_every: Duration::from_secs(5),
            listen: None,
            limits: serve::Limits::default(),
            upnp: None,
        }
    }
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    data: DataDir,
    events: mpsc::Sender<Event>,
    snapshot: watch::Receiver<Snapshot>,
    passwords: auth::PasswordStore,
    sessions: auth::Sessions,
    hashes: auth::HashGate,
    logs: Arc<logs::LogControl>,
    settings: settings::SettingsStore,
    history: status::History,
    started: Instant,
    listen: Option<SocketAddr>,
    hosts: hosts::OwnHosts,
    limits: serve::Limits,
    /// Held while a firmware upload runs: one at a time.
    firmware_upload: Arc<tokio::sync::Mutex<()>>,
    upnp: Option<crate::ssdp::Device>,
    restart: watch::Sender<bool>,
    /// A factory reset was done: the gateway erases its state again once it has stopped.
    factory_reset: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// Builds the state; the second value is the initial password if it was set just now.
    /// Must run inside a tokio runtime (it starts the chart sampler).
    pub fn new(
        ctx: Context,
        logs: Arc<logs::LogControl>,
    ) -> Result<(Self, Option<String>), WebError> {
        let (passwords, fresh) =
            auth::PasswordStore::open(ctx.data.clone(), ctx.initial_password.as_deref())?;
        let settings = settings::SettingsStore::open(ctx.data.clone());
        let leftovers = firmware::clean_leftovers(&ctx.data);
        if leftovers > 0 {
            warn!("deleted {leftovers} temporary files of interrupted firmware uploads");
        }
        logs.set_mode(settings.get().logging, true);
        let history = status::History::spawn(ctx.snapshot.clone(), ctx.sample_every);
        let (restart, _) = watch::channel(false);
        Ok((
            Self {
                inner: Arc::new(Inner {
                    config: ctx.config,
                    data: ctx.data,
                    events: ctx.events,
                    snapshot: ctx.snapshot,
                    passwords,
                    sessions: auth::Sessions::new(ctx.policy),
                    hashes: auth::HashGate::default(),
                    logs,
                    settings,
                    history,
                    started: Instant::now(),
                    hosts: hosts::OwnHosts::new(ctx.listen),
                    limits: ctx.limits,
                    firmware_upload: Arc::default(),
                    listen: ctx.listen,
                    upnp: ctx.upnp,
                    restart,
                    factory_reset: std::sync::atomic::AtomicBool::new(false),
                }),
            },
            fresh,
        ))
    }

    /// What the UPnP device description says, if one is served.
    pub fn upnp(&self) -> Option<&crate::ssdp::Device> {
        self.inner.upnp.as_ref()
    }

    /// The address the website listens on.
    pub fn listen(&self) -> Option<SocketAddr> {
        self.inner.listen
    }

    /// The most Argon2 computations (logins, password changes) that ran at the same time so
    /// far; at most [`auth::PARALLEL_HASHES`].
    pub fn hashes_peak(&self) -> usize {
        self.inner.hashes.peak()
    }

    /// Whether a factory reset was done on the website (the restart that follows it must
    /// call [`erase_state`] again after the shell has stopped: the shell may have stored its
    /// counters in between).
    pub fn factory_reset_requested(&self) -> bool {
        self.inner
            .factory_reset
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves when a restart was requested on the website.
    pub fn restart_requested(&self) -> watch::Receiver<bool> {
        self.inner.restart.subscribe()
    }
}

/// The logged-in session of a request (put there by the session layer).
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Session token.
    pub id: String,
    /// CSRF token.
    pub csrf: String,
}

/// The client's address, when the server knows it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The session cookie's value in `headers`, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == auth::SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// A stable name for an error the pages show: the API sends it as `key` next to the English
/// `error` text, and `i18n.js` holds the German text as `err.<key>` (English comes from the
/// server; one source per language).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKey {
    /// Login: wrong password.
    WrongPassword,
    /// Too many wrong passwords.
    Locked,
    /// The password check is busy.
    Busy,
    /// The device failed to store or build something.
    Internal,
    /// Not an IPv4 DNS address.
    DnsInvalid,
    /// NTP settings refused.
    NtpInvalid,
    /// The gateway's core is not running.
    CoreDown,
    /// New password: too short.
    WeakLength,
    /// New password: 3 identical characters in a row.
    WeakRepeat,
    /// New password: too few character classes.
    WeakClasses,
    /// Password change: the current password is wrong.
    WrongCurrent,
    /// Not a firmware file.
    NotFirmware,
    /// Invalid firmware manifest.
    FirmwareManifest,
    /// Firmware for another product.
    FirmwareProduct,
    /// Firmware not newer than the installed one.
    FirmwareNotNewer,
    /// Firmware image damaged.
    FirmwareDamaged,
    /// Missing or wrong CSRF token.
    Csrf,
    /// Request from another origin.
    CrossOrigin,
    /// No session.
    LoginRequired,
    /// No such route (or asset).
    NotFound,
    /// The route exists, but not for this method.
    MethodNotAllowed,
    /// The body is not JSON (or not sent as JSON).
    InvalidJson,
    /// The body is JSON, but not what the route expects (missing field, wrong type).
    InvalidBody,
    /// The body is larger than the route accepts.
    TooLarge,
    /// Factory reset without `{"confirm": "RESET"}`.
    ConfirmReset,
    /// The request named a host that is not this device (421).
    WrongHost,
    /// Another firmware upload is running (409).
    UploadRunning,
    /// The password file is damaged: nobody can log in (503).
    PasswordDamaged,
}

impl ErrorKey {
    /// Every key.
    pub const ALL: [Self; 28] = [
        Self::WrongPassword,
        Self::Locked,
        Self::Busy,
        Self::Internal,
        Self::DnsInvalid,
        Self::NtpInvalid,
        Self::CoreDown,
        Self::WeakLength,
        Self::WeakRepeat,
        Self::WeakClasses,
        Self::WrongCurrent,
        Self::NotFirmware,
        Self::FirmwareManifest,
        Self::FirmwareProduct,
        Self::FirmwareNotNewer,
        Self::FirmwareDamaged,
        Self::Csrf,
        Self::CrossOrigin,
        Self::LoginRequired,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::InvalidJson,
        Self::InvalidBody,
        Self::TooLarge,
        Self::ConfirmReset,
        Self::WrongHost,
        Self::UploadRunning,
        Self::PasswordDamaged,
    ];

    /// The key as sent (`snake_case`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::Locked => "locked",
            Self::Busy => "busy",
            Self::Internal => "internal",
            Self::DnsInvalid => "dns_invalid",
            Self::NtpInvalid => "ntp_invalid",
            Self::CoreDown => "core_down",
            Self::WeakLength => "weak_length",
            Self::WeakRepeat => "weak_repeat",
            Self::WeakClasses => "weak_classes",
            Self::WrongCurrent => "wrong_current",
            Self::NotFirmware => "not_firmware",
            Self::FirmwareManifest => "firmware_manifest",
            Self::FirmwareProduct => "firmware_product",
            Self::FirmwareNotNewer => "firmware_not_newer",
            Self::FirmwareDamaged => "firmware_damaged",
            Self::Csrf => "csrf",
            Self::CrossOrigin => "cross_origin",
            Self::LoginRequired => "login_required",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidJson => "invalid_json",
            Self::InvalidBody => "invalid_body",
            Self::TooLarge => "too_large",
            Self::ConfirmReset => "confirm_reset",
            Self::WrongHost => "wrong_host",
            Self::UploadRunning => "upload_running",
            Self::PasswordDamaged => "password_damaged",
        }
    }

    /// The key of a password-store error.
    pub fn of_auth(e: &auth::AuthError) -> Self {
        match e {
            auth::AuthError::Weak(auth::WeakRule::Length) => Self::WeakLength,
            auth::AuthError::Weak(auth::WeakRule::Repeat) => Self::WeakRepeat,
            auth::AuthError::Weak(auth::WeakRule::Classes) => Self::WeakClasses,
            _ => Self::Internal,
        }
    }

    /// The key of a firmware error.
    pub fn of_firmware(e: &firmware::FirmwareError) -> Self {
        use firmware::FirmwareError as F;
        match e {
            F::NotFirmware => Self::NotFirmware,
            F::Manifest(_) => Self::FirmwareManifest,
            F::WrongProduct(_) => Self::FirmwareProduct,
            F::NotNewer { .. } => Self::FirmwareNotNewer,
            F::Damaged(_) => Self::FirmwareDamaged,
            F::Store(_) => Self::Internal,
        }
    }
}

/// Every error of the website and its API: `{"error": "...", "key": "..."}` with `status`,
/// the English text and the [`ErrorKey`] the page translates.
pub fn keyed(status: StatusCode, key: ErrorKey, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into(), "key": key.as_str() })),
    )
        .into_response()
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Requires a session; on unsafe methods also the CSRF token. `api`: 401 instead of redirect.
async fn require_session(
    State((state, api)): State<(AppState, bool)>,
    mut req: Request,
    next: Next,
) -> Response {
    let now = Instant::now();
    let session = session_cookie(req.headers())
        .and_then(|id| state.inner.sessions.get(&id, now).map(|s| (id, s)));
    let Some((id, session)) = session else {
        return if api {
            keyed(
                StatusCode::UNAUTHORIZED,
                ErrorKey::LoginRequired,
                "login required",
            )
        } else {
            Redirect::to("/login").into_response()
        };
    };
    if !is_safe(req.method()) {
        let sent = req
            .headers()
            .get(auth::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !auth::constant_time_eq(sent, &session.csrf) {
            warn!(path = %req.uri().path(), "request without a valid CSRF token refused");
            return keyed(
                StatusCode::FORBIDDEN,
                ErrorKey::Csrf,
                "missing or wrong CSRF token",
            );
        }
    }
    req.extensions_mut().insert(SessionInfo {
        id,
        csrf: session.csrf,
    });
    next.run(req).await
}

/// Refuses requests for a host name that is not the device's own (DNS rebinding: 421) and
/// unsafe requests from another origin, puts the body timeout on the request body, and sets
/// the security headers.
async fn harden(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let hosts: Vec<&str> = req
        .headers()
        .get_all(header::HOST)
        .iter()
        .map(|h| h.to_str().unwrap_or("\u{fffd}"))
        .collect();
    if hosts.len() > 1 || hosts.iter().any(|h| !state.inner.hosts.allows(h)) {
        let host = hosts.join(", ");
        warn!(host = %host.escape_debug(), "request for a host name that is not the device's refused");
        return keyed(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorKey::WrongHost,
            "this device does not answer for that host name; use its address",
        );
    }
    let host = hosts.first().map(|h| (*h).to_owned());
    if !is_safe(req.method()) {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("null");
            let same = host.as_deref().is_some_and(|h| {
                origin == format!("http://{h}") || origin == format!("https://{h}")
            });
            if !same {
                return keyed(
                    StatusCode::FORBIDDEN,
                    ErrorKey::CrossOrigin,
                    "cross-origin request refused",
                );
            }
        }
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.parse::<u64>().ok());
    if length.is_some_and(|l| l > max_body(req.uri().path())) {
        // Refused before a byte of the body is read; the connection is closed with it.
        let mut res = keyed(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKey::TooLarge,
            "request body too large",
        );
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    let timeout = state.inner.limits.body_timeout;
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|l| l.as_bytes() != b"0");
    let req = req.map(|b| axum::body::Body::new(serve::TimeoutBody::new(b, timeout)));
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let failed = res.status().is_client_error() || res.status().is_server_error();
    let h = res.headers_mut();
    if has_body && failed {
        // The body may be unread (too large, stalled, refused before reading it): close the
        // connection instead of waiting for the rest of it.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The largest body a request to `path` may announce: the firmware upload's limit for it,
/// axum's default (2 MiB) for every other route.
fn max_body(path: &str) -> u64 {
    let max = if path == api::FIRMWARE_PATH {
        api::MAX_FIRMWARE_BYTES + 64 * 1024
    } else {
        2 * 1024 * 1024
    };
    u64::try_from(max).unwrap_or(u64::MAX)
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anybody (the login page and API, the static assets).
    Public,
    /// Only with a session (and, for unsafe methods, its CSRF token).
    Session,
}

/// One route of the website, as [`router`] serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// HTTP method.
    pub method: Method,
    /// Path pattern as axum matches it (`/assets/{name}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// A router under construction together with the table of its routes: routes are added only
/// through `Routes::add`, so the table cannot miss one.
#[derive(Debug)]
pub struct Routes {
    router: Router<AppState>,
    table: Vec<RouteInfo>,
    access: Access,
}

impl Routes {
    /// No routes yet; every route added gets `access`.
    pub(crate) fn new(access: Access) -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
            access,
        }
    }

    /// Adds `route` (which must answer `method`) at `path`.
    pub(crate) fn add(
        mut self,
        method: Method,
        path: &'static str,
        route: MethodRouter<AppState>,
    ) -> Self {
        self.router = self.router.route(path, route);
        self.table.push(RouteInfo {
            method,
            path,
            access: self.access,
        });
        self
    }

    fn into_parts(self) -> (Router<AppState>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}

/// The routers of the website: (protected pages, protected API, public pages, public API).
fn parts() -> [Routes; 4] {
    [
        pages::protected(),
        api::protected(),
        pages::public(),
        api::public(),
    ]
}

/// Every route [`router`] serves.
pub fn route_table() -> Vec<RouteInfo> {
    parts().into_iter().flat_map(|r| r.into_parts().1).collect()
}

/// The website's service.
pub fn router(state: AppState) -> Router {
    let [pages, api, public_pages, public_api] = parts().map(|r| r.into_parts().0);
    let pages = pages.route_layer(middleware::from_fn_with_state(
        (state.clone(), false),
        require_session,
    ));
    let api = api.route_layer(middleware::from_fn_with_state(
        (state.clone(), true),
        require_session,
    ));
    Router::new()
        .merge(pages)
        .merge(api)
        .merge(public_pages)
        .merge(public_api)
        .fallback(|| async { keyed(StatusCode::NOT_FOUND, ErrorKey::NotFound, "not found") })
        .method_not_allowed_fallback(|| async {
            keyed(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorKey::MethodNotAllowed,
                "method not allowed for this route",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), harden))
        .with_state(state)
}

/// A running website.
#[derive(Debug)]
pub struct WebHandle {
    /// The address it listens on.
    pub local_addr: SocketAddr,
    state: AppState,
    restart: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WebHandle {
    /// Resolves when a restart (or factory reset) was requested on the website.
    pub async fn restart_requested(&mut self) {
        if self.restart.wait_for(|r| *r).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether the restart is one after a factory reset ([`AppState::factory_reset_requested`]).
    pub fn factory_reset_requested(&self) -> bool {
        self.state.factory_reset_requested()
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the website on `addr` (loopback or the building network).
pub async fn spawn(addr: SocketAddr, mut ctx: Context) -> Result<WebHandle, WebError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    ctx.listen = Some(local_addr);
    let (state, fresh) = AppState::new(ctx, logs::LogControl::global())?;
    if let Some(password) = fresh {
        // On the console only: never through tracing, so it is in no log file or ZIP.
        eprintln!(
            "\n  Device website: initial password (shown once, at first start): {password}\n"
        );
    }
    info!(%local_addr, "device website on http://{local_addr}/");
    let restart = state.restart_requested();
    let limits = state.inner.limits;
    let budget = if serve::cap_lifted_for_test() {
        warn!("KNX_ECHARGE_TEST_NO_CONNECTION_CAP: the website's connection cap is lifted");
        serve::Budget::new(usize::MAX / 2, usize::MAX / 2)
    } else {
        serve::Budget::new(
            serve::connection_budget(
                serve::fd_limit(),
                serve::open_fds(),
                limits.reserved_fds,
                limits.max_connections,
            ),
            limits.per_client,
        )
    };
    info!(
        "device website: at most {} connections ({} per client), {} file descriptors kept for the gateway",
        budget.max(),
        limits.per_client,
        limits.reserved_fds
    );
    let (stop, stop_rx) = watch::channel(false);
    let server = serve::Server {
        listener,
        router: router(state.clone()),
        limits,
        budget,
    };
    let task = tokio::spawn(serve::run(server, stop_rx));
    Ok(WebHandle {
        local_addr,
        state,
        restart,
        stop,
        task,
    })
}

/// Resolves when the website (if any) asked for a restart; never without a website.
pub async fn restart_wanted(web: &mut Option<WebHandle>) {
    match web {
        Some(w) => w.restart_requested().await,
        None => std::future::pending().await,
    }
}

/// Files in the data directory that a factory reset deletes: everything the device learned
/// after delivery (spec 8.3.5: the device is then unconfigured, as delivered). Only the
/// password file stays — it holds the initial password, which the reset makes current again.
/// Anything else in the directory is not the gateway's and is left alone.
pub fn factory_reset_files() -> [&'static str; 5] {
    [
        crate::store::CONFIG_FILE,
        settings::SETTINGS_FILE,
        crate::gateway::shell::PERSISTED_FILE,
        firmware::STAGED_IMAGE,
        firmware::STAGED_MANIFEST,
    ]
}

/// Deletes [`factory_reset_files`] and what an interrupted atomic write of them left behind.
pub fn erase_state(data: &DataDir) -> Result<(), crate::store::StoreError> {
    let names = factory_reset_files();
    let remove = |path: std::path::PathBuf| match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(crate::store::StoreError::Io {
            path: path.display().to_string(),
            source: e,
        }),
        _ => Ok(()),
    };
    for name in names {
        remove(data.file(name))?;
    }
    let leftovers = std::fs::read_dir(data.path()).map_err(|e| crate::store::StoreError::Io {
        path: data.path().display().to_string(),
        source: e,
    })?;
    for entry in leftovers.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if names
            .iter()
            .any(|n| file.starts_with(&format!(".{n}.tmp-")))
        {
            remove(entry.path())?;
        }
    }
    Ok(())
}

/// The demo's initial website password (README "Website").
pub const DEMO_PASSWORD: &str = "Demo-eCharge-1";

/// Replaces this process with a fresh start of the same binary and arguments (restart).
/// Returns only if that failed.
#[cfg(unix)]
pub fn reexec() -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(e) => e,
    }
}

/// Restart is not supported here.
#[cfg(not(unix))]
pub fn reexec() -> std::io::Error {
    std::io::Error::other("restart is supported on unix only")
}
