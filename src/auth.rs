//! Tokens, passwords and the visitor signature.
//!
//! - Tokens are HS256 JWTs carrying the user id (`id`, and as a string in `sub`), `uuid`,
//!   the tenant (`app_id`), the `role`, `iat`, `exp`, a `jti` and the `gen`eration of the
//!   user's gate they were issued under. Logout revokes the `jti`.
//! - Each user whose tokens were ever revoked as a whole (a password change, a kick, a
//!   disabled or deleted account) has a gate ([`GateRecord`]), held in memory and checked
//!   on every request like a revoked `jti`: a token of an older generation is refused
//!   (except the one a password change kept), and so is every token of a disabled or
//!   deleted user; an outside provider's token is refused when its `iat` is before the
//!   last revocation.
//! - Outside (Chat21) tokens come from an identity provider: signed with Parlor's secret, or
//!   with the provider's own key (`auth.external_secret`, `auth.external_public_key`,
//!   `auth.external_jwks`), carrying any other claims; `aud` and `iss` are checked only when
//!   configured (`auth.external_audience`, `auth.external_issuer`).
//! - Passwords are argon2id PHC strings; hashing and checking run on blocking threads.
//! - Visitors sign their requests: `X-Security-Sign` = sha256 hex of
//!   `deviceId=<id>&salt=<salt>&timestamp=<ms>` followed by the app secret.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm as Alg, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use parlor_storage::{GateRecord, UserRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::AuthConfig;
use crate::error::ApiError;

/// The claims of a Parlor token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id as a string (the Chat21 face reads `sub`).
    pub sub: String,
    pub id: u64,
    pub uuid: String,
    pub username: String,
    /// The tenant (APP_ID).
    pub app_id: String,
    pub role: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// The id of the database the token was issued for (see [`Auth::for_database`]); a
    /// token of another database (a replaced or restored-over file) is refused.
    #[serde(default)]
    pub db: u64,
    /// The generation of the user's gate the token was issued under (0 before any).
    #[serde(default)]
    pub gen: u64,
}

/// The claims an outside identity provider's token must carry (the Chat21 face): the
/// user in `sub`, the tenant in `app_id` (`default` when absent), an expiry. Any other
/// claim (`aud`, `iss`, `iat`, custom ones) is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExternalClaims {
    pub sub: String,
    #[serde(default)]
    pub app_id: Option<String>,
    pub exp: u64,
    #[serde(default)]
    pub jti: Option<String>,
    /// Present on Parlor's own tokens: the user id and the database they were issued for.
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub db: Option<u64>,
    /// Parlor's own tokens: the generation of the user's gate they were issued under.
    #[serde(default)]
    pub gen: Option<u64>,
    /// When the token was issued (seconds), if it says.
    #[serde(default)]
    pub iat: Option<u64>,
}

impl ExternalClaims {
    /// Whether this is one of Parlor's own tokens (a login's: it names the user id and the
    /// database), which [`Auth::verify_external`] accepts only for this database.
    pub fn issued_here(&self) -> bool {
        self.id.is_some() && self.db.is_some()
    }

    /// What the token shows of its issue, for [`Auth::admit`].
    pub fn issued(&self) -> Issued {
        if self.issued_here() {
            Issued::Here {
                generation: self.gen.unwrap_or(0),
            }
        } else {
            Issued::Outside { iat: self.iat }
        }
    }
}

/// Issues and checks tokens and passwords.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    argon2: Argon2<'static>,
    /// Revoked token ids → expiry (seconds); loaded at start, persisted by the caller.
    revoked: DashMap<String, u64>,
    /// The keys of the outside identity provider and what its tokens must say.
    provider: Provider,
    /// The id of the database tokens are issued for and checked against.
    database: u64,
    /// The gates of the users that have one, by user id (ids are unique across tenants;
    /// the tenant is checked too).
    gates: DashMap<u64, Vec<(Box<str>, GateRecord)>>,
}

/// What a token shows of its issue, checked against its user's gate by [`Auth::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// Issued here, under this generation of the user's gate.
    Here { generation: u64 },
    /// Issued by an outside identity provider, at `iat` (seconds) when it says.
    Outside { iat: Option<u64> },
}

/// An outside identity provider: the keys it signs with and the `aud`/`iss` its tokens must
/// carry (none checked when none are configured).
struct Provider {
    keys: Vec<ProviderKey>,
    audience: Vec<String>,
    issuer: Vec<String>,
}

