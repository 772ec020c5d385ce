//! The JSON API under `/api/v1/` (documented in README "Website").
//!
//! Every route but `POST /api/v1/login` needs a session; every `POST`/`PUT` needs the CSRF
//! token of the session in `X-CSRF-Token` (see [`super`]). Every error, including an unknown
//! route (404), a wrong method (405) and a body that is not the JSON a route expects (400 not
//! JSON, 415 not sent as JSON, 422 wrong fields or types), is `{"error": "...", "key": "..."}`
//! ([`super::keyed`]).

use std::convert::Infallible;
use std::io::Write as _;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use super::auth::{self, Admission};
use super::logs::LogMode;
use super::{
    Access, AppState, ClientAddr, ErrorKey, Routes, SessionInfo, firmware, keyed, network, status,
};
use crate::core::Event;

/// The firmware upload's route.
pub const FIRMWARE_PATH: &str = "/api/v1/firmware";

/// Largest firmware file accepted.
pub const MAX_FIRMWARE_BYTES: usize = 64 * 1024 * 1024;

/// Routes that need no session.
pub fn public() -> Routes {
    Routes::new(Access::Public).add(Method::POST, "/api/v1/login", post(login))
}

/// Routes that need a session.
pub fn protected() -> Routes {
    Routes::new(Access::Session)
        .add(Method::POST, "/api/v1/logout", post(logout))
        .add(Method::GET, "/api/v1/session", get(session))
        .add(Method::GET, "/api/v1/status", get(status_json))
        .add(Method::GET, "/api/v1/events", get(events))
        .add(Method::GET, "/api/v1/charging-points", get(charging_points))
        .add(Method::GET, "/api/v1/faults", get(faults))
        .add(Method::GET, "/api/v1/objects", get(objects))
        .add(Method::GET, "/api/v1/dlm/history", get(history))
        .add(Method::GET, "/api/v1/settings", get(settings))
        .add(Method::PUT, "/api/v1/settings/logging", put(set_logging))
        .add(Method::PUT, "/api/v1/settings/network", put(set_network))
        .add(Method::PUT, "/api/v1/settings/ntp", put(set_ntp))
        .add(
            Method::POST,
            "/api/v1/programming-mode",
            post(programming_mode),
        )
        .add(Method::POST, "/api/v1/password", post(change_password))
        .add(Method::POST, "/api/v1/restart", post(restart))
        .add(Method::POST, "/api/v1/factory-reset", post(factory_reset))
        .add(Method::GET, "/api/v1/logs.zip", get(logs_zip))
        .add(
            Method::POST,
            FIRMWARE_PATH,
            post(upload_firmware).layer(DefaultBodyLimit::disable()),
        )
        .add(Method::GET, "/api/v1/licences", get(licences))
}

/// A body that is not the JSON the route expects: the rejection's status (400 not JSON, 415
/// not sent as JSON, 422 wrong fields or types) in the usual error shape; `expected` says what
/// the route takes.
fn bad_body(rejection: &JsonRejection, expected: &str) -> Response {
    let key = match rejection {
        JsonRejection::JsonDataError(_) => ErrorKey::InvalidBody,
        _ => ErrorKey::InvalidJson,
    };
    keyed(
        rejection.status(),
        key,
        format!("expected {expected}: {}", rejection.body_text()),
    )
}

