//! Configuration: the TOML file (the shipped `config.toml` by default) merged with
//! `PARLOR_`-prefixed environment variables whose sections are split on `__`
//! (`PARLOR_SERVER__BIND=0.0.0.0:7001`). An unknown key or a bad value stops start-up
//! with a message naming the key. Every field's default is the value documented here and
//! in `config.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use parlor_actors::notices::Locale;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub login: LoginConfig,
    pub ws: WsConfig,
    pub limits: LimitsConfig,
    pub router: RouterSettings,
    pub users: UsersConfig,
    pub files: FilesConfig,
    pub webhooks: WebhooksConfig,
    pub presence: PresenceConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub cluster: ClusterConfig,
}

/// The client listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the client listener (HTTP and WebSocket): `host:port`, the host an IP
    /// address or a name (`localhost:7001`; a name is resolved at start and the first of
    /// its addresses that can be bound is used). Default `127.0.0.1:7001`.
    pub bind: String,
    /// HTTP worker threads; 0 means one per core. Default 0.
    pub workers: usize,
    /// Seconds to let open connections finish on shutdown. Default 5.
    pub shutdown_timeout_secs: u64,
    /// Kernel send buffer of each client connection, bytes (`SO_SNDBUF`; the kernel doubles
    /// it); 0 leaves the kernel's autotuning, which lets an unread connection hold megabytes.
    /// A client that stops reading fills this, then the session's mailbox, and is cut.
    /// Default 131072.
    pub socket_send_buffer: usize,
    /// Language of the system notices written into timelines (group changes, revokes):
    /// `zh-CN` or `en`. Default `zh-CN`.
    pub locale: Locale,
    /// Most time a client gets to send a request's head (line and headers) after its
    /// connection opens, ms; past it the connection is closed (408). Default 5000.
    pub head_timeout_ms: u64,
    /// Most time a request's body may take to arrive, counted from its head, seconds (on
    /// the client and the admin listener). Past it the request is answered 408 and its
    /// connection closed. An upload must arrive within it. A WebSocket's frames are not
    /// a body: the heartbeat watches them. Default 60.
    pub body_timeout_secs: u64,
    /// Most connections the client listener holds at once. Past it a new connection is
    /// answered 503 and closed (`GET /healthz` is still answered); connections already
    /// open, WebSocket sessions included, are kept. Default 10000.
    pub max_connections: usize,
    /// Most connections one client address may hold at once on the client listener. Past
    /// it a new connection from that address is answered 429 and closed (`GET /healthz`
    /// is still answered). Default 256.
    pub max_connections_per_address: usize,
    /// Web origins (`scheme://host[:port]`) whose pages may call the client listener from a
    /// browser (CORS): preflight `OPTIONS` requests are answered on every route, and answers
    /// carry `Access-Control-Allow-Origin`. Empty: same origin only (no CORS headers).
    /// `["*"]`: any origin. Credentials (cookies) are never allowed: every face
    /// authenticates with a header. The admin listener never answers CORS. Default `[]`.
    pub cors_origins: Vec<String>,
    /// Reverse proxies (addresses or ranges such as `10.0.0.0/8`) whose `X-Forwarded-For`
    /// (or `X-Real-IP`) names the client: the per-address bounds (logins, visitor
    /// registrations, admin refusals) count that address, and connections from a proxy are
    /// bounded in total only. Applies to both listeners. Empty: the TCP peer is the client.
    /// Default `[]`.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:7001".into(),
            workers: 0,
            shutdown_timeout_secs: 5,
            socket_send_buffer: 131_072,
            locale: Locale::ZhCn,
            head_timeout_ms: 5000,
            body_timeout_secs: 60,
            max_connections: 10_000,
            max_connections_per_address: 256,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The admin listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener. Default `127.0.0.1:18080`.
    pub bind: String,
    /// Secret of the admin signature; empty disables the admin listener. Default empty.
    #[serde(deserialize_with = "text")]
    pub secret: String,
    /// How far a request's `timestamp` may be from the server's clock, either side, and
    /// how long a `nonce` is remembered against replay, seconds. Default 300.
    pub window_secs: u64,
    /// Refused requests (bad or missing signature, old timestamp, replayed nonce) one client
    /// address may make within `window_secs`; past it every request of that address is
    /// refused with code 250 until the window has passed. Default 20.
    pub max_refusals: u32,
    /// Most connections the admin listener holds at once, from one address or in total;
    /// past it a new connection is answered 503 (429 for one address) and closed.
    /// Default 64.
    pub max_connections: usize,
    /// What `/admin/customer` answers. Defaults `parlor` and `Parlor`.
    #[serde(deserialize_with = "text")]
    pub customer_id: String,
    #[serde(deserialize_with = "text")]
    pub customer_name: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            bind: "127.0.0.1:18080".into(),
            secret: String::new(),
            window_secs: 300,
            max_refusals: 20,
            max_connections: 64,
            customer_id: "parlor".into(),
            customer_name: "Parlor".into(),
        }
    }
}

