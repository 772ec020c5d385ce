//! Passwords are never logged: with the real logging set-up (`web::logs::init`, the logger the
//! binary installs) at the Extended level, logins with wrong and right passwords, a refused and
//! an accepted password change and the lockout leave their log lines, but no password, in the
//! log that the ZIP download hands out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use knx_echarge::config::file;
use knx_echarge::gateway::shell;
use knx_echarge::store::DataDir;
use knx_echarge::web::{self, AppState, Context, logs};
use tower::ServiceExt as _;

const INITIAL: &str = "Initial-Secret-7";
const NEW: &str = "Brand-New-Secret-8";
const WEAK: &str = "weaksecretvalue";
const WRONG: &str = "Wrong-Guess-Secret-9";

fn post(
    path: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    body: &serde_json::Value,
) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    if let Some(t) = csrf {
        b = b.header("x-csrf-token", t);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_log() {
    logs::init();
    let control = logs::LogControl::global();
    control.set_mode(logs::LogMode::Extended, false);
    let text = std::fs::read_to_string("examples/five-chargers.toml").unwrap();
    let config = file::parse(&text, "five-chargers.toml").unwrap();
    let shell = shell::spawn(config.clone(), true, None);
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let mut ctx = Context::new(config, data, shell.events.clone(), shell.snapshot.clone());
    ctx.initial_password = Some(INITIAL.to_owned());
    let (state, _) = AppState::new(ctx, control.clone()).unwrap();
    let app = || web::router(state.clone());

    let res = app()
        .oneshot(post(
            "/api/v1/login",
            None,
            None,
            &serde_json::json!({"password": WRONG}),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app()
        .oneshot(post(
            "/api/v1/login",
            None,
            None,
            &serde_json::json!({"password": INITIAL}),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let csrf = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (current, new, want) in [
        (INITIAL, WEAK, StatusCode::UNPROCESSABLE_ENTITY),
        (WRONG, NEW, StatusCode::FORBIDDEN),
        (INITIAL, NEW, StatusCode::OK),
    ] {
        let res = app()
            .oneshot(post(
                "/api/v1/password",
                Some(&cookie),
                Some(&csrf),
                &serde_json::json!({"current": current, "new": new}),
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), want);
    }
    for _ in 0..6 {
        let _ = app()
            .oneshot(post(
                "/api/v1/login",
                None,
                None,
                &serde_json::json!({"password": WRONG}),
            ))
            .await
            .unwrap();
    }

    let log = String::from_utf8_lossy(&control.ring().contents()).into_owned();
    assert!(log.contains("login failed: wrong password"), "{log}");
    assert!(log.contains("device password changed"));
    assert!(log.contains("locked out"));
    assert!(
        log.contains("DEBUG"),
        "Extended logging records debug lines"
    );
    for secret in [INITIAL, NEW, WEAK, WRONG] {
        assert!(!log.contains(secret), "{secret} was logged");
    }
    shell.shutdown().await;
}