fn session_cookie_header(id: &str, max_age: Duration) -> HeaderValue {
    let value = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        auth::SESSION_COOKIE,
        max_age.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("kec_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// `POST /api/v1/login` body. (No `Debug`: it holds a password.)
#[derive(Deserialize)]
pub struct Login {
    /// The device password.
    pub password: String,
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: Result<Json<Login>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return bad_body(&e, "{\"password\": …}"),
    };
    if let Some(damage) = state.inner.passwords.damage() {
        return keyed(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKey::PasswordDamaged,
            damage,
        );
    }
    let sessions = &state.inner.sessions;
    if let Admission::Locked(wait) = sessions.admit(client, Instant::now()) {
        warn!(target: crate::web::logs::SECURITY, client = ?client, "login refused: locked out after repeated wrong passwords");
        let mut res = keyed(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorKey::Locked,
            format!(
                "too many wrong passwords: locked for {} s",
                wait.as_secs().max(1)
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    // The attempt is counted now; only then is the password checked, one Argon2 at a time,
    // first attempts before repeated ones.
    let strikes = sessions.attempts(client, Instant::now()).saturating_sub(1);
    let st = state.clone();
    let Ok(ok) = state
        .inner
        .hashes
        .run(strikes, move || st.inner.passwords.verify(&body.password))
        .await
    else {
        warn!(target: crate::web::logs::SECURITY, client = ?client, "login refused: password check busy");
        return keyed(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKey::Busy,
            auth::Busy.to_string(),
        );
    };
    if !ok {
        sessions.failed(client, Instant::now());
        warn!(target: crate::web::logs::SECURITY, client = ?client, "login failed: wrong password");
        return keyed(
            StatusCode::UNAUTHORIZED,
            ErrorKey::WrongPassword,
            "wrong password",
        );
    }
    sessions.succeeded(client);
    let (id, csrf) = sessions.create(Instant::now());
    info!(target: crate::web::logs::SECURITY, client = ?client, "login");
    let mut res = Json(json!({ "csrf_token": csrf })).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie_header(&id, sessions.policy().absolute),
    );
    res
}

async fn logout(State(state): State<AppState>, Extension(s): Extension<SessionInfo>) -> Response {
    state.inner.sessions.remove(&s.id);
    let mut res = Json(json!({ "ok": true })).into_response();
    res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    res
}

async fn session(State(state): State<AppState>, Extension(s): Extension<SessionInfo>) -> Response {
    Json(json!({
        "csrf_token": s.csrf,
        "idle_timeout_s": state.inner.sessions.policy().idle.as_secs(),
    }))
    .into_response()
}

fn current_view(state: &AppState) -> status::StatusView {
    let snap = state.inner.snapshot.borrow().clone();
    // The configuration ETS downloaded since start, else the one the gateway started with.
    let running = snap.config.clone();
    let config = running.as_deref().unwrap_or(&state.inner.config);
    let ip = &config.ip;
    // A static setting the device cannot use leaves it on DHCP (crate::hw::network).
    let dhcp = ip.dhcp || crate::hw::network::static_problem(ip.address, ip.subnet_mask).is_some();
    let network = network::view(state.inner.listen, dhcp, ip.address, &network::interfaces());
    status::view(config, &snap, state.inner.started.elapsed(), network)
}

async fn status_json(State(state): State<AppState>) -> Response {
    Json(current_view(&state)).into_response()
}

async fn charging_points(State(state): State<AppState>) -> Response {
    Json(current_view(&state).charging_points).into_response()
}

async fn faults(State(state): State<AppState>) -> Response {
    Json(current_view(&state).faults).into_response()
}

/// The group objects of the configuration in force, with their group addresses and current
/// values (`knx-echarge objects --json` of the running gateway, ETS downloads included).
async fn objects(State(state): State<AppState>) -> Response {
    let snap = state.inner.snapshot.borrow().clone();
    let running = snap.config.clone();
    let config = running.as_deref().unwrap_or(&state.inner.config);
    let table = config.object_table();
    let list: Vec<serde_json::Value> = table
        .objects()
        .iter()
        .map(|o| {
            let mut entry = serde_json::to_value(o).unwrap_or_default();
            if let Some(map) = entry.as_object_mut() {
                map.insert(
                    "value".into(),
                    serde_json::to_value(snap.objects.get(&o.number)).unwrap_or_default(),
                );
            }
            entry
        })
        .collect();
    Json(list).into_response()
}

async fn history(State(state): State<AppState>) -> Response {
    Json(json!({
        "span_s": status::HISTORY_SPAN.as_secs(),
        "samples": state.inner.history.samples(),
    }))
    .into_response()
}

/// Least time between two status events of one stream.
const SSE_MIN_GAP: Duration = Duration::from_millis(250);
/// Status events are sent at least this often (uptime, and to notice an ended session).
const SSE_MAX_GAP: Duration = Duration::from_secs(5);

async fn events(
    State(state): State<AppState>,
    Extension(s): Extension<SessionInfo>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = state.inner.snapshot.clone();
    let stream = futures_util::stream::unfold(
        (state, rx, s.id, true),
        |(state, mut rx, id, first)| async move {
            if !first {
                tokio::time::sleep(SSE_MIN_GAP).await;
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return None },
                    () = tokio::time::sleep(SSE_MAX_GAP) => {}
                }
            }
            if !state.inner.sessions.is_alive(&id, Instant::now()) {
                return None;
            }
            rx.mark_unchanged();
            let view = current_view(&state);
            let event = SseEvent::default()
                .event("status")
                .json_data(&view)
                .unwrap_or_else(|_| SseEvent::default().comment("encoding failed"));
            Some((Ok(event), (state, rx, id, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn settings(State(state): State<AppState>) -> Response {
    let s = state.inner.settings.get();
    let snap = state.inner.snapshot.borrow().clone();
    Json(json!({
        "logging": state.inner.logs.mode(),
        "network": {
            "dhcp": state.inner.config.ip.dhcp,
            "address": state.inner.config.ip.address.to_string(),
            "dns": s.network.dns.map_or_else(|| state.inner.config.ip.dns.to_string(), |d| d.to_string()),
        },
        "ntp": s.ntp,
        "programming_mode": snap.programming_mode,
        "firmware": {
            "installed": env!("CARGO_PKG_VERSION"),
            "staged": firmware::staged(&state.inner.data),
        },
    }))
    .into_response()
}

#[derive(Deserialize)]
struct LoggingBody {
    mode: LogMode,
}

async fn set_logging(
    State(state): State<AppState>,
    body: Result<Json<LoggingBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return bad_body(&e, "{\"mode\": \"simple\"|\"extended\"}"),
    };
    match state.inner.settings.update(|s| s.logging = body.mode) {
        Ok(_) => {
            state.inner.logs.set_mode(body.mode, false);
            info!(mode = ?body.mode, "logging mode changed");
            Json(json!({ "logging": body.mode })).into_response()
        }
        Err(e) => keyed(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKey::Internal,
            e.to_string(),
        ),
    }
}

#[derive(Deserialize)]
struct NetworkBody {
    dns: String,
}

async fn set_network(
    State(state): State<AppState>,
    body: Result<Json<NetworkBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return bad_body(&e, "{\"dns\": \"a.b.c.d\"}"),
    };
    let dns = if body.dns.trim().is_empty() {
        None
    } else {
        match body.dns.trim().parse::<std::net::Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                return keyed(
                    StatusCode::BAD_REQUEST,
                    ErrorKey::DnsInvalid,
                    "DNS address must be IPv4 a.b.c.d",
                );
            }
        }
    };
    match state.inner.settings.update(|s| s.network.dns = dns) {
        Ok(s) => {
            info!(dns = ?dns, "DNS setting changed");
            Json(json!({ "network": s.network })).into_response()
        }
        Err(e) => keyed(StatusCode::BAD_REQUEST, ErrorKey::DnsInvalid, e.to_string()),
    }
}

async fn set_ntp(
    State(state): State<AppState>,
    body: Result<Json<super::settings::Ntp>, JsonRejection>,
) -> Response {
    let ntp = match body {
        Ok(Json(ntp)) => ntp,
        Err(e) => return bad_body(&e, "{\"enabled\": bool, \"servers\": [..]}"),
    };
    match state.inner.settings.update(|s| s.ntp = ntp) {
        Ok(s) => {
            info!(enabled = s.ntp.enabled, servers = ?s.ntp.servers, "NTP settings changed");
            Json(json!({ "ntp": s.ntp })).into_response()
        }
        Err(e) => keyed(StatusCode::BAD_REQUEST, ErrorKey::NtpInvalid, e.to_string()),
    }
}

#[derive(Deserialize)]
struct ProgBody {
    on: bool,
}

async fn programming_mode(
    State(state): State<AppState>,
    body: Result<Json<ProgBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return bad_body(&e, "{\"on\": bool}"),
    };
    if state
        .inner
        .events
        .send(Event::SetProgrammingMode(body.on))
        .await
        .is_err()
    {
        return keyed(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKey::CoreDown,
            "the core is not running",
        );
    }
    info!(on = body.on, "programming mode set on the website");
    Json(json!({ "programming_mode": body.on })).into_response()
}

/// `POST /api/v1/password` body. (No `Debug`: it holds passwords.)
#[derive(Deserialize)]
struct PasswordBody {
    current: String,
    new: String,
}

async fn change_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return bad_body(&e, "{\"current\": …, \"new\": …}"),
    };
    if let Err(e) = auth::check_strength(&body.new) {
        return keyed(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKey::of_auth(&e),
            e.to_string(),
        );
    }
    // Counted like a login attempt: the current password is a guess too.
    if let Admission::Locked(_) = state.inner.sessions.admit(client, Instant::now()) {
        return keyed(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorKey::Locked,
            "too many wrong passwords",
        );
    }
    let strikes = state
        .inner
        .sessions
        .attempts(client, Instant::now())
        .saturating_sub(1);
    let st = state.clone();
    let Ok(result) = state
        .inner
        .hashes
        .run(strikes, move || {
            if !st.inner.passwords.verify(&body.current) {
                return Err(None);
            }
            st.inner.passwords.set(&body.new).map_err(Some)
        })
        .await
    else {
        return keyed(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKey::Busy,
            auth::Busy.to_string(),
        );
    };
    match result {
        Ok(()) => {
            state.inner.sessions.succeeded(client);
            state.inner.sessions.clear();
            info!(target: crate::web::logs::SECURITY, "device password changed; all sessions ended");
            let mut res = Json(json!({ "ok": true, "login_again": true })).into_response();
            res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
            res
        }
        Err(None) => {
            state.inner.sessions.failed(client, Instant::now());
            warn!(target: crate::web::logs::SECURITY, "password change refused: wrong current password");
            keyed(
                StatusCode::FORBIDDEN,
                ErrorKey::WrongCurrent,
                "the current password is wrong",
            )
        }
        Err(Some(e)) => keyed(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKey::of_auth(&e),
            e.to_string(),
        ),
    }
}

