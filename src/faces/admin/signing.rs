//! The admin face's request signing: the `nonce`, `timestamp` and `sign` headers checked
//! against `admin.secret` and the clock, the nonces seen within the window (against
//! replay), and [`Signed`], the extractor of a checked request's JSON body with accessors
//! that name the field in their errors.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use dashmap::DashMap;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::{Admin, Result, State};
use crate::error::ApiError;
use crate::faces::FaceError;

/// What the admin listener remembers of signatures within the window: the nonces seen
/// (against replay) and the refused requests per client address (against guessing: past
/// `admin.max_refusals`, every request of that address is refused with 250 until the
/// window has passed). Both maps forget entries older than the window when they grow.
pub struct Signatures {
    seen: DashMap<String, Instant>,
    refused: DashMap<IpAddr, (u32, Instant)>,
    window: Duration,
    max_refusals: u32,
}

/// Longest nonce accepted: every nonce seen is remembered for the window.
const MAX_NONCE: usize = 128;

/// Entries a map holds before it forgets the expired ones.
const PRUNE_AT: usize = 10_000;

impl Signatures {
    pub fn new(window: Duration, max_refusals: u32) -> Self {
        Signatures {
            seen: DashMap::new(),
            refused: DashMap::new(),
            window,
            max_refusals,
        }
    }

    /// Remembers the nonces a previous run stored, `(nonce, until ms)`, still in their time.
    pub fn restore(&self, nonces: &[(String, u64)]) {
        let (now, now_ms) = (Instant::now(), parlor_actors::now_ms());
        for (nonce, until) in nonces {
            let left = Duration::from_millis(until.saturating_sub(now_ms));
            if left.is_zero() {
                continue;
            }
            // Stored as seen at the moment that makes it expire when the stored one does.
            let seen = (now + left).checked_sub(self.window * 2).unwrap_or(now);
            self.seen.insert(nonce.clone(), seen);
        }
    }

    /// Records a nonce; `false` when it was seen within the window.
    fn first_use(&self, nonce: &str) -> bool {
        let now = Instant::now();
        if self.seen.len() > PRUNE_AT {
            self.seen
                .retain(|_, at| now.duration_since(*at) < self.window * 2);
        }
        match self.seen.entry(nonce.to_owned()) {
            dashmap::mapref::entry::Entry::Occupied(mut e) => {
                if now.duration_since(*e.get()) < self.window * 2 {
                    return false;
                }
                e.insert(now);
                true
            }
            dashmap::mapref::entry::Entry::Vacant(e) => {
                e.insert(now);
                true
            }
        }
    }

    /// Seconds until `addr` may try again, when it used up its refusals in this window.
    fn blocked(&self, addr: IpAddr) -> Option<u64> {
        let e = self.refused.get(&addr)?;
        let (count, since) = *e;
        let left = self.window.checked_sub(since.elapsed())?;
        (count >= self.max_refusals).then(|| left.as_secs().max(1))
    }

    /// Counts a refused request of `addr`; the count starts again once the window passed.
    fn refuse(&self, addr: IpAddr) {
        let now = Instant::now();
        if self.refused.len() > PRUNE_AT {
            self.refused
                .retain(|_, (_, since)| now.duration_since(*since) < self.window);
        }
        let mut e = self.refused.entry(addr).or_insert((0, now));
        if now.duration_since(e.1) >= self.window {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
    }
}

/// The signature of a request: lowercase hex sha1 of `nonce|secret|timestamp`.
pub fn sign(nonce: &str, secret: &str, timestamp: &str) -> String {
    let mut h = Sha1::new();
    h.update(format!("{nonce}|{secret}|{timestamp}"));
    hex::encode(h.finalize())
}

/// Whether `given` is the signature `expected`, hex digits in either case, compared in time
/// that depends only on the lengths: how far a guess matches is not told by how fast it is
/// refused.
fn same_sign(expected: &str, given: &str) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    let diff = expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| {
        acc | (a.to_ascii_lowercase() ^ b.to_ascii_lowercase())
    });
    std::hint::black_box(diff) == 0
}

/// A request whose signature was checked, with its JSON body.
pub struct Signed {
    pub(super) body: Map<String, Value>,
}

impl FromRequest for Signed {
    type Error = FaceError<Admin>;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = check_sign(req);
        let state = req.app_data::<State>().cloned();
        let limit = req
            .app_data::<State>()
            .map(|s| s.config.limits.max_body_bytes)
            .unwrap_or(1 << 20);
        let payload = payload.take();
        Box::pin(async move {
            let nonce = checked?;
            if let Some(state) = state {
                // Remembered across a restart too, for as long as the request could be replayed.
                let window = Duration::from_secs(state.config.admin.window_secs);
                crate::core::settings::remember_nonce(&state, nonce, window * 2).await?;
            }
            let bytes = crate::faces::read_limited(payload, limit).await?;
            let body = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                Map::new()
            } else {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(map)) => map,
                    Ok(_) => return Err(ApiError::invalid("the body must be a JSON object").into()),
                    Err(e) => {
                        return Err(ApiError::invalid(format!("the body is not valid JSON: {e}")).into())
                    }
                }
            };
            Ok(Signed { body })
        })
    }
}

