//! The `parlor` command: runs the server, checks a configuration, checks a database's
//! integrity, exports a database to a JSON-lines file and imports one into an empty
//! database.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parlor::config::Config;
use parlor::dump::Export;
use parlor_storage::ReadOnlyStore;

/// The allocator (the default `mimalloc` feature): frames, messages, envelopes and the
/// store's page buffers are many short-lived allocations made on one thread and freed on
/// another, which mimalloc serves with less work per call than the system allocator. See
/// [`parlor::memory`] for the one setting it needs.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A real-time messaging server.
#[derive(Parser)]
#[command(name = "parlor", version, about)]
struct Cli {
    /// Configuration file (default: ./config.toml when it exists). `PARLOR_*` environment
    /// variables override its keys.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Validate the configuration and print the effective values, secrets masked.
    CheckConfig {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Toml)]
        format: Format,
    },
    /// Write a JSON-lines copy of the database (users with their password hashes, friends,
    /// applications, blocks, groups, members, join requests, conversations, cursors,
    /// messages, settings), read in one transaction. With the server stopped the file is
    /// opened read-only; while a server has it open, the copy comes from that server's
    /// admin listener (`POST /admin/export`, signed with `admin.secret`).
    Export {
        /// The file to write (replaced only once the export is complete).
        #[arg(long)]
        out: PathBuf,
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Address of the running server's admin listener (default: `admin.bind`).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Check the database at `storage.path` (the server must be stopped): every page's
    /// checksum and the tree structure, on a copy, so the file is not changed. Exits 1 when
    /// the file is damaged.
    Check {
        /// The database file to check instead of `storage.path`.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Ask the running server's `GET /healthz` (at `server.bind`; an unspecified address
    /// such as 0.0.0.0 is asked on loopback) and exit 0 when it answers 200, 1 otherwise:
    /// a health check for a container or a supervisor that needs no HTTP client.
    Health {
        /// Address to ask instead of `server.bind` (`host:port`).
        #[arg(long)]
        addr: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Read an export into the empty database at `storage.path` (the server must be
    /// stopped). Ids, seqs and counters are kept.
    Import {
        /// The export file.
        #[arg(long = "in")]
        input: PathBuf,
    },
}

/// How `check-config` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Toml,
    Json,
}

fn load(cli: &Cli) -> Result<Config, String> {
    let file = match &cli.config {
        Some(path) if !path.exists() => return Err(format!("config: {} does not exist", path.display())),
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from("config.toml")).filter(|p| p.exists()),
    };
    Config::load(file.as_deref()).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    parlor::memory::disable_transparent_huge_pages();
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    init_log(&config.log);
    let ignored = parlor::config::ignored_env(std::env::vars().map(|(k, _)| k));
    if !ignored.is_empty() {
        tracing::info!(
            variables = %ignored.join(", "),
            "ignoring PARLOR_ variables that are not PARLOR_<SECTION>__<KEY> configuration"
        );
    }
    let done = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => return serve(config),
        Command::CheckConfig { format } => check_config(&config, format),
        Command::Export { out, tenant, admin } => export(&config, &out, tenant, admin),
        Command::Import { input } => import(&config, &input),
        Command::Check { data } => check(data.as_deref().unwrap_or(&config.storage.path)),
        Command::Health { addr, timeout } => health(&config, addr, timeout),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parlor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The log on standard error: `RUST_LOG` (default `info`), text coloured only on a
/// terminal, or JSON lines.
fn init_log(log: &parlor::config::LogConfig) {
    use std::io::IsTerminal;
    let filter = || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match log.format {
        parlor::config::LogFormat::Json => builder.json().init(),
        parlor::config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn health(config: &Config, addr: Option<String>, timeout: u64) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    let target = addr.unwrap_or_else(|| config.server.bind.clone());
    let timeout = std::time::Duration::from_secs(timeout.max(1));
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| format!("health: cannot resolve {target}: {e}"))?
        .map(|a| match a.ip() {
            // A server bound to every address answers on loopback.
            ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], a.port())),
            ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())),
            _ => a,
        })
        .collect();
    let mut last = format!("health: {target} resolves to no address");
    for a in addrs {
        let answer = (|| -> std::io::Result<String> {
            let mut conn = TcpStream::connect_timeout(&a, timeout)?;
            conn.set_read_timeout(Some(timeout))?;
            conn.set_write_timeout(Some(timeout))?;
            conn.write_all(format!("GET /healthz HTTP/1.0\r\nHost: {a}\r\n\r\n").as_bytes())?;
            let mut text = String::new();
            conn.take(64 * 1024).read_to_string(&mut text)?;
            Ok(text)
        })();
        match answer {
            Ok(text) => {
                let status = text.lines().next().unwrap_or("").to_owned();
                let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
                if status.split_whitespace().nth(1) == Some("200") {
                    println!("{body}");
                    return Ok(());
                }
                return Err(format!("health: {a} answered {status:?}: {body}"));
            }
            Err(e) => last = format!("health: {a}: {e}"),
        }
    }
    Err(last)
}