/// The database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The redb file; its directory is the data directory. Default `data/parlor.redb`.
    pub path: PathBuf,
    /// Most writes in one commit. Default 4096.
    pub max_batch: usize,
    /// Under load (the previous commit held more than one write), how long the Writer
    /// waits after a batch's first write for more to join it, µs; 0 commits at once.
    /// Default 300: about 10 % less server CPU per direct message at 10,000 a second
    /// (BENCHMARKS.md), for at most 0.3 ms more latency under load and none when idle.
    pub commit_linger_us: u64,
    /// Most writes waiting for the Writer before sends are refused as busy. Default 65536.
    pub write_queue: usize,
    /// Directory of the uploaded files (the `local` object store); empty is `files` in the
    /// data directory. Default empty.
    pub files_dir: PathBuf,
    /// Start a new database in a file that exists but is empty. Off, an empty file stops
    /// start-up: it is more likely a truncated or replaced database than a new one (a new
    /// database is made where no file is). Default false.
    pub init_empty: bool,
    /// After a failed write (a full disk), how long the Writer waits before it opens the
    /// database again to resume writing, milliseconds; the wait doubles after each try that
    /// fails, up to 10 s. Default 250.
    pub reopen_after_ms: u64,
    /// How long a sender's client id (`cid`) is remembered, seconds: a send that repeats a
    /// `cid` within it gets the message the first one stored, and stores nothing. Each `cid`
    /// in the window holds about 30 bytes of memory and a row of the database. Default 3600.
    pub dedup_window_secs: u64,
    /// When the database is verified as it is opened (every page of the newest commit
    /// against its checksum): `always` (every start; reads the whole file), `unclean` (only
    /// after a crash or `kill -9`) or `never`. After an unclean shutdown redb verifies in any
    /// case. Default `always`.
    pub verify_on_start: VerifyOnStart,
    /// Start on a database that fails the verification anyway: redb goes back to the newest
    /// commit that verifies, and what the newer ones held is lost. Off, such a file stops
    /// start-up (`parlor check` says what is damaged). Default false.
    pub serve_damaged: bool,
}

/// When the database is verified at start (`storage.verify_on_start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyOnStart {
    Always,
    Unclean,
    Never,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: "data/parlor.redb".into(),
            max_batch: 4096,
            commit_linger_us: 300,
            write_queue: 65_536,
            files_dir: PathBuf::new(),
            init_empty: false,
            reopen_after_ms: 250,
            dedup_window_secs: 3600,
            verify_on_start: VerifyOnStart::Always,
            serve_damaged: false,
        }
    }
}

impl StorageConfig {
    /// The directory holding the database and the generated secrets.
    pub fn data_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// The directory of the `local` object store: `files_dir`, or `files` in the data
    /// directory.
    pub fn files_dir(&self) -> PathBuf {
        if self.files_dir.as_os_str().is_empty() {
            self.data_dir().join("files")
        } else {
            self.files_dir.clone()
        }
    }
}

/// Tokens, passwords and visitors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret of the tokens; empty: generated at first start and kept in the data
    /// directory as `jwt_secret` (mode 0600). Default empty.
    #[serde(deserialize_with = "text")]
    pub jwt_secret: String,
    /// Lifetime of a token in seconds. Default 604800 (7 days).
    pub token_ttl_secs: u64,
    /// HS256 (or HS384/HS512) secret an outside identity provider signs Chat21 tokens with,
    /// so it needs no share of `jwt_secret`; empty: none. Default empty.
    #[serde(deserialize_with = "text")]
    pub external_secret: String,
    /// PEM file of the public key an outside identity provider signs with: RSA (RS256 and
    /// the other RS/PS algorithms), EC P-256/P-384 (ES256/ES384) or Ed25519; empty: none.
    /// Default empty.
    pub external_public_key: PathBuf,
    /// JWKS file (`{"keys": [...]}`) of an outside identity provider's keys; a token's
    /// `kid` picks its key. Empty: none. Default empty.
    pub external_jwks: PathBuf,
    /// Audiences an outside provider's token must name one of in `aud` (a string or a
    /// list); empty: `aud` is not checked. Tokens signed with `jwt_secret` are Parlor's and
    /// never checked. Default empty.
    #[serde(deserialize_with = "texts")]
    pub external_audience: Vec<String>,
    /// Issuers an outside provider's token's `iss` must be one of; empty: not checked.
    /// Default empty.
    #[serde(deserialize_with = "texts")]
    pub external_issuer: Vec<String>,
    /// argon2id memory cost in KiB. Default 19456.
    pub argon2_memory_kib: u32,
    /// argon2id passes. Default 2.
    pub argon2_iterations: u32,
    /// Salt of the visitor signature (`X-Security-Sign`). Default `parlor-visitor-salt`.
    #[serde(deserialize_with = "text")]
    pub visitor_salt: String,
    /// App secret appended to the visitor signature string. Default `parlor-visitor-secret`.
    #[serde(deserialize_with = "text")]
    pub visitor_app_secret: String,
    /// How far a visitor request's timestamp may be from the server's clock, seconds.
    /// Default 300.
    pub visitor_window_secs: u64,
    /// Visitor requests allowed per device per hour; only requests whose signature and
    /// timestamp are good count. Default 5.
    pub visitor_requests_per_hour: u32,
    /// Devices the hourly visitor limit remembers at once (memory stays bounded): past it,
    /// devices with no request in the last hour are forgotten first, then those seen
    /// longest ago. Default 100000.
    pub visitor_tracked_devices: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            token_ttl_secs: 7 * 24 * 3600,
            external_secret: String::new(),
            external_public_key: PathBuf::new(),
            external_jwks: PathBuf::new(),
            external_audience: Vec::new(),
            external_issuer: Vec::new(),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            visitor_salt: "parlor-visitor-salt".into(),
            visitor_app_secret: "parlor-visitor-secret".into(),
            visitor_window_secs: 300,
            visitor_requests_per_hour: 5,
            visitor_tracked_devices: 100_000,
        }
    }
}

/// The server's log (on standard error; the level comes from `RUST_LOG`, default `info`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (one line per event, coloured only on a terminal) or `json` (one JSON object
    /// per line). Default `text`.
    pub format: LogFormat,
    /// One line per HTTP request (target `parlor::access`: face, method, route, status,
    /// milliseconds). Default false.
    pub access: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            access: false,
        }
    }
}

/// The Prometheus metrics at `GET /metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served: `client` (the client listener), `admin` (the admin
    /// listener only, unsigned, so that the public listener does not show tenants and
    /// routes; needs `admin.secret`) or `off`. The other listeners answer 404. Default
    /// `client`.
    pub listener: MetricsListener,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listener: MetricsListener::Client,
        }
    }
}

