//! The operator's console at `/ui/`: a login page, one page of HTML, CSS and JavaScript
//! compiled into the binary (no CDN), which reads and steers the cluster through the REST API.
//!
//! Logging in with the admin token sets a session cookie (`HttpOnly`, `SameSite=Strict`) that
//! the REST API takes in place of `Authorization: Bearer`. The session is stateless, so it
//! holds across restarts and on every manager that shares the token: its value is an expiry
//! and an HMAC of it under the admin token, and changing the token ends every session. A state
//! change made with the cookie must also carry `X-CSRF-Token`, an HMAC of the session that
//! only the console's own page is given (`rest::Admin`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use damocles_actors::sealing::table_of;
use damocles_actors::thread::plan::PlanKind;
use damocles_actors::wire::auth::{ct_eq, hmac};
use damocles_actors::wire::hex;
use damocles_actors::wire::processor::Stage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::ApiError;
use crate::rest::{Admin, RestState};

/// The session cookie's name.
pub const COOKIE: &str = "damocles_session";
/// The header a state change made with the session cookie carries.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// How long a login lasts.
const SESSION_SECS: u64 = 12 * 3600;

const LOGIN_HTML: &str = include_str!("ui/login.html");
const APP_HTML: &str = include_str!("ui/app.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// A session cookie's value for a login at `now` (unix seconds): `<expiry>.<hex mac>`.
pub fn new_session(token: &str, now: u64) -> String {
    let expires = (now + SESSION_SECS).to_string();
    let mac = hmac(
        token.as_bytes(),
        &[b"damocles ui session v1 ", expires.as_bytes()],
    );
    format!("{expires}.{}", hex::encode(&mac))
}

/// Whether `value` is a session this token made and that has not expired at `now`.
pub fn valid_session(token: &str, value: &str, now: u64) -> bool {
    let Some((expires, _)) = value.split_once('.') else {
        return false;
    };
    let Ok(at) = expires.parse::<u64>() else {
        return false;
    };
    // Made with this token at some time in the past, and still in force.
    let Some(made) = at.checked_sub(SESSION_SECS) else {
        return false;
    };
    at > now && ct_eq(new_session(token, made).as_bytes(), value.as_bytes())
}

/// The CSRF token of a session: the page gets it, a cross-site form cannot.
pub fn csrf_of(token: &str, session: &str) -> String {
    hex::encode(&hmac(
        token.as_bytes(),
        &[b"damocles ui csrf v1 ", session.as_bytes()],
    ))
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn unix_now() -> u64 {
    u64::try_from(damocles_actors::wire::auth::unix_now()).unwrap_or(0)
}

/// The request's session, when it carries a valid one.
pub fn session<'a>(req: &'a HttpRequest, token: &str) -> Option<&'a str> {
    cookie(req, COOKIE).filter(|v| valid_session(token, v, unix_now()))
}