/// One key of the provider, with its key id when it comes from the JWKS.
struct ProviderKey {
    key: DecodingKey,
    kid: Option<String>,
}

impl Provider {
    fn load(config: &AuthConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        if !config.external_secret.is_empty() {
            keys.push(ProviderKey {
                key: DecodingKey::from_secret(config.external_secret.as_bytes()),
                kid: None,
            });
        }
        let path = &config.external_public_key;
        if !path.as_os_str().is_empty() {
            let pem = std::fs::read(path)
                .map_err(|e| format!("auth.external_public_key: {}: {e}", path.display()))?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .or_else(|_| DecodingKey::from_ec_pem(&pem))
                .or_else(|_| DecodingKey::from_ed_pem(&pem))
                .map_err(|_| {
                    format!(
                        "auth.external_public_key: {} is not an RSA, EC or Ed25519 public key in PEM",
                        path.display()
                    )
                })?;
            keys.push(ProviderKey { key, kid: None });
        }
        let path = &config.external_jwks;
        if !path.as_os_str().is_empty() {
            let text =
                std::fs::read(path).map_err(|e| format!("auth.external_jwks: {}: {e}", path.display()))?;
            let set: JwkSet = serde_json::from_slice(&text)
                .map_err(|e| format!("auth.external_jwks: {} is not a JWKS: {e}", path.display()))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                    format!(
                        "auth.external_jwks: {}: a key Parlor cannot use: {e}",
                        path.display()
                    )
                })?;
                keys.push(ProviderKey {
                    key,
                    kid: jwk.common.key_id.clone(),
                });
            }
        }
        Ok(Provider {
            keys,
            audience: config.external_audience.clone(),
            issuer: config.external_issuer.clone(),
        })
    }

    /// The keys that may have signed a token with this header: those of the header's
    /// algorithm family, and of its `kid` when it names one the JWKS has.
    fn candidates<'a>(&'a self, header: &'a Header) -> impl Iterator<Item = &'a DecodingKey> + 'a {
        let family = header.alg.family();
        let kid_known = header
            .kid
            .as_ref()
            .is_some_and(|kid| self.keys.iter().any(|k| k.kid.as_ref() == Some(kid)));
        self.keys
            .iter()
            .filter(move |k| k.key.family() == family)
            .filter(move |k| !kid_known || k.kid == header.kid)
            .map(|k| &k.key)
    }

    /// What a provider's token must satisfy.
    fn validation(&self, alg: Alg) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = 0;
        let mut required = vec!["exp", "sub"];
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audience);
            required.push("aud");
        }
        if !self.issuer.is_empty() {
            v.set_issuer(&self.issuer);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }
}

