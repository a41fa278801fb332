//! `loadgen`: drives a running Parlor server with many real WebSocket clients and reports
//! throughput and latency.
//!
//! Every mode registers its own users (run-unique names), connects them, runs a workload
//! and prints one table; the exit code is non-zero when anything was lost or refused. A
//! machine line comes first so that figures are never quoted without the hardware they came
//! from. Modes are subcommands: `direct` (pairs of users messaging each other) and `fanout`
//! (senders in one group whose every member counts the deliveries), `connect` (how fast
//! sessions open), `idle` (what an open session costs the server) and `offline` (a user's
//! catch-up after being away), all with the same common options. Before any result it prints
//! the machine, the server's process and pinning when it runs here, and an fsync probe.
//!
//! Run the server in release (`cargo build --release`), ideally pinned to other CPUs than the
//! generator (`taskset`), and see `loadgen --help` for the limits to raise first.

mod bare;
mod cleanup;
mod clock;
mod direct;
mod drive;
mod fanout;
mod frames;
mod machine;
mod members;
mod mqtt;
mod offline;
mod schedule;
mod sessions;
mod setup;
mod slow;
mod stats;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// The same allocator as the server's, so that neither side pays more per frame for it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
Before a run:
  * ulimit -n must be at least sockets + setup concurrency + 100 in the shell that starts the
    generator (sockets: --clients or --members); the server, a process of its own, needs
    about as many for its side of the sockets: `ulimit -n 20000` covers 10,000 sockets.
    For far more sockets than the ephemeral port range holds
    (/proc/sys/net/ipv4/ip_local_port_range), spread them over local addresses with
    --source-ips 127.0.0.2,127.0.0.3,...
  * Run the server built in release: argon2 hashing at registration and redb are slow
    unoptimized. For many clients, lower its argon2 cost for the benchmark
    (PARLOR_AUTH__ARGON2_MEMORY_KIB=64 PARLOR_AUTH__ARGON2_ITERATIONS=1).
  * The server limits each user's sends (limits.rate_per_sec, default 500/s, burst 1000);
    a run above that per client gets `rate_limited` errors. Turn it off for throughput runs
    with PARLOR_LIMITS__RATE_PER_SEC=0.
  * The server holds at most server.max_connections connections (default 10000), and
    server.max_connections_per_address from one address (default 256); raise both for
    runs with many clients (PARLOR_SERVER__MAX_CONNECTIONS=1000000
    PARLOR_SERVER__MAX_CONNECTIONS_PER_ADDRESS=1000000).
  * Pin server and generator to different CPUs, e.g. `taskset -c 0 parlor` and
    `taskset -c 1 loadgen ...`.

Examples:
  loadgen direct --url http://127.0.0.1:7001 --clients 1000 --messages 100000 --rate 10000
  loadgen fanout --url http://127.0.0.1:7001 --members 1000 --senders 10 --messages 200
  loadgen connect --url http://127.0.0.1:7001 --clients 10000
  loadgen idle --url http://127.0.0.1:7001 --clients 50000 --hold 30 --source-ips 127.0.0.1,127.0.0.2
  loadgen offline --url http://127.0.0.1:7001 --messages 1000 --repeat 20";

/// Load generator for the Parlor chat server.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, after_help = USAGE)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Pairs of online users (0<->1, 2<->3, ...) sending each other direct messages.
    Direct(direct::DirectArgs),
    /// One group of online members; a few of them send and every member counts deliveries.
    Fanout(fanout::FanoutArgs),
    /// Opens one WebSocket per user as fast as allowed: connects/s and handshake latency.
    Connect(sessions::SessionsArgs),
    /// Opens one WebSocket per user and holds them idle: the server's memory per session.
    Idle(sessions::SessionsArgs),
    /// A user away while messages pile up, then: login -> last message received.
    Offline(offline::OfflineArgs),
}