async fn restart(State(state): State<AppState>) -> Response {
    info!("restart requested on the website");
    state.inner.restart.send_replace(true);
    Json(json!({ "restarting": true })).into_response()
}

#[derive(Deserialize)]
struct ResetBody {
    confirm: String,
}

async fn factory_reset(
    State(state): State<AppState>,
    body: Result<Json<ResetBody>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(b)) if b.confirm == "RESET" => {}
        Ok(_) => {
            return keyed(
                StatusCode::BAD_REQUEST,
                ErrorKey::ConfirmReset,
                "confirm the reset with {\"confirm\": \"RESET\"}",
            );
        }
        Err(e) => return bad_body(&e, "{\"confirm\": \"RESET\"}"),
    }
    // State of delivery (spec 8.3.5): no configuration, settings, counters or staged
    // firmware; the initial password. The gateway erases again once the shell has stopped.
    state
        .inner
        .factory_reset
        .store(true, std::sync::atomic::Ordering::SeqCst);
    if let Err(e) = super::erase_state(&state.inner.data) {
        return keyed(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKey::Internal,
            e.to_string(),
        );
    }
    state.inner.settings.reset();
    state
        .inner
        .logs
        .set_mode(state.inner.settings.get().logging, false);
    if let Err(e) = state.inner.passwords.reset_to_initial() {
        return keyed(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKey::Internal,
            e.to_string(),
        );
    }
    state.inner.sessions.clear();
    warn!(
        target: crate::web::logs::SECURITY,
        "factory reset from the website: configuration, settings, counters and staged firmware deleted, initial password restored"
    );
    state.inner.restart.send_replace(true);
    let mut res = Json(json!({ "reset": true, "restarting": true })).into_response();
    res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    res
}