impl Auth {
    pub fn new(secret: &[u8], config: &AuthConfig) -> Result<Self, String> {
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, 1, None)
            .map_err(|e| format!("auth.argon2_*: {e}"))?;
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        // A token signed with Parlor's own secret is Parlor's: any `aud` it carries is not
        // checked (a provider's token is, when an audience is configured).
        validation.validate_aud = false;
        Ok(Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl: Duration::from_secs(config.token_ttl_secs),
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            revoked: DashMap::new(),
            provider: Provider::load(config)?,
            database: 0,
            gates: DashMap::new(),
        })
    }

    /// Issues and accepts tokens for the database `id` only (its
    /// [`database_id`](parlor_storage::Store::database_id)).
    pub fn for_database(mut self, id: u64) -> Self {
        self.database = id;
        self
    }

    /// A fresh token for `user`, under the generation of the user's gate held now.
    pub fn issue(&self, user: &UserRecord) -> (String, Claims) {
        let generation = self.gate(&user.tenant, user.id).generation;
        self.issue_under(user, generation)
    }

    /// A fresh token for `user` under the gate's `generation` read with the user (so that
    /// a login that checked a password changed meanwhile gets a token already refused).
    pub fn issue_under(&self, user: &UserRecord, generation: u64) -> (String, Claims) {
        let iat = now_secs();
        let claims = Claims {
            sub: user.id.to_string(),
            id: user.id,
            uuid: user.uuid.clone(),
            username: user.username.clone(),
            app_id: user.tenant.clone(),
            role: user.role.as_str().to_owned(),
            iat,
            exp: iat + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            db: self.database,
            gen: generation,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .expect("HS256 encoding does not fail");
        (token, claims)
    }

    /// Checks signature, expiry and revocation.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(decode_error(&e)))?;
        if data.claims.db != self.database {
            return Err(other_database());
        }
        if self.revoked.contains_key(&data.claims.jti) {
            return Err(ApiError::Unauthorized("token was logged out".into()));
        }
        let c = &data.claims;
        self.admit(&c.app_id, c.id, &c.jti, Issued::Here { generation: c.gen })?;
        Ok(data.claims)
    }

    /// The gate of user `id` of `tenant` (the default when the user has none).
    pub fn gate(&self, tenant: &str, id: u64) -> GateRecord {
        self.gates
            .get(&id)
            .and_then(|list| list.iter().find(|(t, _)| &**t == tenant).map(|(_, g)| g.clone()))
            .unwrap_or_default()
    }

    /// Holds `gate` as user `id`'s, unless a newer generation is held already (two changes
    /// committed in one order may arrive here in the other).
    pub fn set_gate(&self, tenant: &str, id: u64, gate: GateRecord) {
        let mut list = self.gates.entry(id).or_default();
        match list.iter_mut().find(|(t, _)| &**t == tenant) {
            Some((_, held)) if held.generation <= gate.generation => *held = gate,
            Some(_) => {}
            None => list.push((tenant.into(), gate)),
        }
    }

    /// Whether a token of user `id` of `tenant`, with id `jti` and issued as `issued`, may
    /// still be used: refused when the user is deleted or disabled, when it was issued under
    /// an older generation of the user's gate (unless it is the token a password change
    /// kept), or when an outside token was issued before the last revocation. One lookup
    /// in memory; users that never had a gate pass at once.
    pub fn admit(&self, tenant: &str, id: u64, jti: &str, issued: Issued) -> Result<(), ApiError> {
        let Some(list) = self.gates.get(&id) else {
            return Ok(());
        };
        let Some((_, gate)) = list.iter().find(|(t, _)| &**t == tenant) else {
            return Ok(());
        };
        if gate.deleted {
            return Err(ApiError::Unauthorized("this account was deleted".into()));
        }
        if gate.disabled {
            return Err(ApiError::Unauthorized("this account is disabled".into()));
        }
        let current = match issued {
            Issued::Here { generation } => generation >= gate.generation,
            Issued::Outside { iat } => {
                gate.revoked_ms == 0 || iat.is_some_and(|iat| iat.saturating_mul(1000) >= gate.revoked_ms)
            }
        };
        if current || gate.kept_jti.as_deref() == Some(jti) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized("token was revoked".into()))
        }
    }

    /// Checks a token that names its user only by `sub`: Parlor's own tokens and tokens
    /// signed with Parlor's secret, or an outside provider's signed with one of its keys
    /// (then with `aud` and `iss` checked when configured). Signature, expiry and, when it
    /// has a `jti`, revocation.
    pub fn verify_external(&self, token: &str) -> Result<ExternalClaims, ApiError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| ApiError::Unauthorized(decode_error(&e)))?;
        // Parlor's own secret first (it refuses any HMAC algorithm but HS256).
        let tried = header.alg.family() == AlgorithmFamily::Hmac;
        let mut outcome = if tried {
            jsonwebtoken::decode::<ExternalClaims>(token, &self.decoding, &self.validation)
        } else {
            Err(ErrorKind::InvalidSignature.into())
        };
        // One of Parlor's own tokens (it names a user id) counts only for its database.
        if let Ok(own) = &outcome {
            if own.claims.id.is_some() && own.claims.db != Some(self.database) {
                return Err(other_database());
            }
        }
        for key in self.provider.candidates(&header) {
            // Past the signature, the token is this key's: its claims decide.
            if outcome.is_ok() || outcome.as_ref().is_err_and(|e| !wrong_key(e)) {
                break;
            }
            outcome =
                jsonwebtoken::decode::<ExternalClaims>(token, key, &self.provider.validation(header.alg));
        }
        if !tried && self.provider.candidates(&header).next().is_none() {
            return Err(ApiError::Unauthorized(format!(
                "token signed with {:?}, and no key for it is configured",
                header.alg
            )));
        }
        let claims = outcome
            .map_err(|e| ApiError::Unauthorized(decode_error(&e)))?
            .claims;
        if claims.jti.as_ref().is_some_and(|j| self.revoked.contains_key(j)) {
            return Err(ApiError::Unauthorized("token was logged out".into()));
        }
        Ok(claims)
    }

    /// Checks an outside-face token's claims against the gate of `user`, the user they
    /// name (found or created by the caller); see [`admit`](Self::admit). A user disabled
    /// in their record is refused too (a copy of a database holds no gates).
    pub fn admit_external(&self, claims: &ExternalClaims, user: &UserRecord) -> Result<(), ApiError> {
        if user.status != 1 {
            return Err(ApiError::Unauthorized("this account is disabled".into()));
        }
        self.admit(
            &user.tenant,
            user.id,
            claims.jti.as_deref().unwrap_or(""),
            claims.issued(),
        )
    }

    /// Remembers a revoked token id until `exp`.
    pub fn revoke(&self, jti: &str, exp: u64) {
        self.revoked.insert(jti.to_owned(), exp);
    }

    /// argon2id hash of a password (slow: call it on a blocking thread).
    pub fn hash_password(&self, password: &str) -> Result<String, ApiError> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        self.argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
    }

    /// Whether `password` matches the stored hash (slow: call it on a blocking thread).
    pub fn check_password(&self, hash: &str, password: &str) -> bool {
        PasswordHash::new(hash)
            .map(|parsed| self.argon2.verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    }
}

