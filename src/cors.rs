//! Cross-origin requests (CORS) on the client listener: which web origins may call the faces
//! from a browser page served elsewhere (a uni-app H5 build, any single-page app), per
//! `server.cors_origins`.
//!
//! With origins configured, a preflight `OPTIONS` is answered on every path (the faces'
//! routes, the uploads, `/ws`), and every answer to an allowed origin, errors included,
//! carries `Access-Control-Allow-Origin` and exposes the headers clients read (`Retry-After`,
//! `ETag`, `Content-Range`). Credentials are never allowed: every face authenticates with a
//! header, never a cookie. A request from another origin is still served (a browser withholds
//! the answer from the page): non-browser clients send any `Origin` they like, and WebSocket
//! upgrades are not subject to CORS.

use actix_cors::Cors;
use actix_web::http::{header, Method};

/// The request headers the faces read; a preflight may ask for any of them.
pub const ALLOWED_HEADERS: [&str; 8] = [
    "token",
    "authorization",
    "content-type",
    "x-security-sign",
    "x-app-id",
    "range",
    "if-none-match",
    "x-requested-with",
];

/// How long a browser may cache a preflight's answer, seconds.
pub const PREFLIGHT_MAX_AGE_SECS: usize = 3600;

/// The CORS middleware for `origins` (`server.cors_origins`, already validated), or `None`
/// when it is empty: same origin only, no CORS headers and no preflight answers.
pub fn middleware(origins: &[String]) -> Option<Cors> {
    if origins.is_empty() {
        return None;
    }
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ])
        .allowed_headers(ALLOWED_HEADERS)
        .expose_headers([
            header::RETRY_AFTER,
            header::ETAG,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
        ])
        .max_age(PREFLIGHT_MAX_AGE_SECS)
        // Another origin's request is served without CORS headers rather than refused.
        .block_on_origin_mismatch(false);
    if origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin().send_wildcard();
    } else {
        for origin in origins {
            cors = cors.allowed_origin(origin);
        }
    }
    Some(cors)
}