fn check(path: &std::path::Path) -> Result<(), String> {
    match parlor_storage::check(path).map_err(|e| format!("cannot check {}: {e}", path.display()))? {
        parlor_storage::Integrity::Sound => {
            println!("{}: sound (every page passed its checksum)", path.display());
            Ok(())
        }
        parlor_storage::Integrity::Damaged => Err(format!(
            "{}: damaged: pages failed their checksums; restore it from an export (what those \
             pages held is lost otherwise)",
            path.display()
        )),
        parlor_storage::Integrity::Corrupted(detail) => Err(format!(
            "{}: corrupted, cannot be repaired: {detail}",
            path.display()
        )),
    }
}

fn check_config(config: &Config, format: Format) -> Result<(), String> {
    let shown = config.masked();
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&shown).map_err(|e| e.to_string())?,
        Format::Toml => toml::to_string(&shown).map_err(|e| e.to_string())?,
    };
    use std::io::Write;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
    Ok(())
}

fn export(config: &Config, out: &Path, tenant: Option<String>, admin: Option<String>) -> Result<(), String> {
    let partial = out.with_extension("partial");
    let written = match ReadOnlyStore::open(&config.storage.path) {
        Ok(store) => {
            let snapshot = store.snapshot().map_err(|e| e.to_string())?;
            let export = Export::new(snapshot, tenant).map_err(|e| e.to_string())?;
            let file = std::fs::File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
            let mut file = std::io::BufWriter::new(file);
            let records = export.write_to(&mut file).map_err(|e| e.to_string());
            drop(file);
            records.map(|n| (n, export.header().tenants.clone()))
        }
        Err(e) if e.is_in_use() => export_from_server(config, &partial, tenant, admin),
        Err(e) => Err(e.to_string()),
    };
    match written {
        Ok((records, tenants)) => {
            std::fs::rename(&partial, out).map_err(|e| format!("{}: {e}", out.display()))?;
            eprintln!(
                "exported {records} records of {} tenant(s) ({}) to {}",
                tenants.len(),
                tenants.join(", "),
                out.display()
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// The export through a running server's admin listener, streamed into `path`.
fn export_from_server(
    config: &Config,
    path: &Path,
    tenant: Option<String>,
    admin: Option<String>,
) -> Result<(u64, Vec<String>), String> {
    let data = config.storage.path.display();
    if config.admin.secret.is_empty() {
        return Err(format!(
            "{data} is open in a running server and admin.secret is empty, so its admin listener is off: \
             stop the server, or set admin.secret, to export"
        ));
    }
    let addr = admin.unwrap_or_else(|| config.admin.bind.clone());
    let url = format!("http://{addr}/admin/export");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        use std::io::Write;
        let nonce = uuid::Uuid::new_v4().to_string();
        let timestamp = parlor_actors::now_ms().to_string();
        let sign = parlor::faces::admin::sign(&nonce, &config.admin.secret, &timestamp);
        let body = match &tenant {
            Some(t) => serde_json::json!({ "tenant": t }),
            None => serde_json::json!({}),
        };
        let mut resp = reqwest::Client::new()
            .post(&url)
            .header("nonce", nonce)
            .header("timestamp", timestamp)
            .header("sign", sign)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                format!("{data} is open in a running server, and its admin listener {url} failed: {e}")
            })?;
        let ndjson = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"));
        if !resp.status().is_success() || !ndjson {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(format!("{url} refused the export ({status}): {text}"));
        }
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        let mut last = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("the export was cut short: {e}"))?
        {
            file.write_all(&chunk).map_err(|e| e.to_string())?;
            last.extend_from_slice(&chunk);
            if last.len() > 4096 {
                last.drain(..last.len() - 4096);
            }
        }
        file.flush().map_err(|e| e.to_string())?;
        // The end line counts the records; without it the stream was cut.
        let tail = String::from_utf8_lossy(&last);
        let end: serde_json::Value = tail
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v["kind"] == "end")
            .ok_or("the export was cut short: no end line")?;
        let first = std::io::BufRead::lines(std::io::BufReader::new(
            std::fs::File::open(path).map_err(|e| e.to_string())?,
        ))
        .next()
        .and_then(|l| l.ok())
        .and_then(|l| serde_json::from_str::<parlor::dump::Header>(&l).ok())
        .ok_or("the export has no header")?;
        Ok((end["records"].as_u64().unwrap_or(0), first.tenants))
    })
}

fn import(config: &Config, input: &Path) -> Result<(), String> {
    let done = parlor::dump::import(input, &config.storage.path).map_err(|e| e.to_string())?;
    eprintln!(
        "imported {} records of {} tenant(s) ({}) into {}",
        done.records,
        done.header.tenants.len(),
        done.header.tenants.join(", "),
        config.storage.path.display()
    );
    Ok(())
}

fn serve(config: Config) -> ExitCode {
    let system = actix::System::new();
    let result = system.block_on(async move {
        let listener = TcpListener::bind(&config.server.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", config.server.bind))?;
        if config.cluster.enabled {
            let node = parlor::cluster::node::Node::start(listener, config)
                .await
                .map_err(|e| e.to_string())?;
            return node.wait().await.map_err(|e| e.to_string());
        }
        let running = parlor::run(listener, config).await.map_err(|e| e.to_string())?;
        running.wait().await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("parlor: {e}");
            ExitCode::FAILURE
        }
    }
}