/// Which listener serves the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsListener {
    Client,
    Admin,
    Off,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The bounds of logging in (see the `guard` module).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Password hashes and checks running at once; 0 means one per core. Default 0.
    pub hash_concurrency: usize,
    /// How long a login or registration waits for a turn to hash before it is refused as
    /// overloaded (503), milliseconds. Default 2000.
    pub hash_wait_ms: u64,
    /// Login attempts per account (tenant and username): a burst of this many, refilled
    /// over a minute; past it, 429 with `Retry-After`. Default 10.
    pub per_account_per_min: u32,
    /// Login attempts per client address, whatever the account: a burst of this many,
    /// refilled over a minute; past it, 429 with `Retry-After`. Default 60.
    pub per_address_per_min: u32,
    /// Visitor accounts one client address may create: a burst of this many, refilled over
    /// a minute; past it, 429 with `Retry-After` (a known device logs in again freely).
    /// Default 30.
    pub visitors_per_address_per_min: u32,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            hash_concurrency: 0,
            hash_wait_ms: 2000,
            per_account_per_min: 10,
            per_address_per_min: 60,
            visitors_per_address_per_min: 30,
        }
    }
}

/// WebSocket sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsConfig {
    /// How often the server pings a client, milliseconds. Default 20000: each ping and its
    /// pong cost the server about 13 µs (two system calls and the loopback path), which at
    /// 5 s made heartbeats most of what 10,000 idle sessions cost (BENCHMARKS.md, idle CPU).
    pub heartbeat_interval_ms: u64,
    /// A client silent for this long is disconnected, milliseconds. Default 50000 (two
    /// missed pings and a half).
    pub client_timeout_ms: u64,
    /// Largest client frame in bytes. Default 65536.
    pub max_frame_bytes: usize,
    /// Frames waiting for one session before it counts as slow and is cut. Default 1024.
    pub mailbox: usize,
    /// How long after a probe's pong a session reports what its client confirmed (its
    /// delivered cursor) to the Router, ms; what more pongs confirm meanwhile goes in the
    /// same report. Default 200.
    pub report_interval_ms: u64,
    /// Least time between two delivery probes of a session (a ping whose pong confirms the
    /// frames written before it), ms: a probe rides in the socket write of a frame when due,
    /// else goes half an interval after; a replay batch is probed at once. Default 1000.
    pub probe_interval_ms: u64,
    /// Client frames other than `send` (those are budgeted by the tenant's send rate) one
    /// session may send per second, sustained; past it and its burst a frame is refused
    /// with a `rate_limited` error frame. Default 1000.
    pub frames_per_sec: u32,
    /// Client frames a session may send in a burst above `frames_per_sec`. Default 2000.
    pub frames_burst: u32,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            heartbeat_interval_ms: 20_000,
            client_timeout_ms: 50_000,
            max_frame_bytes: 64 * 1024,
            mailbox: 1024,
            report_interval_ms: 200,
            probe_interval_ms: 1000,
            frames_per_sec: 1000,
            frames_burst: 2000,
        }
    }
}

/// Limits every tenant starts with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest HTTP request body in bytes. Default 1048576.
    pub max_body_bytes: usize,
    /// Largest message content (`data` plus `options`) in bytes. Default 16384.
    pub max_message_bytes: usize,
    /// Messages per second one user may send; 0 turns the limit off. Default 500.
    pub rate_per_sec: u32,
    /// Burst above that rate. Default 1000.
    pub rate_burst: u32,
    /// Seconds within which a sender may revoke a message. Default 300.
    pub revoke_window_secs: u64,
    /// Most offline messages pushed on connect. Default 10000.
    pub offline_replay_max: usize,
    /// Most results of a user search. Default 50.
    pub search_max: usize,
    /// Largest history page. Default 200.
    pub history_max: usize,
    /// Most members of a group. Default 10000.
    pub group_max_members: usize,
    /// Most users one request may create by naming unknown outside (Chat21) ids, as members
    /// or as a recipient. Default 1000.
    pub new_users_per_request: usize,
    /// Users one caller may create so per minute: a burst of this many, refilled over a
    /// minute; past it, 429 with `Retry-After`. Default 2000.
    pub new_users_per_min: u32,
    /// Largest page of a list route (friends, applications, groups); a larger `limit` is
    /// clamped. Default 2000.
    pub page_max: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 1024 * 1024,
            max_message_bytes: 16 * 1024,
            rate_per_sec: 500,
            rate_burst: 1000,
            revoke_window_secs: 300,
            offline_replay_max: 10_000,
            search_max: 50,
            history_max: 200,
            page_max: 2000,
            group_max_members: 10_000,
            new_users_per_request: 1000,
            new_users_per_min: 2000,
        }
    }
}

/// What new users start with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// The `userset` of a new user. Its `chatset` says who may message the user without
    /// being a friend, for visitors and for users: 0 friends only, 1 one message, 2 anyone.
    /// Default `{"chatset":{"visitor":0,"user":0}}` (friends only, as the uni-app document).
    pub default_userset: String,
    /// 1: friend requests to a new user need approval; 0: anyone may add them at once.
    /// Default 1.
    pub default_invite_confirm: u8,
    /// Avatar URL of a new user. Default `/web/avatar.svg`, a picture this server serves (a
    /// path on this server, as upload URLs are).
    #[serde(deserialize_with = "text")]
    pub default_avatar: String,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            default_userset: r#"{"chatset":{"visitor":0,"user":0}}"#.into(),
            default_invite_confirm: 1,
            default_avatar: "/web/avatar.svg".into(),
        }
    }
}

/// Where uploaded files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilesBackend {
    /// A directory next to the database (`storage.files_dir`).
    Local,
    /// An S3-compatible bucket (`files.s3_*`).
    S3,
}

