//! Router-level tests of the device website with `tower::ServiceExt::oneshot`: access control
//! on every route, CSRF, login lockout, session cookie attributes, and the API's settings
//! actions against a running shell.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Read as _;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use knx_echarge::config::file;
use knx_echarge::gateway::shell::{self, ShellHandle};
use knx_echarge::store::DataDir;
use knx_echarge::web::{self, AppState, Context, firmware, logs::LogControl};
use tower::ServiceExt as _;

const PASSWORD: &str = "Test-Pass-123";

struct Gw {
    state: AppState,
    shell: ShellHandle,
    _dir: tempfile::TempDir,
    data: DataDir,
}

fn gateway() -> Gw {
    gateway_with(|_| {})
}

/// [`gateway`] with the website's context adjusted by `adjust`.
fn gateway_with(adjust: impl FnOnce(&mut Context)) -> Gw {
    let text = std::fs::read_to_string("examples/five-chargers.toml").unwrap();
    let config = file::parse(&text, "five-chargers.toml").unwrap();
    let shell = shell::spawn(config.clone(), true, None);
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let mut ctx = Context::new(
        config,
        data.clone(),
        shell.events.clone(),
        shell.snapshot.clone(),
    );
    ctx.initial_password = Some(PASSWORD.to_owned());
    adjust(&mut ctx);
    let (state, fresh) = AppState::new(ctx, std::sync::Arc::new(LogControl::detached())).unwrap();
    assert_eq!(fresh.as_deref(), Some(PASSWORD));
    Gw {
        state,
        shell,
        _dir: dir,
        data,
    }
}

fn app(gw: &Gw) -> Router {
    web::router(gw.state.clone())
}

async fn send(gw: &Gw, req: Request<Body>) -> axum::response::Response {
    app(gw).oneshot(req).await.unwrap()
}

async fn body_json(res: axum::response::Response) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

