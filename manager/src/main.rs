//! `damocles-manager`: the control plane daemon and its CLI.

mod auth;
mod claim_batcher;
mod cli;
mod config;
mod damocles_cfg;
mod db;
mod deadline_clock;
mod decision_log;
mod doctor;
mod error;
mod heartbeat_writer;
mod home;
mod intake;
mod metrics;
mod mock_chain;
mod openapi;
mod rest;
mod retention;
mod rpc;
mod sched;
mod sector_json;
mod server;
mod ui;
mod verify;
mod wdpost;
mod wdpost_keeper;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// `--version`: the release and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DAMOCLES_GIT_COMMIT"),
    ")"
);

use crate::config::ManagerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "damocles-manager",
    version = VERSION,
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
    /// Check this machine before the manager starts: the config, the database and its
    /// migrations, the admin token file, the listen address (one line each; fails when any does)
    Doctor {
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell) to stdout
    Completions { shell: clap_complete::Shell },
    /// Write the man pages, one per command, into DIR
    Man { dir: PathBuf },
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
    /// manager.toml; default: <home>/manager.toml when it exists (damocles' own
    /// <home>/sector-manager.cfg is read too, for the settings they share)
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Listen address (host:port); default 127.0.0.1:1789
    #[arg(long)]
    listen: Option<String>,
    /// Run the miner of the (mock) chain; its actor id here, or from the config ([mock] miner,
    /// or sector-manager.cfg's [[Miners]] Actor) when the flag has no value, as in damocles
    #[arg(long, num_args = 0..=1, value_name = "ACTOR_ID")]
    miner: Option<Option<u64>>,
    /// Run the WindowPoSt poster: the mock chain's deadline clock makes jobs
    #[arg(long)]
    poster: bool,
    /// Accepted as damocles spells it: WindowPoSt proofs come from workers (always so here)
    #[arg(long)]
    worker_prover: bool,
    /// Not supported: WindowPoSt runs on workers (--worker-prover)
    #[arg(long, hide = true)]
    ext_prover: bool,
    /// Sector size of the mock chain (2KiB, 8MiB, 512MiB, 32GiB, 64GiB)
    #[arg(long)]
    sector_size: Option<String>,
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<ManagerConfig> {
    let default = home::home().join("manager.toml");
    let mut cfg = match path {
        Some(p) => ManagerConfig::load(&p)?,
        None if default.exists() => ManagerConfig::load(&default)?,
        None => ManagerConfig::default(),
    };
    let theirs = home::home().join(damocles_cfg::FILE_NAME);
    if theirs.exists() {
        let file = theirs.display().to_string();
        let text = damocles_actors::config_file::read(&theirs)?;
        let applied = damocles_cfg::apply(&mut cfg, &text, &file)?;
        tracing::info!(file = %file, keys = ?applied.keys, "damocles config read");
        if !applied.ignored.is_empty() {
            tracing::info!(file = %file, sections = ?applied.ignored, "sections for parts this manager does not have: ignored");
        }
    }
    Ok(cfg)
}

fn run_daemon(args: RunArgs, mock: bool) -> anyhow::Result<()> {
    if args.ext_prover {
        anyhow::bail!("--ext-prover is not supported: WindowPoSt runs on workers with plan = \"wdpost\" threads (--worker-prover, always on)");
    }
    let cfg = load_config(args.config)?;
    tracing::info!(config = ?cfg, "effective config");
    if let Some(size) = &args.sector_size {
        damocles_proof_types::seal_proof_for_size(size)
            .map_err(|e| anyhow::anyhow!("--sector-size: {e}"))?;
    }
    let opts = server::RunOptions {
        listen: args.listen,
        // The poster needs the mock chain's deadlines: there is no other chain.
        mock: mock || args.poster,
        miner: args.miner.flatten(),
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
        Cmd::Doctor { config } => doctor::run(config),
        Cmd::Completions { shell } => {
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "damocles-manager", &mut out);
            Ok(())
        }
        Cmd::Man { dir } => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
            .map_err(|e| anyhow::anyhow!("write the man pages into {}: {e}", dir.display())),
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