fn other_database() -> ApiError {
    ApiError::Unauthorized("token was issued for another database".into())
}

fn decode_error(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::InvalidSignature => "token signature is invalid".into(),
        ErrorKind::InvalidAudience => "token audience (aud) is not one this server accepts".into(),
        ErrorKind::InvalidIssuer => "token issuer (iss) is not one this server accepts".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token has no {claim} claim"),
        ErrorKind::Json(e) => format!("token claims are invalid: {e}"),
        _ => "token is invalid".into(),
    }
}

/// Whether a failed check says only that this key did not sign the token.
fn wrong_key(e: &jsonwebtoken::errors::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
    )
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    parlor_actors::now_ms() / 1000
}

/// The configured secret, or the one kept in the data directory, created (mode 0600) at
/// first start.
pub fn load_or_create_secret(configured: &str, data_dir: &Path) -> std::io::Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let secret: [u8; 32] = rand::random();
    let text = hex::encode(secret);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a token secret");
    Ok(text.into_bytes())
}

/// The visitor signature of a request.
pub fn visitor_sign(device_id: &str, salt: &str, timestamp: &str, app_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "deviceId={device_id}&salt={salt}&timestamp={timestamp}{app_secret}"
    ));
    hex::encode(h.finalize())
}

/// Whether a device id has the required shape: 36 characters, hex groups 8-4-4-4-12.
pub fn valid_device_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    id.len() == 36
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Counts visitor requests per device in a sliding hour. It remembers at most `capacity`
/// devices: when a new device would pass that, the devices with no request in the last
/// hour are forgotten, then, if it is still full, the quarter seen longest ago.
pub struct DeviceLimiter {
    hits: DashMap<String, VecDeque<Instant>>,
    max: u32,
    capacity: usize,
    window: Duration,
}

impl DeviceLimiter {
    pub fn new(max_per_hour: u32, capacity: usize) -> Self {
        Self::with_window(max_per_hour, capacity, Duration::from_secs(3600))
    }

    fn with_window(max_per_hour: u32, capacity: usize, window: Duration) -> Self {
        DeviceLimiter {
            hits: DashMap::new(),
            max: max_per_hour,
            capacity: capacity.max(1),
            window,
        }
    }

    /// Counts one request; `false` when the device is over its limit.
    pub fn allow(&self, device: &str) -> bool {
        let now = Instant::now();
        if self.hits.len() >= self.capacity && !self.hits.contains_key(device) {
            self.make_room(now);
        }
        let mut hits = self.hits.entry(device.to_owned()).or_default();
        while hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            hits.pop_front();
        }
        if hits.len() >= self.max as usize {
            return false;
        }
        hits.push_back(now);
        true
    }

    /// How many devices are remembered.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// Whether no device is remembered.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// Forgets the devices whose requests all left the window, then, while still full, the
    /// quarter of the capacity seen longest ago.
    fn make_room(&self, now: Instant) {
        self.hits
            .retain(|_, hits| hits.back().is_some_and(|t| now.duration_since(*t) < self.window));
        if self.hits.len() < self.capacity {
            return;
        }
        let mut last_seen: Vec<(Instant, String)> = self
            .hits
            .iter()
            .filter_map(|e| e.value().back().map(|t| (*t, e.key().clone())))
            .collect();
        last_seen.sort_unstable();
        let excess = self.hits.len() + 1 - self.capacity * 3 / 4;
        for (_, device) in last_seen.into_iter().take(excess) {
            self.hits.remove(&device);
        }
    }
}