/// A page of the console: never cached, never framed, only our own scripts and styles.
fn page(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn login_page(status: actix_web::http::StatusCode, error: Option<&str>) -> HttpResponse {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    let token_file = crate::home::token_path().display().to_string();
    let body = LOGIN_HTML
        .replace("{{ERROR}}", &error)
        .replace("{{TOKEN_FILE}}", &html_escape(&token_file));
    page(status, body)
}

/// `GET /ui/`: the console with a session, the login page without one.
pub async fn index(req: HttpRequest, s: web::Data<RestState>) -> HttpResponse {
    match session(&req, &s.token) {
        Some(sess) => {
            let body = APP_HTML.replace("{{CSRF}}", &csrf_of(&s.token, sess));
            page(actix_web::http::StatusCode::OK, body)
        }
        // A cookie that no longer holds: it expired, or the admin token changed.
        None if cookie(&req, COOKIE).is_some_and(|v| !v.is_empty()) => login_page(
            actix_web::http::StatusCode::OK,
            Some("Your session has ended (it expired, or the admin token changed): log in again."),
        ),
        None => login_page(actix_web::http::StatusCode::OK, None),
    }
}

/// `GET /ui`: to `/ui/`, where the page's relative links resolve.
pub async fn to_index() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /ui/login` (a form): the admin token sets the session cookie; anything else shows the
/// login page again, with what was wrong.
pub async fn login(
    req: HttpRequest,
    s: web::Data<RestState>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let given = form.token.trim();
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    if !ct_eq(given.as_bytes(), s.token.as_bytes()) {
        tracing::warn!(peer = ?peer, "console login refused: wrong token");
        let why = if given.is_empty() {
            "Enter the admin token."
        } else {
            "That is not this manager's admin token."
        };
        return login_page(actix_web::http::StatusCode::UNAUTHORIZED, Some(why));
    }
    let value = new_session(&s.token, unix_now());
    tracing::info!(peer = ?peer, "console login");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/"))
        .insert_header((
            header::SET_COOKIE,
            format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}"),
        ))
        .finish()
}

/// `POST /ui/logout`: clears the cookie (the session itself ends at its expiry, or when the
/// admin token changes).
pub async fn logout() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/"))
        .insert_header((
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        ))
        .finish()
}

/// `GET /ui/app.css` (the login page uses it too) and `GET /ui/app.js` (only with a session).
pub async fn asset(
    req: HttpRequest,
    s: web::Data<RestState>,
    file: web::Path<String>,
) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" if session(&req, &s.token).is_some() => (APP_JS, "text/javascript; charset=utf-8"),
        "app.js" => return HttpResponse::Unauthorized().finish(),
        _ => return HttpResponse::NotFound().body("no such file in the console"),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

/// `GET /ui/states`: what the console's pickers offer: the states each sector plan can be
/// resumed into (the worker checks the same table), and every stage a limit can be set on.
#[derive(Debug, Serialize, Deserialize)]
pub struct Choices {
    pub plans: BTreeMap<String, Vec<String>>,
    pub stages: Vec<String>,
}

pub fn choices() -> Choices {
    let plans = PlanKind::ALL
        .iter()
        .filter_map(|p| table_of(*p).map(|t| (p.name().to_string(), t)))
        .map(|(name, t)| {
            let states = t.rows.iter().map(|r| r.state.name().to_string()).collect();
            (name, states)
        })
        .collect();
    let stages = Stage::ALL.iter().map(|s| s.name().to_string()).collect();
    Choices { plans, stages }
}

pub async fn states(_admin: Admin) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(choices()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_until_it_expires_and_only_under_its_token() {
        let s = new_session("tok", 1_000);
        assert!(valid_session("tok", &s, 1_000));
        assert!(valid_session("tok", &s, 1_000 + SESSION_SECS - 1));
        assert!(!valid_session("tok", &s, 1_000 + SESSION_SECS));
        assert!(!valid_session("other", &s, 1_000));
        // A later expiry with the old mac, a missing mac, garbage: refused.
        let (_, mac) = s.split_once('.').unwrap();
        let forged = format!("{}.{mac}", 1_000 + 2 * SESSION_SECS);
        assert!(!valid_session("tok", &forged, 1_000));
        assert!(!valid_session("tok", "123", 0));
        assert!(!valid_session("tok", "x.y", 0));
        assert!(
            !valid_session("tok", "5.00", 0),
            "an expiry before any session could start"
        );
    }

    #[test]
    fn the_csrf_token_is_bound_to_the_session_and_the_token() {
        let a = new_session("tok", 1);
        let b = new_session("tok", 2);
        assert_ne!(csrf_of("tok", &a), csrf_of("tok", &b));
        assert_ne!(csrf_of("tok", &a), csrf_of("other", &a));
        assert_eq!(csrf_of("tok", &a).len(), 64);
    }

    #[test]
    fn the_pickers_offer_each_sector_plans_states_and_every_stage() {
        let c = choices();
        assert!(c.plans["sealer"].contains(&"PC1Done".to_string()), "{c:?}");
        assert!(!c.plans.contains_key("wdpost"), "{c:?}");
        assert!(c.stages.contains(&"pc1".to_string()) && c.stages.contains(&"c2".to_string()));
        for s in &c.stages {
            damocles_actors::limits::check_stage(s).unwrap();
        }
    }
}