/// Checks the signature headers; a client address with too many refusals in the window is
/// refused with 250 before anything else.
fn check_sign(req: &HttpRequest) -> Result<String> {
    let state = req
        .app_data::<State>()
        .ok_or_else(|| ApiError::Internal("state missing".into()))?;
    let signatures = req
        .app_data::<web::Data<Signatures>>()
        .ok_or_else(|| ApiError::Internal("state missing".into()))?;
    let addr = crate::faces::client_addr(req);
    if let Some(retry) = addr.and_then(|a| signatures.blocked(a)) {
        return Err(ApiError::TooMany(format!(
            "over frequency: too many refused signatures from this address; retry in {retry} s"
        ))
        .into());
    }
    let checked = verify(req, state, signatures);
    if let (Err(_), Some(addr)) = (&checked, addr) {
        signatures.refuse(addr);
    }
    checked.map_err(Into::into)
}

fn verify(
    req: &HttpRequest,
    state: &State,
    signatures: &Signatures,
) -> std::result::Result<String, ApiError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::Unauthorized(format!("not signed: the {name} header is missing")))
    };
    let (nonce, timestamp, given) = (header("nonce")?, header("timestamp")?, header("sign")?);
    if nonce.len() > MAX_NONCE {
        return Err(ApiError::Unauthorized(format!(
            "not signed: nonce must be at most {MAX_NONCE} characters"
        )));
    }
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| ApiError::Unauthorized("not signed: timestamp must be milliseconds".into()))?;
    let window = state.config.admin.window_secs;
    let skew = (parlor_actors::now_ms() as i64).saturating_sub(ts).unsigned_abs();
    if skew > window.saturating_mul(1000) {
        return Err(ApiError::Unauthorized(format!(
            "sign expired: the timestamp is more than {window} s from the server's clock"
        )));
    }
    if !same_sign(&sign(nonce, &state.config.admin.secret, timestamp), given) {
        return Err(ApiError::Unauthorized(
            "auth failure: the sign does not match".into(),
        ));
    }
    if !signatures.first_use(nonce) {
        return Err(ApiError::Unauthorized(
            "auth failure: the nonce was used already".into(),
        ));
    }
    Ok(nonce.to_owned())
}

// ---------------------------------------------------------------------------------------
// Fields

impl Signed {
    pub(super) fn str(&self, name: &str) -> std::result::Result<String, ApiError> {
        match self.body.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            None | Some(Value::Null) => Err(ApiError::invalid(format!("{name} is required"))),
            Some(Value::String(_)) => Err(ApiError::invalid(format!("{name} must not be empty"))),
            Some(_) => Err(ApiError::invalid(format!("{name} must be a string"))),
        }
    }

    pub(super) fn opt_str(&self, name: &str) -> std::result::Result<Option<String>, ApiError> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            _ => self.str(name).map(Some),
        }
    }

    pub(super) fn int(&self, name: &str) -> std::result::Result<Option<i64>, ApiError> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("{name} must be an integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid(format!("{name} must be an integer"))),
            Some(_) => Err(ApiError::invalid(format!("{name} must be an integer"))),
        }
    }

    pub(super) fn req_int(&self, name: &str) -> std::result::Result<i64, ApiError> {
        self.int(name)?
            .ok_or_else(|| ApiError::invalid(format!("{name} is required")))
    }

    pub(super) fn bool(&self, name: &str) -> std::result::Result<Option<bool>, ApiError> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(Some(n.as_i64() == Some(1)))
            }
            Some(_) => Err(ApiError::invalid(format!("{name} must be a boolean"))),
        }
    }

    pub(super) fn tenant(&self) -> std::result::Result<String, ApiError> {
        let t = self.opt_str("appId")?.unwrap_or_else(|| "default".into());
        if t.len() > 64
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ApiError::invalid("appId must be 1 to 64 letters, digits, _ or -"));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_compare_whole_and_ignore_the_case_of_hex_digits() {
        let good = sign("76616", "123456", "1558350862502");
        assert!(same_sign(&good, &good));
        assert!(same_sign(&good, &good.to_ascii_uppercase()));
        let mut last_wrong = good.clone();
        last_wrong.replace_range(39.., "0");
        assert_ne!(last_wrong, good);
        assert!(!same_sign(&good, &last_wrong));
        assert!(!same_sign(&good, &good[..39]));
        assert!(!same_sign(&good, &format!("{good}0")));
        assert!(!same_sign(&good, ""));
    }

    #[test]
    fn the_documents_signature_example() {
        assert_eq!(
            sign("76616", "123456", "1558350862502"),
            "b98f9b0717f59febccf1440067a7f50d9b31bdde"
        );
    }

    #[test]
    fn a_nonce_is_used_once_within_the_window() {
        let n = Signatures::new(Duration::from_secs(60), 20);
        assert!(n.first_use("a"));
        assert!(!n.first_use("a"));
        assert!(n.first_use("b"));
    }

    #[test]
    fn an_address_is_blocked_after_its_refusals_until_the_window_passed() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let s = Signatures::new(Duration::from_secs(60), 3);
        for _ in 0..2 {
            s.refuse(a);
        }
        assert_eq!(s.blocked(a), None, "two of three refusals");
        s.refuse(a);
        assert!(matches!(s.blocked(a), Some(1..=60)), "{:?}", s.blocked(a));
        assert_eq!(s.blocked(b), None, "another address is not affected");
        let short = Signatures::new(Duration::from_millis(30), 1);
        short.refuse(a);
        assert!(short.blocked(a).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(short.blocked(a), None, "the window passed");
        short.refuse(a);
        assert!(
            short.blocked(a).is_some(),
            "a new window counts from its first refusal"
        );
    }
}