/// The token of a request: the `token` header, `Authorization` (with or without
/// `Bearer `), or the `token`/`jwt` query parameter.
pub fn token_of(req: &HttpRequest) -> Option<String> {
    token_in(req.headers(), req.query_string())
}

/// [`token_of`] over a request's headers and query string (the cluster's edge reads them
/// before any handler runs).
pub fn token_in(headers: &actix_web::http::header::HeaderMap, query: &str) -> Option<String> {
    if let Some(t) = headers.get("token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim().to_owned());
    }
    if let Some(a) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let a = a.trim();
        let t = a
            .strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("JWT "))
            .unwrap_or(a);
        return Some(t.trim().to_owned());
    }
    web::Query::<Vec<(String, String)>>::from_query(query)
        .ok()
        .and_then(|q| {
            q.0.into_iter()
                .find(|(k, _)| k == "token" || k == "jwt")
                .map(|(_, v)| v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_refuse_old_generations_early_outside_tokens_and_shut_accounts() {
        let auth = Auth::new(b"secret", &crate::config::Config::default().auth).unwrap();
        let here = |generation| Issued::Here { generation };
        let outside = |iat| Issued::Outside { iat };
        assert!(auth.admit("t", 1, "j", here(0)).is_ok(), "no gate");
        assert!(auth.admit("t", 1, "j", outside(None)).is_ok(), "no gate");
        let gate = GateRecord {
            generation: 2,
            kept_jti: Some("kept".into()),
            revoked_ms: 5_000,
            ..GateRecord::default()
        };
        auth.set_gate("t", 1, gate.clone());
        assert!(auth.admit("t", 1, "j", here(1)).is_err());
        assert!(auth.admit("t", 1, "kept", here(1)).is_ok(), "the kept token");
        assert!(auth.admit("t", 1, "j", here(2)).is_ok());
        assert!(auth.admit("t", 1, "j", outside(Some(4))).is_err());
        assert!(auth.admit("t", 1, "j", outside(None)).is_err());
        assert!(auth.admit("t", 1, "j", outside(Some(5))).is_ok());
        assert!(
            auth.admit("u", 1, "j", here(0)).is_ok(),
            "another tenant's user 1"
        );
        // An older generation arriving late does not replace the newer one.
        auth.set_gate(
            "t",
            1,
            GateRecord {
                generation: 1,
                ..GateRecord::default()
            },
        );
        assert_eq!(auth.gate("t", 1), gate);
        for (disabled, deleted, reason) in [(true, false, "disabled"), (false, true, "deleted")] {
            let shut = GateRecord {
                generation: 3,
                disabled,
                deleted,
                ..GateRecord::default()
            };
            auth.set_gate("t", 1, shut);
            let err = auth.admit("t", 1, "j", here(9)).unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn device_ids() {
        assert!(valid_device_id("8d1a344c-bf16-5425-adbc-d12f49cfa332"));
        assert!(!valid_device_id("8d1a344c-bf16-5425-adbc-d12f49cfa33"));
        assert!(!valid_device_id("8d1a344cxbf16-5425-adbc-d12f49cfa332"));
        assert!(!valid_device_id("zd1a344c-bf16-5425-adbc-d12f49cfa332"));
    }

    #[test]
    fn limiter_counts_per_device() {
        let l = DeviceLimiter::new(2, 100);
        assert!(l.allow("a") && l.allow("a"));
        assert!(!l.allow("a"));
        assert!(l.allow("b"));
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let l = DeviceLimiter::new(2, 8);
        for i in 0..100 {
            assert!(l.allow(&format!("device-{i}")));
            assert!(l.len() <= 8, "{} devices remembered", l.len());
        }
        // The most recent devices are kept, with their counts.
        assert!(l.allow("device-99"));
        assert!(!l.allow("device-99"));
    }

    #[test]
    fn limiter_forgets_devices_outside_the_window_first() {
        let l = DeviceLimiter::with_window(1, 2, Duration::from_millis(30));
        assert!(l.allow("old"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(l.allow("recent"));
        assert!(l.allow("new"));
        assert_eq!(l.len(), 2);
        assert!(!l.allow("recent"), "the recent device keeps its count");
    }

    #[test]
    fn sign_is_sha256_of_sorted_string_and_secret() {
        let s = visitor_sign("d", "s", "1", "k");
        let mut h = Sha256::new();
        h.update("deviceId=d&salt=s&timestamp=1k");
        assert_eq!(s, hex::encode(h.finalize()));
    }
}