fn json_req(method: &str, path: &str, body: &serde_json::Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Logs in; returns (cookie header value, CSRF token).
async fn login(gw: &Gw, password: &str) -> (String, String) {
    let res = send(
        gw,
        json_req(
            "POST",
            "/api/v1/login",
            &serde_json::json!({ "password": password }),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let csrf = body_json(res).await["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (pair, csrf)
}

fn authed(
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie);
    if let Some(t) = csrf {
        b = b.header("x-csrf-token", t);
    }
    match body {
        Some(j) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(j.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// The names of the files in the data directory, sorted.
fn files(data: &DataDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every page and API route, with a body valid for it.
fn routes() -> Vec<(&'static str, &'static str, Option<serde_json::Value>)> {
    use serde_json::json;
    vec![
        ("GET", "/", None),
        ("GET", "/settings", None),
        ("GET", "/licences", None),
        ("GET", "/api/v1/session", None),
        ("GET", "/api/v1/status", None),
        ("GET", "/api/v1/events", None),
        ("GET", "/api/v1/charging-points", None),
        ("GET", "/api/v1/faults", None),
        ("GET", "/api/v1/objects", None),
        ("GET", "/api/v1/dlm/history", None),
        ("GET", "/api/v1/settings", None),
        ("GET", "/api/v1/logs.zip", None),
        ("GET", "/api/v1/licences", None),
        ("POST", "/api/v1/logout", None),
        (
            "PUT",
            "/api/v1/settings/logging",
            Some(json!({"mode": "extended"})),
        ),
        (
            "PUT",
            "/api/v1/settings/network",
            Some(json!({"dns": "192.168.1.1"})),
        ),
        (
            "PUT",
            "/api/v1/settings/ntp",
            Some(json!({"enabled": true, "servers": ["ntp.example.org"]})),
        ),
        (
            "POST",
            "/api/v1/programming-mode",
            Some(json!({"on": true})),
        ),
        (
            "POST",
            "/api/v1/password",
            Some(json!({"current": PASSWORD, "new": "Another-Pass-9"})),
        ),
        ("POST", "/api/v1/restart", None),
        (
            "POST",
            "/api/v1/factory-reset",
            Some(json!({"confirm": "RESET"})),
        ),
        ("POST", "/api/v1/firmware", None),
    ]
}

/// The hand-written lists above are the routes the router serves, no more, no fewer: a new
/// route fails this test until it is listed (and so checked for access control and CSRF).
#[test]
fn the_route_lists_match_the_routers_route_table() {
    use std::collections::BTreeSet;
    let table = web::route_table();
    let served = |access: web::Access| -> BTreeSet<(String, String)> {
        table
            .iter()
            .filter(|r| r.access == access)
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect()
    };
    let listed: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(listed.len(), routes().len(), "a route is listed twice");
    assert_eq!(served(web::Access::Session), listed);
    let public: BTreeSet<(String, String)> = [
        ("GET", "/login"),
        ("GET", "/assets/{name}"),
        ("GET", "/upnp/device.xml"),
        ("POST", "/api/v1/login"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(
        served(web::Access::Public),
        public,
        "a route without a session is a security decision: list it here"
    );
    assert_eq!(table.len(), listed.len() + public.len());
}

#[tokio::test]
async fn every_route_without_a_session_is_refused() {
    let gw = gateway();
    for cookie in [None, Some("kec_session=forged-or-expired")] {
        for (method, path, body) in routes() {
            let mut b = Request::builder().method(method).uri(path);
            if let Some(c) = cookie {
                b = b.header(header::COOKIE, c);
            }
            let req = match &body {
                Some(j) => b
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(j.to_string()))
                    .unwrap(),
                None => b.body(Body::empty()).unwrap(),
            };
            let res = send(&gw, req).await;
            if path.starts_with("/api/") {
                assert_eq!(
                    res.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} ({cookie:?})"
                );
            } else {
                assert!(res.status().is_redirection(), "{method} {path}");
                assert_eq!(res.headers()[header::LOCATION], "/login");
            }
        }
    }
    // Nothing happened: programming mode is off, no restart, password unchanged.
    assert!(!gw.shell.snapshot.borrow().programming_mode);
    assert!(!*gw.state.restart_requested().borrow());
    // The login page and the assets are public.
    for path in [
        "/login",
        "/assets/app.js",
        "/assets/style.css",
        "/assets/i18n.js",
    ] {
        let res = send(&gw, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    gw.shell.shutdown().await;
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_logout_ends_the_session() {
    let gw = gateway();
    let res = send(
        &gw,
        json_req(
            "POST",
            "/api/v1/login",
            &serde_json::json!({"password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let set_cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    assert!(
        res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let (cookie, csrf) = login(&gw, PASSWORD).await;
    let res = send(&gw, authed("GET", "/api/v1/status", &cookie, None, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let status = body_json(res).await;
    assert_eq!(status["charging_points"].as_array().unwrap().len(), 5);
    assert_eq!(status["device"]["individual_address"], "1.1.10");
    let res = send(&gw, authed("GET", "/", &cookie, None, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = send(
        &gw,
        authed("POST", "/api/v1/logout", &cookie, Some(&csrf), None),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = send(&gw, authed("GET", "/api/v1/status", &cookie, None, None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    gw.shell.shutdown().await;
}

#[tokio::test]
async fn state_changing_requests_without_the_csrf_token_are_refused() {
    let gw = gateway();
    let (cookie, csrf) = login(&gw, PASSWORD).await;
    for (method, path, body) in routes() {
        if method == "GET" {
            continue;
        }
        for token in [None, Some("0".repeat(64).as_str()), Some(&csrf[..10])] {
            let res = send(&gw, authed(method, path, &cookie, token, body.as_ref())).await;
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{method} {path} with token {token:?}"
            );
        }
    }
    assert!(!gw.shell.snapshot.borrow().programming_mode);
    assert!(!*gw.state.restart_requested().borrow());
    // A cross-site origin is refused even for the login.
    let mut req = json_req(
        "POST",
        "/api/v1/login",
        &serde_json::json!({"password": PASSWORD}),
    );
    req.headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    req.headers_mut()
        .insert(header::HOST, "127.0.0.1".parse().unwrap());
    assert_eq!(send(&gw, req).await.status(), StatusCode::FORBIDDEN);
    // With the token the same request works.
    let res = send(
        &gw,
        authed(
            "POST",
            "/api/v1/programming-mode",
            &cookie,
            Some(&csrf),
            Some(&serde_json::json!({"on": true})),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut snap = gw.shell.snapshot.clone();
    tokio::time::timeout(
        Duration::from_secs(5),
        snap.wait_for(|s| s.programming_mode),
    )
    .await
    .unwrap()
    .unwrap();
    gw.shell.shutdown().await;
}

#[tokio::test]
async fn the_sixth_wrong_password_within_a_minute_is_locked_out() {
    let gw = gateway();
    for i in 1..=5 {
        let res = send(
            &gw,
            json_req(
                "POST",
                "/api/v1/login",
                &serde_json::json!({"password": format!("wrong-{i}")}),
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let res = send(
        &gw,
        json_req(
            "POST",
            "/api/v1/login",
            &serde_json::json!({"password": "wrong-6"}),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    // Locked means locked: even the right password is refused now.
    let res = send(
        &gw,
        json_req(
            "POST",
            "/api/v1/login",
            &serde_json::json!({"password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    gw.shell.shutdown().await;
}

/// A login request from `client` (the address the server would see).
fn login_from(client: [u8; 4], password: &str) -> Request<Body> {
    let mut req = json_req(
        "POST",
        "/api/v1/login",
        &serde_json::json!({ "password": password }),
    );
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            client, 40000,
        ))));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_logins_get_five_guesses_and_argon2_runs_one_at_a_time() {
    let gw = gateway();
    let attacker = [192, 168, 1, 66];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let app = app(&gw);
        tasks.spawn(async move {
            app.oneshot(login_from(attacker, &format!("guess-{i}")))
                .await
                .unwrap()
                .status()
        });
    }
    let (mut verified, mut refused) = (0, 0);
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => verified += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (verified, refused),
        (5, 15),
        "exactly 5 passwords may be checked per minute and client"
    );
    // Locked means locked: the right password is refused now too.
    let res = send(&gw, login_from(attacker, PASSWORD)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    // Another client is not affected.
    let res = send(&gw, login_from([192, 168, 1, 10], PASSWORD)).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Logins from many clients at once: Argon2 still runs one at a time.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6u8 {
        let app = app(&gw);
        tasks.spawn(async move {
            app.oneshot(login_from([10, 0, 0, i], "wrong"))
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(gw.state.hashes_peak(), web::auth::PARALLEL_HASHES);
    gw.shell.shutdown().await;
}

#[tokio::test]
async fn password_change_follows_the_rule_and_ends_the_sessions() {
    let gw = gateway();
    let (cookie, csrf) = login(&gw, PASSWORD).await;
    let change = |current: &str, new: &str| {
        authed(
            "POST",
            "/api/v1/password",
            &cookie,
            Some(&csrf),
            Some(&serde_json::json!({"current": current, "new": new})),
        )
    };
    // Each refusal names its reason by a key the German page translates.
    for (weak, key) in [
        ("Short-1", "weak_length"),
        ("alllowercase1", "weak_repeat"),
        ("lowercase12", "weak_classes"),
        ("Aaaa-bbbb-1111", "weak_repeat"),
    ] {
        let res = send(&gw, change(PASSWORD, weak)).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{weak}");
        assert_eq!(body_json(res).await["key"], key, "{weak}");
    }
    let res = send(&gw, change("not-the-password", "Another-Pass-9")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_json(res).await["key"], "wrong_current");
    let res = send(&gw, change(PASSWORD, "Another-Pass-9")).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The old session is gone, the old password no longer works, the new one does.
    let res = send(&gw, authed("GET", "/api/v1/status", &cookie, None, None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = send(
        &gw,
        json_req(
            "POST",
            "/api/v1/login",
            &serde_json::json!({"password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (cookie, csrf) = login(&gw, "Another-Pass-9").await;
    // Factory reset: confirmation required; then the initial password is back.
    let reset = |body: serde_json::Value| {
        authed(
            "POST",
            "/api/v1/factory-reset",
            &cookie,
            Some(&csrf),
            Some(&body),
        )
    };
    let res = send(&gw, reset(serde_json::json!({"confirm": "yes"}))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Everything the device learned after delivery is in the data directory now.
    gw.data.write("config.toml", b"# saved").unwrap();
    gw.data
        .write("counters.json", b"{\"plug_in_mwh\":{}}")
        .unwrap();
    gw.data.write(".config.toml.tmp-1", b"torn").unwrap();
    for (path, body) in [
        (
            "/api/v1/settings/network",
            serde_json::json!({"dns": "10.0.0.53"}),
        ),
        (
            "/api/v1/settings/logging",
            serde_json::json!({"mode": "extended"}),
        ),
    ] {
        let res = send(&gw, authed("PUT", path, &cookie, Some(&csrf), Some(&body))).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    let upload = Request::post("/api/v1/firmware")
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .body(Body::from(firmware::package("99.0.0", b"image")))
        .unwrap();
    assert_eq!(send(&gw, upload).await.status(), StatusCode::OK);
    let before = files(&gw.data);
    for name in web::factory_reset_files() {
        assert!(before.contains(&name.to_owned()), "{name} in {before:?}");
    }
    let res = send(&gw, reset(serde_json::json!({"confirm": "RESET"}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(*gw.state.restart_requested().borrow());
    assert!(gw.state.factory_reset_requested());
    // State of delivery: only the password file is left, with the initial password current.
    assert_eq!(files(&gw.data), vec![web::auth::PASSWORD_FILE.to_owned()]);
    let hashes: serde_json::Value =
        serde_json::from_slice(&gw.data.read(web::auth::PASSWORD_FILE).unwrap().unwrap()).unwrap();
    assert_eq!(hashes["current"], hashes["initial"]);
    let res = send(
        &gw,
        json_req(
            "POST",
            "/api/v1/login",
            &serde_json::json!({"password": "Another-Pass-9"}),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (cookie, _) = login(&gw, PASSWORD).await;
    let settings =
        body_json(send(&gw, authed("GET", "/api/v1/settings", &cookie, None, None)).await).await;
    assert_eq!(settings["logging"], "simple");
    assert!(settings["firmware"]["staged"].is_null());
    gw.shell.shutdown().await;
}

#[tokio::test]
async fn settings_logs_zip_firmware_and_live_events() {
    let gw = gateway();
    let (cookie, csrf) = login(&gw, PASSWORD).await;
    // DNS and NTP are stored in the data directory.
    let res = send(
        &gw,
        authed(
            "PUT",
            "/api/v1/settings/network",
            &cookie,
            Some(&csrf),
            Some(&serde_json::json!({"dns": "not-an-ip"})),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    for (path, body) in [
        (
            "/api/v1/settings/network",
            serde_json::json!({"dns": "10.0.0.53"}),
        ),
        (
            "/api/v1/settings/ntp",
            serde_json::json!({"enabled": false, "servers": ["ntp1.example.org", "10.0.0.1"]}),
        ),
        (
            "/api/v1/settings/logging",
            serde_json::json!({"mode": "extended"}),
        ),
    ] {
        let res = send(&gw, authed("PUT", path, &cookie, Some(&csrf), Some(&body))).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    let stored = String::from_utf8(gw.data.read("web-settings.json").unwrap().unwrap()).unwrap();
    assert!(stored.contains("10.0.0.53") && stored.contains("ntp1.example.org"));
    let settings =
        body_json(send(&gw, authed("GET", "/api/v1/settings", &cookie, None, None)).await).await;
    assert_eq!(settings["logging"], "extended");
    assert_eq!(settings["network"]["dns"], "10.0.0.53");

    // Log ZIP.
    let res = send(&gw, authed("GET", "/api/v1/logs.zip", &cookie, None, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/zip");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    for want in [
        "knx-echarge.log",
        "status.json",
        "faults.json",
        "system.txt",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let mut system = String::new();
    zip.by_name("system.txt")
        .unwrap()
        .read_to_string(&mut system)
        .unwrap();
    assert!(system.contains(env!("CARGO_PKG_VERSION")));

    // Firmware: older refused, newer verified and staged.
    let upload = |bytes: Vec<u8>| {
        Request::post("/api/v1/firmware")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bytes))
            .unwrap()
    };
    let res = send(&gw, upload(firmware::package("0.0.1", b"old image"))).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body_json(res).await["error"]
            .as_str()
            .unwrap()
            .contains("not newer")
    );
    assert!(firmware::staged(&gw.data).is_none());
    let res = send(&gw, upload(firmware::package("99.0.0", b"new image"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(firmware::staged(&gw.data).unwrap().version, "99.0.0");

    // Live events: the stream starts with a status event.
    let res = send(&gw, authed("GET", "/api/v1/events", &cookie, None, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = res.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: status"), "{text}");
    assert!(text.contains("\"charging_points\""));
    gw.shell.shutdown().await;
}

/// The status API shows the KNX link state the core got from the link: reconnecting and
/// down are told apart (they used to be derived from the COM LED, where both are "off").
#[tokio::test]
async fn status_shows_the_knx_link_state() {
    use knx_echarge::core::{Event, LinkState};
    let gw = gateway();
    let (cookie, _) = login(&gw, PASSWORD).await;
    let mut snapshot = gw.shell.snapshot.clone();
    for (state, shown) in [
        (LinkState::Down, "down"),
        (LinkState::Connected, "connected"),
        (LinkState::Reconnecting, "reconnecting"),
        (LinkState::Connected, "connected"),
        (LinkState::Down, "down"),
    ] {
        gw.shell.events.send(Event::KnxLink(state)).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            snapshot.wait_for(|s| s.knx_link == state),
        )
        .await
        .expect("the snapshot follows the link state")
        .unwrap();
        let res = send(&gw, authed("GET", "/api/v1/status", &cookie, None, None)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let status = body_json(res).await;
        assert_eq!(status["device"]["knx_link"], shown, "{state:?}");
    }
    // The page has a label for every state, in both languages.
    let res = send(&gw, authed("GET", "/assets/i18n.js", &cookie, None, None)).await;
    let i18n =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for key in [
        "link.connected",
        "link.traffic",
        "link.reconnecting",
        "link.down",
    ] {
        assert_eq!(
            i18n.matches(&format!("'{key}'")).count(),
            2,
            "{key} in EN and DE"
        );
    }
}

/// The status API shows why each charging point gets its current as the DLM decided it (not
/// guessed from the objects): a house load that uses up L2 holds the one vehicle at what L2
/// leaves, and the page's key for that reason is `phase_l2`.
#[tokio::test]
async fn status_carries_the_reason_the_dlm_recorded_for_each_charging_point() {
    use knx_echarge::chargers::{ChargerStatus, CpState};
    use knx_echarge::core::Event;
    use knx_echarge::dlm::Limit;
    use knx_echarge::objects::Value;
    use knx_echarge::units::{ChargePointId, Current, GoNumber, PerPhase, Phase};
    let gw = gateway();
    let (cookie, _) = login(&gw, PASSWORD).await;
    let cp2 = ChargePointId::new(2).unwrap();
    let status = ChargerStatus {
        state: Some(CpState::Connected),
        connected: true,
        currents: Some(PerPhase::splat(Current::ZERO)),
        ..ChargerStatus::default()
    };
    gw.shell
        .events
        .send(Event::ChargerPolled { cp: cp2, status })
        .await
        .unwrap();
    // The other charging points answer without a vehicle (until their first poll the DLM
    // books each at its minimum).
    for n in [1, 3, 4, 5] {
        let idle = ChargerStatus {
            state: Some(CpState::Available),
            connected: false,
            currents: Some(PerPhase::splat(Current::ZERO)),
            ..ChargerStatus::default()
        };
        gw.shell
            .events
            .send(Event::ChargerPolled {
                cp: ChargePointId::new(n).unwrap(),
                status: idle,
            })
            .await
            .unwrap();
    }
    // Fuse 35 A, reserve 3 A: 32 A budget; the house takes 24 A on L2, 8 A are left there.
    for (object, amps) in [(10, 5), (11, 24), (12, 5)] {
        gw.shell
            .events
            .send(Event::ObjectWritten {
                object: GoNumber(object),
                value: Value::Current(Current::from_amps(amps)),
            })
            .await
            .unwrap();
    }
    let mut snapshot = gw.shell.snapshot.clone();
    tokio::time::timeout(
        Duration::from_secs(15),
        snapshot.wait_for(|s| s.limits.get(cp2) == Some(Limit::Phase(Phase::L2))),
    )
    .await
    .expect("the DLM records that L2 limits charging point 2")
    .unwrap();
    let res = send(&gw, authed("GET", "/api/v1/status", &cookie, None, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let status = body_json(res).await;
    let point = |n: u64| {
        status["charging_points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(point(2)["limited_by"], "phase_l2", "{}", point(2));
    assert_eq!(point(2)["limited"], true);
    assert_eq!(point(3)["limited_by"], "no_vehicle");
    assert_eq!(point(3)["limited"], false);
    gw.shell.shutdown().await;
}

/// The status page shows the address the gateway uses, not the configured one: the
/// listener's own address when it is bound to one, else an address of the machine's
/// interfaces; the configured address (192.168.1.10 in the example) follows, labelled, when
/// it differs.
#[tokio::test]
async fn status_shows_the_address_in_use_and_the_configured_one_when_it_differs() {
    let status = |gw: &Gw, cookie: &str| {
        let req = authed("GET", "/api/v1/status", cookie, None, None);
        let app = app(gw);
        async move { body_json(app.oneshot(req).await.unwrap()).await }
    };
    // Listening on every interface: the address comes from the interfaces.
    let gw = gateway_with(|ctx| ctx.listen = Some("0.0.0.0:8080".parse().unwrap()));
    let (cookie, _) = login(&gw, PASSWORD).await;
    let device = status(&gw, &cookie).await["device"].clone();
    let machine = web::network::interfaces();
    let ip = device["ip"].as_str().unwrap();
    let carrier = machine
        .iter()
        .find(|i| i.addresses.iter().any(|a| a.to_string() == ip))
        .unwrap_or_else(|| panic!("{ip} is on no interface: {machine:?}"));
    assert_eq!(device["ip_source"], "interface");
    assert_eq!(device["interface"], carrier.name.as_str());
    assert_eq!(
        device["mac"].as_str(),
        carrier.mac.as_deref(),
        "the MAC of that interface"
    );
    let has_ipv4 = machine
        .iter()
        .any(|i| i.up && !i.loopback && i.addresses.iter().any(std::net::IpAddr::is_ipv4));
    if has_ipv4 {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        assert!(
            ip.is_ipv4() && !carrier.loopback,
            "a non-loopback IPv4 address is preferred: {ip}"
        );
    }
    assert_eq!(device["configured_ip"], "192.168.1.10");
    gw.shell.shutdown().await;
    // Bound to loopback: that is the address in use.
    let gw = gateway_with(|ctx| ctx.listen = Some("127.0.0.1:8080".parse().unwrap()));
    let (cookie, _) = login(&gw, PASSWORD).await;
    let device = status(&gw, &cookie).await["device"].clone();
    assert_eq!(device["ip"], "127.0.0.1");
    assert_eq!(device["ip_source"], "listener");
    assert_eq!(device["configured_ip"], "192.168.1.10");
    gw.shell.shutdown().await;
}

/// The licences API the page uses carries the licence texts (each once) and every package's
/// copyright notices: MIT and Apache-2.0 in full, axum's notice, and each package's licences
/// linked to a text.
#[tokio::test]
async fn licences_api_carries_the_licence_texts_and_the_copyright_notices() {
    let gw = gateway();
    let (cookie, _) = login(&gw, PASSWORD).await;
    let res = send(&gw, authed("GET", "/api/v1/licences", &cookie, None, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let lic = body_json(res).await;
    let text = |id: &str| {
        let found: Vec<&serde_json::Value> = lic["texts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["id"] == id)
            .collect();
        assert_eq!(found.len(), 1, "{id} once");
        found[0]["text"].as_str().unwrap().to_owned()
    };
    let mit = text("MIT");
    assert!(mit.contains("Permission is hereby granted, free of charge"));
    assert!(mit.contains("THE SOFTWARE IS PROVIDED \"AS IS\""));
    let apache = text("Apache-2.0");
    assert!(apache.contains("Version 2.0, January 2004"));
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));
    let packages = lic["packages"].as_array().unwrap();
    let axum = packages.iter().find(|p| p["name"] == "axum").unwrap();
    assert_eq!(axum["spdx"], serde_json::json!(["MIT"]));
    assert!(
        axum["notices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "Copyright (c) 2019 axum Contributors"),
        "{axum}"
    );
    for p in packages {
        for id in p["spdx"].as_array().unwrap() {
            let _ = text(id.as_str().unwrap());
        }
    }
    gw.shell.shutdown().await;
}

/// Asserts an API error: `status`, JSON, and `key` next to a non-empty `error`.
async fn check(res: axum::response::Response, status: StatusCode, key: &str, what: &str) {
    assert_eq!(res.status(), status, "{what}");
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/json",
        "{what}"
    );
    let body = body_json(res).await;
    assert_eq!(body["key"], key, "{what}: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {body}"
    );
}

/// Every API error has the same shape, `{"error": "...", "key": "..."}`, with the key the page
/// translates: an unknown route (404), a wrong method (405), a body that is not JSON (400),
/// not sent as JSON (415), JSON without the expected fields or types (422), a file too large
/// (413) and a factory reset without its confirmation (400).
#[tokio::test]
async fn api_errors_carry_the_error_shape_with_a_key() {
    let gw = gateway();
    let (cookie, csrf) = login(&gw, PASSWORD).await;
    let raw = |method: &str, path: &str, content_type: Option<&str>, body: &str| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf);
        if let Some(t) = content_type {
            b = b.header(header::CONTENT_TYPE, t);
        }
        b.body(Body::from(body.to_owned())).unwrap()
    };
    let json = Some("application/json");
    for (req, status, key, what) in [
        (
            authed("GET", "/api/v1/no-such-route", &cookie, None, None),
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown route with a session",
        ),
        (
            Request::get("/api/v1/no-such-route")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown route without a session",
        ),
        (
            raw("DELETE", "/api/v1/status", None, ""),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "wrong method",
        ),
        (
            raw("POST", "/api/v1/programming-mode", json, "{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "malformed JSON",
        ),
        (
            raw("POST", "/api/v1/programming-mode", None, "{\"on\": true}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_json",
            "JSON without its content type",
        ),
        (
            raw(
                "POST",
                "/api/v1/programming-mode",
                json,
                "{\"on\": \"yes\"}",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "wrong type",
        ),
        (
            raw(
                "PUT",
                "/api/v1/settings/logging",
                json,
                "{\"mode\": \"loud\"}",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "unknown logging mode",
        ),
        (
            raw("PUT", "/api/v1/settings/ntp", json, "{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "missing fields",
        ),
        (
            raw("POST", "/api/v1/password", json, "[]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "password change with an array",
        ),
        (
            json_req(
                "POST",
                "/api/v1/factory-reset",
                &serde_json::json!({"confirm": "yes"}),
            ),
            StatusCode::UNAUTHORIZED,
            "login_required",
            "factory reset without a session",
        ),
        (
            raw(
                "POST",
                "/api/v1/factory-reset",
                json,
                "{\"confirm\": \"yes\"}",
            ),
            StatusCode::BAD_REQUEST,
            "confirm_reset",
            "factory reset without the confirmation",
        ),
    ] {
        check(send(&gw, req).await, status, key, what).await;
    }
    // The login is public: a malformed body there too.
    let res = send(
        &gw,
        Request::post("/api/v1/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("password=x"))
            .unwrap(),
    )
    .await;
    check(res, StatusCode::BAD_REQUEST, "invalid_json", "login body").await;
    // A firmware file above the limit.
    let big = vec![0u8; web::api::MAX_FIRMWARE_BYTES + 1];
    let res = send(
        &gw,
        raw(
            "POST",
            "/api/v1/firmware",
            Some("application/octet-stream"),
            "",
        )
        .map(|_| Body::from(big)),
    )
    .await;
    check(
        res,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "firmware too large",
    )
    .await;
    gw.shell.shutdown().await;
}
