//! The `parlor` command: runs the server, or checks a configuration.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parlor::config::Config;

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
    CheckConfig,
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
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            let mut shown = config.clone();
            for secret in [
                &mut shown.auth.jwt_secret,
                &mut shown.admin.secret,
                &mut shown.auth.visitor_app_secret,
                &mut shown.files.s3_secret_access_key,
            ] {
                if !secret.is_empty() {
                    *secret = "********".into();
                }
            }
            match effective_json(&shown) {
                Ok(text) => {
                    use std::io::Write;
                    // A closed pipe (`| head`) is not an error worth a panic.
                    let _ = writeln!(std::io::stdout(), "{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => serve(config),
    }
}

fn effective_json(config: &Config) -> Result<String, String> {
    serde_json::to_value(config)
        .map_err(|e| e.to_string())
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn serve(config: Config) -> ExitCode {
    let system = actix::System::new();
    let result = system.block_on(async move {
        let listener = TcpListener::bind(&config.server.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", config.server.bind))?;
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
