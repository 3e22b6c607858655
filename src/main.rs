//! The `slotgate` command: run the B2BUA, check a config, apply the
//! database migrations, or import a do-not-call list.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use slotgate::config::Config;
use slotgate::store::Store;

// The SIP engine allocates and frees many small strings per message; glibc's
// allocator spent a fifth of the CPU on them under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "slotgate",
    version,
    about = "Consent-gated outbound calling: a SIP B2BUA in front of your trunk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run slotgate (applies migrations first).
    Run {
        #[arg(long, default_value = "config/slotgate.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and exit (2 on error, naming the key).
    CheckConfig {
        #[arg(long, default_value = "config/slotgate.toml")]
        config: PathBuf,
    },
    /// Apply the database migrations and exit.
    Migrate {
        #[arg(long, default_value = "config/slotgate.toml")]
        config: PathBuf,
    },
    /// Manage do-not-call lists.
    Dnc {
        #[command(subcommand)]
        command: DncCommand,
    },
    /// STIR/SHAKEN Identity headers.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Verify an Identity header value against a certificate (PEM or DER)
    /// and print its PASSporT header and claims. Exit 1 if it does not
    /// verify.
    Verify {
        /// The certificate whose key signed the header.
        #[arg(long)]
        cert: PathBuf,
        /// The header value (`Identity: ` may be included); read from
        /// standard input when absent or `-`.
        header: Option<String>,
    },
}

#[derive(Subcommand)]
enum DncCommand {
    /// Import numbers from a CSV file (number in the first column) into an
    /// enterprise's list, or the global list without --enterprise. All
    /// accepted rows are added in one transaction; prints what was accepted
    /// and why each other row was rejected.
    Import {
        /// CSV file to read.
        file: PathBuf,
        /// Enterprise id; national numbers are read in its default region.
        /// Without it the global list is used and numbers must be
        /// international (+CC…).
        #[arg(long)]
        enterprise: Option<String>,
        #[arg(long, default_value = "config/slotgate.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Verifying a header needs no configuration.
    if let Command::Identity {
        command: IdentityCommand::Verify { cert, header },
    } = &cli.command
    {
        return report(verify_identity(cert, header.as_deref()));
    }
    let path = match &cli.command {
        Command::Run { config } | Command::CheckConfig { config } | Command::Migrate { config } => {
            config.clone()
        }
        Command::Dnc {
            command: DncCommand::Import { config, .. },
        } => config.clone(),
        Command::Identity { .. } => return ExitCode::FAILURE,
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("slotgate: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_level);
    match cli.command {
        Command::CheckConfig { .. } => {
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Command::Migrate { .. } => report(runtime().and_then(|rt| rt.block_on(migrate(&config)))),
        Command::Run { .. } => report(runtime().and_then(|rt| rt.block_on(run(config)))),
        Command::Dnc {
            command: DncCommand::Import {
                file, enterprise, ..
            },
        } => report(
            runtime().and_then(|rt| rt.block_on(import_dnc(&config, &file, enterprise.as_deref()))),
        ),
        Command::Identity { .. } => ExitCode::FAILURE,
    }
}

fn verify_identity(cert: &Path, header: Option<&str>) -> anyhow::Result<()> {
    let value = match header {
        Some(h) if h != "-" => h.to_string(),
        _ => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read the header from standard input")?;
            text
        }
    };
    let verified = slotgate::callerid::verify::verify_with_certificate(&value, cert)
        .context("the Identity header does not verify")?;
    println!("signature: valid (ES256, {})", cert.display());
    println!(
        "header: {}",
        slotgate::callerid::passport::canonical_json(&verified.header)
    );
    println!(
        "claims: {}",
        slotgate::callerid::passport::canonical_json(&verified.claims)
    );
    if let Some(iat) = verified.claims.get("iat").and_then(|v| v.as_i64()) {
        let age = chrono::Utc::now().timestamp() - iat;
        println!("iat: {iat} ({age} s ago)");
    }
    Ok(())
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slotgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    // RUST_LOG wins for ad-hoc debugging; the config's level is the default.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// One thread: the SIP engine is a single task that owns all call state, so
/// more workers would only add cross-thread wake-ups to every datagram. The
/// database drivers keep their own threads.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.store.url)
        .await
        .context("store.url")?;
    store.migrate().await.context("applying migrations")?;
    println!("migrations applied");
    Ok(())
}

async fn import_dnc(config: &Config, file: &Path, enterprise: Option<&str>) -> anyhow::Result<()> {
    let csv =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = Store::connect(&config.store.url)
        .await
        .context("store.url")?;
    store.migrate().await.context("applying migrations")?;
    let report = store
        .import_do_not_call(enterprise, &csv, chrono::Utc::now())
        .await
        .context("importing the do-not-call list")?;
    let list = enterprise.map_or("the global list".to_string(), |e| {
        format!("enterprise {e}'s list")
    });
    println!("{}: imported into {list}", file.display());
    print!("{report}");
    Ok(())
}

async fn run(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.store.url)
        .await
        .context("store.url")?;
    // Held until `run` returns: a second node on the same SQLite file
    // refuses to start (see `Store::lock_single_node`).
    let _single_node = store.lock_single_node()?;
    store.migrate().await.context("applying migrations")?;
    slotgate::serve(config, store, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
