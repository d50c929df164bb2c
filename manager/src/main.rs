//! `damocles-manager`: the control plane daemon and its CLI.

mod cli;
mod config;
mod db;
mod deadline_clock;
mod error;
mod heartbeat_writer;
mod home;
mod mock_chain;
mod rest;
mod rpc;
mod sched;
mod server;
mod verify;
mod wdpost;
mod wdpost_keeper;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::ManagerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "damocles-manager",
    version,
    about = "Control plane of a damocles sealing cluster"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The manager daemon
    Daemon {
        #[command(subcommand)]
        cmd: DaemonCmd,
    },
    /// Run a mock-chain manager (same as `daemon run --mock`)
    Mock {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Database maintenance
    Db {
        #[command(subcommand)]
        cmd: DbCmd,
    },
    /// Operator commands against a running manager
    Util(cli::UtilCmd),
}

#[derive(Debug, Subcommand)]
enum DaemonCmd {
    /// Run the manager
    Run {
        /// Fake the chain (sector numbers, tickets, seeds, messages that land at once)
        #[arg(long)]
        mock: bool,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DbCmd {
    /// Apply pending migrations and exit
    Migrate {
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// manager.toml; default: <home>/manager.toml when it exists
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Listen address (host:port); default 127.0.0.1:1789
    #[arg(long)]
    listen: Option<String>,
    /// Miner actor id of the mock chain
    #[arg(long)]
    miner: Option<u64>,
    /// Sector size of the mock chain (2KiB, 8MiB, 512MiB, 32GiB, 64GiB)
    #[arg(long)]
    sector_size: Option<String>,
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<ManagerConfig> {
    let default = home::home().join("manager.toml");
    match path {
        Some(p) => Ok(ManagerConfig::load(&p)?),
        None if default.exists() => Ok(ManagerConfig::load(&default)?),
        None => Ok(ManagerConfig::default()),
    }
}

fn run_daemon(args: RunArgs, mock: bool) -> anyhow::Result<()> {
    let cfg = load_config(args.config)?;
    tracing::info!(config = ?cfg, "effective config");
    if let Some(size) = &args.sector_size {
        mock_chain::proof_for_size(size).map_err(|e| anyhow::anyhow!("--sector-size: {e}"))?;
    }
    let opts = server::RunOptions {
        listen: args.listen,
        mock,
        miner: args.miner,
        sector_size: args.sector_size,
    };
    actix_rt::System::new().block_on(server::run(cfg, opts))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    damocles_actors::logging::init("DAMOCLES_MANAGER_LOG");
    let result = match cli.cmd {
        Cmd::Daemon {
            cmd: DaemonCmd::Run { mock, run },
        } => run_daemon(run, mock),
        Cmd::Mock { run } => run_daemon(run, true),
        Cmd::Db {
            cmd: DbCmd::Migrate { config },
        } => load_config(config).and_then(|cfg| {
            let db = server::open_db(&cfg)?;
            println!("database {} is up to date", db.backend);
            Ok(())
        }),
        Cmd::Util(cmd) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(cmd.run())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("damocles-manager: {e:#}");
            ExitCode::FAILURE
        }
    }
}
