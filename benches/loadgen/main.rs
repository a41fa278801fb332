//! `loadgen`: drives a running Parlor server with many real WebSocket clients and reports
//! throughput and latency.
//!
//! Every mode registers its own users (run-unique names), connects them, runs a workload
//! and prints one table; the exit code is non-zero when anything was lost or refused. A
//! machine line comes first so that figures are never quoted without the hardware they came
//! from. Modes are subcommands; `direct` (pairs of users messaging each other) exists today,
//! `fanout`, `connect`, `idle` and `offline` will sit beside it with the same common options.
//!
//! Run the server in release (`cargo build --release`), ideally pinned to other CPUs than the
//! generator (`taskset`), and see `loadgen --help` for the limits to raise first.

mod clock;
mod direct;
mod frames;
mod machine;
mod setup;
mod stats;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

const USAGE: &str = "\
Before a run:
  * ulimit -n must be at least 2 x clients + 100 in the shell that starts the generator
    (and the server, when on the same host): `ulimit -n 65536`.
  * Run the server built in release: argon2 hashing at registration and redb are slow
    unoptimized. For many clients, lower its argon2 cost for the benchmark
    (PARLOR_AUTH__ARGON2_MEMORY_KIB=64 PARLOR_AUTH__ARGON2_ITERATIONS=1).
  * The server limits each user's sends (limits.rate_per_sec, default 500/s, burst 1000);
    a run above that per client gets `rate_limited` errors. Turn it off for throughput runs
    with PARLOR_LIMITS__RATE_PER_SEC=0.
  * Pin server and generator to different CPUs, e.g. `taskset -c 0 parlor` and
    `taskset -c 1 loadgen ...`.

Example:
  loadgen direct --url http://127.0.0.1:7001 --clients 1000 --messages 100000 --rate 10000";

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
}

/// Options every mode takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Base URL of the server's client listener.
    #[arg(long, default_value = "http://127.0.0.1:7001")]
    pub url: String,
    /// Number of users, each with one WebSocket.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Seconds to wait for outstanding acks and deliveries after the last send (and the
    /// longest the counters may stand still while sending) before giving up.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Registrations and WebSocket handshakes in flight at once during set-up.
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,
}

impl Mode {
    fn common(&self) -> &Common {
        match self {
            Mode::Direct(a) => &a.common,
        }
    }
}

async fn run(mode: &Mode) -> Result<bool, String> {
    match mode {
        Mode::Direct(args) => direct::run(args).await,
    }
}

fn main() -> ExitCode {
    clock::init();
    let cli = Cli::parse();
    println!("{}", machine::line());
    let needed = 2 * cli.mode.common().clients as u64 + 100;
    if let Err(e) = machine::check_fd_limit(needed) {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&cli.mode)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