/// Options every mode takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Base URL of the server's client listener.
    #[arg(long, default_value = "http://127.0.0.1:7001")]
    pub url: String,
    /// Seconds to wait for outstanding acks and deliveries after the last send (and the
    /// longest the counters may stand still while sending) before giving up.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Registrations, other set-up requests and WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub setup_concurrency: usize,
    /// Local addresses to open the WebSockets from, in turn (comma-separated, e.g.
    /// 127.0.0.2,127.0.0.3), each with its own ephemeral ports. Default: the system's choice.
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// Directory on the server's data disk for the fsync probe printed before the run.
    #[arg(long, default_value = ".")]
    pub probe_dir: PathBuf,
    /// Synchronous 4 KiB writes the fsync probe times (0: no probe).
    #[arg(long, default_value_t = 200)]
    pub fsync_probes: usize,
    /// After the run, passed or not, delete every user it registered (and so the groups
    /// they own) through the signed admin face. Checked against
    /// the admin listener before anything is created. Parlor targets only.
    #[arg(long)]
    pub cleanup: bool,
    /// Processes whose CPU time is the server's (comma-separated pids). Default: the
    /// process listening at --url. A deployment of several processes (cluster mode: its
    /// nodes and nats-servers) lists them all.
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Base URL of the server's admin listener (`admin.bind`), for --cleanup.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    pub admin_url: String,
    /// The server's `admin.secret`, for --cleanup.
    #[arg(
        long,
        env = "PARLOR_ADMIN__SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub admin_secret: String,
}

impl Mode {
    fn common(&self) -> &Common {
        match self {
            Mode::Direct(a) => &a.common,
            Mode::Fanout(a) => &a.common,
            Mode::Connect(a) | Mode::Idle(a) => &a.common,
            Mode::Offline(a) => &a.common,
        }
    }

    /// WebSockets the run keeps open at once.
    fn sockets(&self) -> usize {
        match self {
            Mode::Direct(a) => a.clients,
            Mode::Fanout(a) => a.members,
            Mode::Connect(a) | Mode::Idle(a) => a.clients,
            Mode::Offline(_) => 2,
        }
    }

    /// The admin face to clean up through, when `--cleanup` was given and can apply.
    fn cleanup(&self) -> Result<Option<cleanup::Admin>, String> {
        let common = self.common();
        if !common.cleanup {
            return Ok(None);
        }
        if let Mode::Fanout(a) = self {
            if a.target != fanout::Server::Parlor {
                return Err("--cleanup applies to --target parlor only".into());
            }
        }
        if common.admin_secret.is_empty() {
            return Err("--cleanup needs the admin secret: --admin-secret or PARLOR_ADMIN__SECRET".into());
        }
        Ok(Some(cleanup::Admin {
            url: common.admin_url.clone(),
            secret: common.admin_secret.clone(),
        }))
    }
}

/// Runs the mode, then removes what it created when `admin` is given (checked first).
async fn run_and_clean(mode: &Mode, admin: Option<cleanup::Admin>) -> Result<bool, String> {
    let Some(admin) = admin else {
        return run(mode).await;
    };
    admin.check().await?;
    let outcome = run(mode).await;
    let removed = admin.remove_registered().await;
    let passed = outcome?;
    removed?;
    Ok(passed)
}

async fn run(mode: &Mode) -> Result<bool, String> {
    match mode {
        Mode::Direct(args) => direct::run(args).await,
        Mode::Fanout(args) => fanout::run(args).await,
        Mode::Connect(args) => sessions::run(args, false).await,
        Mode::Idle(args) => sessions::run(args, true).await,
        Mode::Offline(args) => offline::run(args).await,
    }
}

fn main() -> ExitCode {
    // The same memory settings as the server's.
    parlor::memory::disable_transparent_huge_pages();
    clock::init();
    let cli = Cli::parse();
    let common = cli.mode.common();
    println!("{}", machine::line());
    println!("{}", machine::server_line(&common.url));
    if common.fsync_probes > 0 {
        println!("{}", machine::fsync_probe(&common.probe_dir, common.fsync_probes));
    }
    let needed = (cli.mode.sockets() + cli.mode.common().setup_concurrency) as u64 + 100;
    if let Err(e) = machine::check_fd_limit(needed) {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    let admin = match cli.mode.cleanup() {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_and_clean(&cli.mode, admin)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