/// Uploads, the object store and video screenshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// `local` (a directory, `storage.files_dir`) or `s3` (a bucket). Default `local`.
    pub backend: FilesBackend,
    /// Largest uploaded file in bytes. Default 20971520 (20 MiB).
    pub max_bytes: u64,
    /// Content types accepted, as detected from the bytes (magic numbers), never from the
    /// name. Default the common image, video and audio types.
    pub allowed_types: Vec<String>,
    /// Hosts (`name` or `name:port`) a screenshot's `videoUrl` may be fetched from; empty:
    /// only files stored here. Default empty.
    pub fetch_allowed_hosts: Vec<String>,
    /// Largest video fetched from an allowed host, in bytes. Default 104857600 (100 MiB).
    pub fetch_max_bytes: u64,
    /// Seconds a fetch from an allowed host may take. Default 30.
    pub fetch_timeout_secs: u64,
    /// The ffmpeg program taking screenshots (a name on `PATH` or a path). Default `ffmpeg`.
    #[serde(deserialize_with = "text")]
    pub ffmpeg: String,
    /// Seconds one ffmpeg run may take before it is killed. Default 20.
    pub ffmpeg_timeout_secs: u64,
    /// The bucket (`s3` backend).
    #[serde(deserialize_with = "text")]
    pub s3_bucket: String,
    /// The bucket's region. Default `us-east-1`.
    #[serde(deserialize_with = "text")]
    pub s3_region: String,
    /// Endpoint of an S3-compatible service (MinIO, R2, OSS...); empty is AWS. Default empty.
    #[serde(deserialize_with = "text")]
    pub s3_endpoint: String,
    /// Access key id; empty takes the credentials of the environment (`AWS_*`). Default empty.
    #[serde(deserialize_with = "text")]
    pub s3_access_key_id: String,
    /// Secret access key. Default empty.
    #[serde(deserialize_with = "text")]
    pub s3_secret_access_key: String,
    /// Public base URL of the bucket (`https://bucket.example.com`): `uploadAliyun` answers
    /// `<s3_public_url>/<object key>`; empty answers the `/public/uploads/...` path served
    /// here. Default empty.
    #[serde(deserialize_with = "text")]
    pub s3_public_url: String,
    /// Allow a plain `http://` endpoint (a local MinIO). Default false.
    pub s3_allow_http: bool,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            backend: FilesBackend::Local,
            max_bytes: 20 * 1024 * 1024,
            allowed_types: [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "image/bmp",
                "video/mp4",
                "video/webm",
                "video/quicktime",
                "audio/mpeg",
                "audio/ogg",
                "audio/x-wav",
                "audio/aac",
                "audio/m4a",
                "application/pdf",
            ]
            .map(String::from)
            .to_vec(),
            fetch_allowed_hosts: Vec::new(),
            fetch_max_bytes: 100 * 1024 * 1024,
            fetch_timeout_secs: 30,
            ffmpeg: "ffmpeg".into(),
            ffmpeg_timeout_secs: 20,
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_endpoint: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            s3_public_url: String::new(),
            s3_allow_http: false,
        }
    }
}

/// The Router.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSettings {
    /// How often reported delivered/read positions are committed, ms. Default 200.
    pub cursor_flush_ms: u64,
    /// The Router's mailbox. Default 65536.
    pub mailbox: usize,
    /// Seconds a group's actor lives without work before it stops (it restarts on demand).
    /// Default 600.
    pub group_idle_secs: u64,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            cursor_flush_ms: 200,
            mailbox: 65_536,
            group_idle_secs: 600,
        }
    }
}

/// Webhooks: outgoing signed POSTs of a tenant's events (see the README's Webhooks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Hosts (`name` for any port, `name:port` for one) an endpoint URL may name although
    /// they resolve to a private, loopback or link-local address. Default empty.
    pub allowed_hosts: Vec<String>,
    /// Failed deliveries of one event before it becomes a dead letter. Default 8.
    pub max_attempts: u32,
    /// Wait before the first retry, ms; doubled after each failure. Default 1000.
    pub backoff_ms: u64,
    /// Longest wait between two tries, ms. Default 300000 (5 minutes).
    pub max_backoff_ms: u64,
    /// How long one delivery may take before it counts as failed, ms. Default 10000.
    pub timeout_ms: u64,
    /// Deliveries in flight at once, all endpoints together. Default 16.
    pub concurrency: usize,
    /// How often the outbox is read for events to deliver while it holds any, ms. An empty
    /// outbox is read again when a commit queues an event. Default 200.
    pub poll_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allowed_hosts: Vec::new(),
            max_attempts: 8,
            backoff_ms: 1000,
            max_backoff_ms: 300_000,
            timeout_ms: 10_000,
            concurrency: 16,
            poll_ms: 200,
        }
    }
}

/// Cluster mode: several nodes over NATS JetStream (see the README's Cluster mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Run as a node of a cluster. Off, the default, Parlor is one process over one redb file
    /// and nothing below is read.
    pub enabled: bool,
    /// This node's name, unique in the cluster (letters, digits, `_` or `-`). Required.
    pub node_id: String,
    /// The NATS servers (`nats://host:port`), at least one; the client finds the others.
    /// Default `["nats://127.0.0.1:4222"]`.
    pub nats_urls: Vec<String>,
    /// How many shards the tenants are spread over. Fixed when the cluster is created: a
    /// node configured with another number refuses to start. Default 16.
    pub shards: u32,
    /// Copies JetStream keeps of each shard's log and of the directory (1, 3 or 5; 3 with
    /// three NATS servers). Default 3.
    pub replicas: usize,
    /// How long a node counts as alive after its last renewal, ms: the time a dead owner's
    /// shards wait before another node takes them over. Renewed every third of it.
    /// Default 6000.
    pub lease_ttl_ms: u64,
    /// The address other nodes reach this node's shards at: a host or IP of this machine
    /// (no port; each owned shard listens on a port of its own). Default `127.0.0.1`.
    pub advertise: String,
    /// HTTP worker threads of each shard this node owns. Default 1.
    pub shard_workers: usize,
    /// How long a node waits for the server of a request's shard, ms, before it answers
    /// 503: while the shard has no owner or its owner does not answer (a takeover, a
    /// hand-over), the route is tried again within this time (clients retry after a 503; a
    /// `cid` makes a retried send land once). Default 3000.
    pub connect_timeout_ms: u64,
    /// How often the owner of a shard writes a snapshot of it to the `parlor_snapshots`
    /// object store and truncates the shard's log below the older of its two snapshots,
    /// seconds; 0: never (the log keeps every record). Default 600.
    pub snapshot_interval_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: String::new(),
            nats_urls: vec!["nats://127.0.0.1:4222".into()],
            shards: 16,
            replicas: 3,
            lease_ttl_ms: 6000,
            advertise: "127.0.0.1".into(),
            shard_workers: 1,
            connect_timeout_ms: 3000,
            snapshot_interval_secs: 600,
        }
    }
}

