//! The HTML pages and static assets, compiled into the binary (no CDN: the device has no
//! internet). The pages are shells; `app.js` fills them from the JSON API.

use axum::extract::Path;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::{Access, ErrorKey, Routes, keyed};

const APP_HTML: &str = include_str!("assets/app.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");

/// (name, content type, content) of every static asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/login.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/i18n.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("assets/favicon.svg"),
    ),
];

fn page(html: &str, name: &str) -> Response {
    let body = html
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{PAGE}}", name);
    let mut res = Html(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            *body,
        )
            .into_response(),
        None => keyed(StatusCode::NOT_FOUND, ErrorKey::NotFound, "no such asset"),
    }
}

/// Pages without a session: the login page and the assets.
pub fn public() -> Routes {
    Routes::new(Access::Public)
        .add(
            Method::GET,
            "/login",
            get(|| async { page(LOGIN_HTML, "login") }),
        )
        .add(Method::GET, "/assets/{name}", get(asset))
        .add(
            Method::GET,
            crate::ssdp::DESCRIPTION_PATH,
            get(upnp_description),
        )
}

/// The UPnP device description (spec 7.1: the gateway in the Windows network environment),
/// with the website as its presentation URL, as reached by the requester (its `Host`).
async fn upnp_description(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(device) = state.upnp() else {
        return keyed(
            StatusCode::NOT_FOUND,
            ErrorKey::NotFound,
            "no UPnP description",
        );
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .map(str::to_owned)
        .or_else(|| state.listen().map(|a| a.to_string()))
        .unwrap_or_default();
    (
        [(axum::http::header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        device.description_xml(&format!("http://{host}")),
    )
        .into_response()
}

/// Pages that need a session.
pub fn protected() -> Routes {
    Routes::new(Access::Session)
        .add(Method::GET, "/", get(|| async { page(APP_HTML, "status") }))
        .add(
            Method::GET,
            "/settings",
            get(|| async { page(APP_HTML, "settings") }),
        )
        .add(
            Method::GET,
            "/licences",
            get(|| async { page(APP_HTML, "licences") }),
        )
}

#[cfg(test)]
mod tests {
    use super::super::ErrorKey;
    use crate::faults::FaultCode;

    /// The German page translates fault descriptions by fault code and server errors by key:
    /// a code or key without a German text would reach it in English.
    #[test]
    fn german_texts_exist_for_every_fault_code_and_error_key() {
        let i18n = include_str!("assets/i18n.js");
        let de = i18n.find("  de: {").map(|at| &i18n[at..]).unwrap();
        for code in FaultCode::ALL {
            let key = format!("'fault.desc.{}': '", code.text());
            assert!(de.contains(&key), "no German description for {code}");
        }
        for key in ErrorKey::ALL {
            let entry = format!("'err.{}': '", key.as_str());
            assert!(de.contains(&entry), "no German text for error {key:?}");
        }
        // English comes from the server: no English copies to drift apart.
        let en = &i18n[..i18n.find("  de: {").unwrap()];
        assert!(!en.contains("'fault.desc.") && !en.contains("'err."));
    }

    /// Every reason the DLM can record for a charging point's current has a text in both
    /// languages, and the page has no text for a reason that no longer exists.
    #[test]
    fn every_current_reason_has_an_english_and_a_german_text() {
        let i18n = include_str!("assets/i18n.js");
        let at = i18n.find("  de: {").unwrap();
        let (en, de) = i18n.split_at(at);
        for limit in crate::dlm::Limit::ALL {
            let entry = format!("'lim.{}': '", limit.key());
            assert!(en.contains(&entry), "no English text for {limit:?}");
            assert!(de.contains(&entry), "no German text for {limit:?}");
        }
        let keys = i18n.matches("'lim.").count();
        assert_eq!(keys, 2 * crate::dlm::Limit::ALL.len(), "stale lim.* texts");
    }
}