fn zip_logs(state: &AppState) -> Result<Vec<u8>, zip::result::ZipError> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let view = current_view(state);
    zip.start_file("knx-echarge.log", opts)?;
    zip.write_all(&state.inner.logs.ring().contents())?;
    zip.start_file("status.json", opts)?;
    zip.write_all(&serde_json::to_vec_pretty(&view).unwrap_or_default())?;
    zip.start_file("faults.json", opts)?;
    zip.write_all(&serde_json::to_vec_pretty(&view.faults).unwrap_or_default())?;
    zip.start_file("dlm-history.json", opts)?;
    zip.write_all(&serde_json::to_vec(&state.inner.history.samples()).unwrap_or_default())?;
    zip.start_file("system.txt", opts)?;
    let system = format!(
        "product: knx-echarge\nfirmware: {}\nlogging mode: {:?}\nuptime: {} s\ncreated: {}\n",
        env!("CARGO_PKG_VERSION"),
        state.inner.logs.mode(),
        state.inner.started.elapsed().as_secs(),
        chrono::Utc::now().to_rfc3339(),
    );
    zip.write_all(system.as_bytes())?;
    Ok(zip.finish()?.into_inner())
}

async fn logs_zip(State(state): State<AppState>) -> Response {
    info!("log files downloaded");
    match zip_logs(&state) {
        Ok(bytes) => {
            let name = format!(
                "attachment; filename=\"knx-echarge-logs-{}.zip\"",
                chrono::Utc::now().format("%Y%m%d-%H%M%S")
            );
            let mut res = (StatusCode::OK, bytes).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            );
            if let Ok(v) = HeaderValue::from_str(&name) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        Err(e) => keyed(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKey::Internal,
            e.to_string(),
        ),
    }
}