/// Presence (who is online, last seen) and typing notes (see the README's Presence).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Tell friends (and fellow members of small groups) when a user comes online or goes
    /// offline, keep when each user was last seen, and answer the presence route. Off: no
    /// `presence` frames, no `user.online`/`user.offline` events, and the route answers 403.
    /// Typing notes work either way. Default true.
    pub enabled: bool,
    /// How long after a user's last session goes they still count as online, ms: a
    /// reconnect within it is no offline/online pair. Default 5000.
    pub offline_grace_ms: u64,
    /// Each tenant's starting value of setting 7: the largest group whose members are told
    /// of each other's presence; 0 tells friends only. Default 0.
    pub group_max_members: usize,
    /// Most user ids one presence request may name. Default 200.
    pub max_ids: usize,
    /// Least time between two `typing` notes one sender forwards to one conversation, ms;
    /// notes in between are dropped (a `stop` after a forwarded `start` always passes).
    /// Default 1000.
    pub typing_interval_ms: u64,
    /// How long a receiver shows a `typing` note without a newer one, ms: sent in each
    /// note as `expiresIn`. Default 5000.
    pub typing_expiry_ms: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            enabled: true,
            offline_grace_ms: 5000,
            group_max_members: 0,
            max_ids: 200,
            typing_interval_ms: 1000,
            typing_expiry_ms: 5000,
        }
    }
}

/// A text value that may have been written as a number (an environment variable such as
/// `PARLOR_ADMIN__SECRET=123456` reads as one).
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(match Text::deserialize(d)? {
        Text::S(s) => s,
        Text::I(i) => i.to_string(),
        Text::U(u) => u.to_string(),
        Text::F(f) => f.to_string(),
        Text::B(b) => b.to_string(),
    })
}

/// A list of texts that may have been written as one (`PARLOR_AUTH__EXTERNAL_ISSUER=https://id`).
fn texts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Texts {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Texts::deserialize(d)? {
        Texts::One(s) if s.is_empty() => Vec::new(),
        Texts::One(s) => vec![s],
        Texts::Many(v) => v,
    })
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("config: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Config {
    /// Defaults, then the TOML file (if given and present), then `PARLOR_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only `PARLOR_<SECTION>__<KEY>` is configuration; other `PARLOR_` variables (a
        // Kubernetes Service named `parlor` injects `PARLOR_PORT`, `PARLOR_SERVICE_HOST`, …)
        // are not (the binary names them once in its log: [`ignored_env`]).
        figment = figment.merge(
            Env::prefixed("PARLOR_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        Self::from_figment(figment)
    }

    /// Parses a TOML text over the defaults (no environment): for tests and `check-config`.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)))
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// The checks of cluster mode: what a node needs, and the single-node settings that
    /// would lose data or split a tenant across nodes (secrets generated per node, files on
    /// one node's disk, the admin listener's cross-tenant routes).
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let invalid = |key: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        if !crate::core::plain_name(&c.node_id) {
            return invalid(
                "cluster.node_id",
                "must be 1 to 64 letters, digits, _ or - in cluster mode",
            );
        }
        if c.nats_urls.is_empty() {
            return invalid("cluster.nats_urls", "must name at least one NATS server");
        }
        if c.shards == 0 || c.shards > 1024 {
            return invalid("cluster.shards", "must be 1 to 1024");
        }
        if ![1, 3, 5].contains(&c.replicas) {
            return invalid("cluster.replicas", "must be 1, 3 or 5");
        }
        if c.lease_ttl_ms < 300 {
            return invalid("cluster.lease_ttl_ms", "must be at least 300");
        }
        if c.advertise.is_empty() || c.advertise.contains(':') && !c.advertise.starts_with('[') {
            return invalid("cluster.advertise", "must be a host or IP address without a port");
        }
        if c.connect_timeout_ms == 0 {
            return invalid("cluster.connect_timeout_ms", "must be at least 1");
        }
        if c.shard_workers == 0 {
            return invalid("cluster.shard_workers", "must be at least 1");
        }
        if self.auth.jwt_secret.is_empty() {
            return invalid(
                "auth.jwt_secret",
                "must be set (the same on every node) in cluster mode: a generated secret is one node's",
            );
        }
        if matches!(self.files.backend, FilesBackend::Local) {
            return invalid(
                "files.backend",
                "must be \"s3\" in cluster mode: a local directory is one node's disk",
            );
        }
        if !self.admin.secret.is_empty() {
            return invalid(
                "admin.secret",
                "must be empty in cluster mode: the admin routes work across tenants, on one node only",
            );
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, reason: &str) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        }
        if !is_host_port(&self.server.bind) {
            return invalid(
                "server.bind",
                "must be host:port, like 127.0.0.1:7001, [::1]:7001 or localhost:7001",
            );
        }
        if !is_host_port(&self.admin.bind) {
            return invalid(
                "admin.bind",
                "must be host:port, like 127.0.0.1:18080 or localhost:18080",
            );
        }
        if self.metrics.listener == MetricsListener::Admin && self.admin.secret.is_empty() {
            return invalid(
                "metrics.listener",
                "\"admin\" needs the admin listener, which runs only with an admin.secret",
            );
        }
        if self.webhooks.max_attempts == 0 {
            return invalid("webhooks.max_attempts", "must be at least 1");
        }
        if self.webhooks.concurrency == 0 {
            return invalid("webhooks.concurrency", "must be at least 1");
        }
        if self.presence.max_ids == 0 {
            return invalid("presence.max_ids", "must be at least 1");
        }
        if self.presence.typing_expiry_ms < self.presence.typing_interval_ms {
            return invalid(
                "presence.typing_expiry_ms",
                "must be at least presence.typing_interval_ms (a note must outlive the gap to the next)",
            );
        }
        if self.cluster.enabled {
            self.validate_cluster()?;
        }
        if let Err(reason) = crate::peer::Proxies::parse(&self.server.trusted_proxies) {
            return invalid("server.trusted_proxies", &reason);
        }
        if let Err(reason) = check_origins(&self.server.cors_origins) {
            return invalid("server.cors_origins", &reason);
        }
        if self.server.head_timeout_ms < 100 {
            return invalid("server.head_timeout_ms", "must be at least 100");
        }
        if self.server.body_timeout_secs == 0 {
            return invalid("server.body_timeout_secs", "must be at least 1");
        }
        if self.server.max_connections == 0 || self.admin.max_connections == 0 {
            return invalid("server.max_connections", "connection limits must be at least 1");
        }
        if self.server.max_connections_per_address == 0
            || self.server.max_connections_per_address > self.server.max_connections
        {
            return invalid(
                "server.max_connections_per_address",
                "must be between 1 and server.max_connections",
            );
        }
        if self.admin.window_secs == 0 {
            return invalid("admin.window_secs", "must be at least 1");
        }
        if self.login.per_account_per_min == 0
            || self.login.per_address_per_min == 0
            || self.login.visitors_per_address_per_min == 0
        {
            return invalid(
                "login.per_account_per_min",
                "login throttles must allow at least 1 a minute",
            );
        }
        if self.admin.max_refusals == 0 {
            return invalid("admin.max_refusals", "must be at least 1");
        }
        if !cfg!(debug_assertions) && !self.admin.secret.is_empty() && self.admin.secret.len() < 16 {
            return invalid(
                "admin.secret",
                "must be at least 16 characters (or empty to disable the admin listener)",
            );
        }
        if self.storage.path.as_os_str().is_empty() {
            return invalid("storage.path", "must not be empty");
        }
        if self.storage.max_batch == 0 {
            return invalid("storage.max_batch", "must be at least 1");
        }
        if self.storage.dedup_window_secs == 0 {
            return invalid("storage.dedup_window_secs", "must be at least 1");
        }
        if self.storage.write_queue == 0 {
            return invalid("storage.write_queue", "must be at least 1");
        }
        if self.auth.token_ttl_secs == 0 {
            return invalid("auth.token_ttl_secs", "must be at least 1");
        }
        if !(8..=4_194_304).contains(&self.auth.argon2_memory_kib) {
            return invalid("auth.argon2_memory_kib", "must be between 8 and 4194304");
        }
        if self.auth.visitor_tracked_devices == 0 {
            return invalid("auth.visitor_tracked_devices", "must be at least 1");
        }
        if self.auth.argon2_iterations == 0 {
            return invalid("auth.argon2_iterations", "must be at least 1");
        }
        if self.ws.heartbeat_interval_ms == 0 || self.ws.client_timeout_ms <= self.ws.heartbeat_interval_ms {
            return invalid(
                "ws.client_timeout_ms",
                "must be larger than ws.heartbeat_interval_ms (> 0)",
            );
        }
        if self.ws.max_frame_bytes < 256 {
            return invalid("ws.max_frame_bytes", "must be at least 256");
        }
        if self.ws.mailbox == 0 || self.router.mailbox == 0 {
            return invalid("ws.mailbox", "mailboxes must hold at least 1 message");
        }
        if self.ws.frames_per_sec == 0 || self.ws.frames_burst == 0 {
            return invalid("ws.frames_per_sec", "frame limits must be at least 1");
        }
        if self.ws.report_interval_ms == 0 || self.router.cursor_flush_ms == 0 {
            return invalid("ws.report_interval_ms", "intervals must be at least 1 ms");
        }
        if self.limits.max_body_bytes < 1024 {
            return invalid("limits.max_body_bytes", "must be at least 1024");
        }
        if self.limits.max_message_bytes == 0 {
            return invalid("limits.max_message_bytes", "must be at least 1");
        }
        match serde_json::from_str::<serde_json::Value>(&self.users.default_userset) {
            Ok(v) if v.is_object() => {}
            _ => return invalid("users.default_userset", "must be a JSON object"),
        }
        if self.users.default_invite_confirm > 1 {
            return invalid("users.default_invite_confirm", "must be 0 or 1");
        }
        if self.limits.new_users_per_request == 0 || self.limits.new_users_per_min == 0 {
            return invalid(
                "limits.new_users_per_request",
                "user creation limits must be at least 1",
            );
        }
        if self.limits.group_max_members < 2 {
            return invalid("limits.group_max_members", "must be at least 2");
        }
        if self.router.group_idle_secs == 0 {
            return invalid("router.group_idle_secs", "must be at least 1");
        }
        if self.limits.history_max == 0 || self.limits.search_max == 0 || self.limits.page_max == 0 {
            return invalid("limits.history_max", "page limits must be at least 1");
        }
        if self.files.max_bytes == 0 || self.files.fetch_max_bytes == 0 {
            return invalid("files.max_bytes", "file limits must be at least 1 byte");
        }
        if self.files.ffmpeg_timeout_secs == 0 || self.files.fetch_timeout_secs == 0 {
            return invalid("files.ffmpeg_timeout_secs", "timeouts must be at least 1 second");
        }
        if self.files.ffmpeg.trim().is_empty() {
            return invalid("files.ffmpeg", "must name the ffmpeg program");
        }
        if self.files.backend == FilesBackend::S3 && self.files.s3_bucket.trim().is_empty() {
            return invalid("files.s3_bucket", "is required with files.backend = \"s3\"");
        }
        Ok(())
    }

    /// The keys whose values are secrets, with a handle on each: what `check-config` masks.
    /// A new secret key belongs in this list.
    fn secrets_mut(&mut self) -> [(&'static str, &mut String); 6] {
        [
            ("auth.jwt_secret", &mut self.auth.jwt_secret),
            ("auth.external_secret", &mut self.auth.external_secret),
            ("auth.visitor_salt", &mut self.auth.visitor_salt),
            ("auth.visitor_app_secret", &mut self.auth.visitor_app_secret),
            ("admin.secret", &mut self.admin.secret),
            ("files.s3_secret_access_key", &mut self.files.s3_secret_access_key),
        ]
    }

    /// The names of the secret keys.
    pub fn secret_keys() -> Vec<&'static str> {
        Config::default()
            .secrets_mut()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// This configuration with every secret that is set shown as `***` (an unset one stays
    /// empty), for printing.
    pub fn masked(&self) -> Config {
        let mut shown = self.clone();
        for (_, secret) in shown.secrets_mut() {
            if !secret.is_empty() {
                *secret = "***".into();
            }
        }
        shown
    }

    /// The policy every tenant starts with.
    pub fn policy(&self) -> parlor_actors::Policy {
        parlor_actors::Policy {
            revoke_window_secs: self.limits.revoke_window_secs,
            max_message_bytes: self.limits.max_message_bytes,
            rate_per_sec: self.limits.rate_per_sec,
            rate_burst: self.limits.rate_burst,
            offline_replay_max: self.limits.offline_replay_max,
            max_group_members: self.limits.group_max_members,
            presence_group_max: self.presence.group_max_members,
            webhooks: Default::default(),
        }
    }

    pub(crate) fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

/// The `PARLOR_` variables among `names` that are not configuration (no `__` after the
/// prefix), sorted.
pub fn ignored_env(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = names
        .filter(|n| n.strip_prefix("PARLOR_").is_some_and(|rest| !rest.contains("__")))
        .collect();
    out.sort();
    out
}

/// Whether `s` is `host:port` with a port number and a host that is an IP address (IPv6 in
/// brackets) or a DNS name; names are resolved when the listener is bound.
fn is_host_port(s: &str) -> bool {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    port.parse::<u16>().is_ok()
        && !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `server.cors_origins`: `["*"]` alone, or origins `http(s)://host[:port]` with nothing
/// after the authority (a browser's `Origin` header never has a path or a trailing slash).
fn check_origins(origins: &[String]) -> Result<(), String> {
    if origins.iter().any(|o| o == "*") {
        return if origins.len() == 1 {
            Ok(())
        } else {
            Err("\"*\" allows every origin and must be the only entry".into())
        };
    }
    for origin in origins {
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .ok_or_else(|| format!("{origin:?} must start with http:// or https://"))?;
        let host_ok = if authority.contains(':') {
            is_host_port(authority)
        } else {
            is_host_port(&format!("{authority}:0"))
        };
        if !host_ok {
            return Err(format!(
                "{origin:?} must be scheme://host[:port] (no path, no trailing slash)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[server]\nbindd = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bindd"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = Config::from_toml("[ws]\nmailbox = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mailbox"), "{err}");
        let err = Config::from_toml("[server]\nbind = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.bind"), "{err}");
    }

    #[test]
    fn the_dedup_window_is_read_and_must_not_be_empty() {
        let c = Config::from_toml("[storage]\ndedup_window_secs = 600\n").unwrap();
        assert_eq!(c.storage.dedup_window_secs, 600);
        assert_eq!(Config::default().storage.dedup_window_secs, 3600);
        let err = Config::from_toml("[storage]\ndedup_window_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.dedup_window_secs"), "{err}");
    }

    #[test]
    fn bind_takes_a_host_name() {
        for good in [
            "localhost:7001",
            "127.0.0.1:7001",
            "[::1]:7001",
            "chat.example.com:80",
        ] {
            let c = Config::from_toml(&format!("[server]\nbind = \"{good}\"\n"));
            assert!(c.is_ok(), "{good}: {:?}", c.err());
        }
        for bad in [
            "localhost",
            "localhost:",
            ":7001",
            "local host:7001",
            "a..b:1",
            "x:99999",
        ] {
            let err = Config::from_toml(&format!("[server]\nbind = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("server.bind"), "{bad}: {err}");
        }
    }

    #[test]
    fn cluster_mode_refuses_what_would_lose_data_or_split_a_tenant() {
        let node = "[cluster]\nenabled = true\nnode_id = \"n1\"\n\
                    [auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n\
                    [files]\nbackend = \"s3\"\ns3_bucket = \"b\"\n";
        let c = Config::from_toml(node).expect("a complete node configuration");
        assert!(c.cluster.enabled);
        assert_eq!(
            (c.cluster.shards, c.cluster.replicas, c.cluster.lease_ttl_ms),
            (16, 3, 6000)
        );
        let refused = |text: &str, key: &str| {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        };
        refused(
            &node.replace("jwt_secret = \"0123456789abcdef0123456789abcdef\"", ""),
            "auth.jwt_secret",
        );
        refused(
            &node.replace("backend = \"s3\"", "backend = \"local\""),
            "files.backend",
        );
        refused(
            &node.replace("node_id = \"n1\"", "node_id = \"\""),
            "cluster.node_id",
        );
        refused(
            &node.replace("node_id = \"n1\"", "node_id = \"n 1\""),
            "cluster.node_id",
        );
        refused(
            &format!("{node}[admin]\nsecret = \"s3cret-s3cret-s3cret\"\n"),
            "admin.secret",
        );
        let with = |line: &str| node.replace("enabled = true\n", &format!("enabled = true\n{line}\n"));
        refused(&with("shards = 0"), "cluster.shards");
        refused(&with("replicas = 2"), "cluster.replicas");
        refused(&with("lease_ttl_ms = 10"), "cluster.lease_ttl_ms");
        refused(&with("nats_urls = []"), "cluster.nats_urls");
        refused(&with("advertise = \"10.0.0.1:7000\""), "cluster.advertise");
        refused(&with("shard_workers = 0"), "cluster.shard_workers");
        refused(&with("connect_timeout_ms = 0"), "cluster.connect_timeout_ms");
        // Off, none of it is read: the single node's defaults stand.
        Config::from_toml("[cluster]\nenabled = false\nreplicas = 2\n")
            .expect("cluster keys are not checked when off");
    }

    #[test]
    fn metrics_on_the_admin_listener_need_it() {
        let err = Config::from_toml("[metrics]\nlistener = \"admin\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.listener"), "{err}");
        let c = Config::from_toml(
            "[metrics]\nlistener = \"admin\"\n[admin]\nsecret = \"s3cret-s3cret-s3cret\"\n",
        );
        assert_eq!(c.unwrap().metrics.listener, MetricsListener::Admin);
        let err = Config::from_toml("[metrics]\nlistener = \"both\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listener"), "{err}");
    }

    #[test]
    fn cors_origins_are_checked() {
        let ok = |v: &str| Config::from_toml(&format!("[server]\ncors_origins = {v}\n"));
        for good in [
            r#"[]"#,
            r#"["*"]"#,
            r#"["https://app.example.com"]"#,
            r#"["http://127.0.0.1:5173", "https://a.example"]"#,
        ] {
            assert!(ok(good).is_ok(), "{good}: {:?}", ok(good).err());
        }
        for bad in [
            r#"["*", "https://a.example"]"#,
            r#"["app.example.com"]"#,
            r#"["https://app.example.com/"]"#,
            r#"["https://app.example.com/path"]"#,
            r#"["ftp://a.example"]"#,
        ] {
            let err = ok(bad).unwrap_err().to_string();
            assert!(err.contains("server.cors_origins"), "{bad}: {err}");
        }
    }

    #[test]
    fn locale_is_zh_cn_or_en() {
        assert_eq!(Config::default().server.locale, Locale::ZhCn);
        let c = Config::from_toml("[server]\nlocale = \"en\"\n").unwrap();
        assert_eq!(c.server.locale, Locale::En);
        let c = Config::from_toml("[server]\nlocale = \"zh-CN\"\n").unwrap();
        assert_eq!(c.server.locale, Locale::ZhCn);
        let err = Config::from_toml("[server]\nlocale = \"fr\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.locale"), "{err}");
    }

    #[test]
    fn locale_follows_the_environment() {
        // No other test of this binary reads PARLOR_SERVER__LOCALE.
        std::env::set_var("PARLOR_SERVER__LOCALE", "en");
        let en = Config::load(None).map(|c| c.server.locale);
        std::env::set_var("PARLOR_SERVER__LOCALE", "de");
        let de = Config::load(None).map(|c| c.server.locale);
        std::env::remove_var("PARLOR_SERVER__LOCALE");
        assert_eq!(en.unwrap(), Locale::En);
        // The environment names the key in capitals: `SERVER.LOCALE`.
        let err = de.unwrap_err().to_string().to_lowercase();
        assert!(err.contains("server.locale"), "{err}");
    }

    #[test]
    fn only_variables_without_a_section_are_ignored() {
        let names = [
            "PARLOR_PORT",
            "PARLOR_SERVER__BIND",
            "HOME",
            "PARLOR_SERVICE_HOST",
            "PARLORX",
        ];
        assert_eq!(
            ignored_env(names.iter().map(|n| n.to_string())),
            ["PARLOR_PORT", "PARLOR_SERVICE_HOST"]
        );
    }

    #[test]
    fn connection_limits_must_make_sense() {
        for bad in [
            "[server]\nmax_connections = 0\n",
            "[server]\nmax_connections = 10\nmax_connections_per_address = 11\n",
            "[server]\nmax_connections_per_address = 0\n",
            "[server]\nbody_timeout_secs = 0\n",
            "[server]\nhead_timeout_ms = 0\n",
            "[admin]\nmax_connections = 0\n",
        ] {
            let err = Config::from_toml(bad).unwrap_err().to_string();
            assert!(
                err.contains("max_connections") || err.contains("timeout"),
                "{bad}: {err}"
            );
        }
        let c =
            Config::from_toml("[server]\nmax_connections = 10\nmax_connections_per_address = 10\n").unwrap();
        assert_eq!(c.server.max_connections_per_address, 10);
    }

    #[test]
    fn an_issuer_or_audience_is_one_text_or_a_list() {
        let c = Config::from_toml(
            "[auth]\nexternal_issuer = \"https://id.example.com\"\nexternal_audience = [\"a\", \"b\"]\n",
        )
        .unwrap();
        assert_eq!(c.auth.external_issuer, ["https://id.example.com"]);
        assert_eq!(c.auth.external_audience, ["a", "b"]);
    }

    #[test]
    fn numbers_are_taken_as_text_for_secrets() {
        let c = Config::from_toml("[admin]\nsecret = 123456\n").unwrap();
        assert_eq!(c.admin.secret, "123456");
    }

    #[test]
    fn secrets_are_masked_when_set_and_empty_when_unset() {
        let c = Config::from_toml("[admin]\nsecret = \"s3cret-s3cret-s3cret\"\n[auth]\njwt_secret = \"\"\n")
            .unwrap();
        let shown = c.masked();
        assert_eq!(shown.admin.secret, "***");
        assert_eq!(shown.auth.jwt_secret, "");
        assert_eq!(shown.auth.visitor_app_secret, "***");
        assert_eq!(shown.files.s3_secret_access_key, "");
        assert_eq!(Config::secret_keys().len(), 6);
        assert!(Config::secret_keys().contains(&"auth.external_secret"));
        assert!(Config::secret_keys().contains(&"files.s3_secret_access_key"));
    }

    #[test]
    fn shipped_file_is_valid_and_matches_defaults() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
        let shipped = Config::from_toml(&text).unwrap();
        let defaults = Config::default();
        assert_eq!(
            serde_json::to_value(&shipped).unwrap(),
            serde_json::to_value(&defaults).unwrap(),
            "config.toml documents the defaults"
        );
    }
}