async fn upload_firmware(State(state): State<AppState>, body: axum::body::Body) -> Response {
    let Ok(_running) = state.inner.firmware_upload.clone().try_lock_owned() else {
        return keyed(
            StatusCode::CONFLICT,
            ErrorKey::UploadRunning,
            "another firmware upload is running; try again when it is done",
        );
    };
    let installed = env!("CARGO_PKG_VERSION");
    match receive_firmware(&state.inner.data, body, installed).await {
        Ok(m) => {
            info!(version = %m.version, sha256 = %m.sha256, "firmware verified and staged");
            Json(json!({
                "staged": m,
                "installed": installed,
                "message": "verified and staged; it is installed at the next update of the device",
            }))
            .into_response()
        }
        Err(Upload::TooLarge) => keyed(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKey::TooLarge,
            format!("firmware file: larger than {MAX_FIRMWARE_BYTES} bytes"),
        ),
        Err(Upload::Body(e)) => keyed(
            StatusCode::BAD_REQUEST,
            ErrorKey::InvalidBody,
            format!("firmware file: {e}"),
        ),
        Err(Upload::Firmware(e)) => {
            warn!("firmware upload refused: {e}");
            let status = match e {
                firmware::FirmwareError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            keyed(status, ErrorKey::of_firmware(&e), e.to_string())
        }
    }
}

/// Why an upload ended without staging.
enum Upload {
    Firmware(firmware::FirmwareError),
    TooLarge,
    Body(String),
}

/// Streams `body` through a [`firmware::Receiver`] (file writes off the async threads).
async fn receive_firmware(
    data: &crate::store::DataDir,
    body: axum::body::Body,
    installed: &'static str,
) -> Result<firmware::Manifest, Upload> {
    use futures_util::StreamExt as _;
    fn blocking<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, Upload> {
        r.map_err(|e| Upload::Firmware(firmware::FirmwareError::Store(e.to_string())))
    }
    let data = data.clone();
    let mut receiver = blocking(
        tokio::task::spawn_blocking(move || firmware::Receiver::new(&data, installed)).await,
    )?
    .map_err(Upload::Firmware)?;
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Upload::Body(e.to_string()))?;
        total += chunk.len();
        if total > MAX_FIRMWARE_BYTES {
            return Err(Upload::TooLarge);
        }
        let (r, pushed) = blocking(
            tokio::task::spawn_blocking(move || {
                let pushed = receiver.push(&chunk);
                (receiver, pushed)
            })
            .await,
        )?;
        receiver = r;
        pushed.map_err(Upload::Firmware)?;
    }
    blocking(tokio::task::spawn_blocking(move || receiver.finish()).await)?
        .map_err(Upload::Firmware)
}

/// The open-source licences of the firmware's dependencies (generated, see README).
pub const LICENCES_JSON: &str = include_str!("licences.json");

async fn licences() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        LICENCES_JSON,
    )
        .into_response()
}
