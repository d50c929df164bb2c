//! `damocles-worker`: the daemon, its management CLI and the processor children.

mod cli;
mod config;
mod daemon;
mod doctor;
mod live_limits;
mod manager_addr;
mod mgmt_server;
mod params;
mod post;
mod processor_child;
mod stages;

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

#[derive(Debug, Parser)]
#[command(
    name = "damocles-worker",
    version = VERSION,
    about = "Runs sealing threads and processors of a damocles cluster"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the worker
    Daemon {
        #[arg(short = 'c', long = "config", env = "DAMOCLES_WORKER_CONFIG")]
        config: PathBuf,
    },
    /// Manage the sealing threads of a running worker
    Worker(cli::WorkerCmd),
    /// Check this machine before the worker starts: the config, its disks, the Groth
    /// parameters, the manager and this worker's token, the processors, the management port
    /// (one line each; fails when any does)
    Doctor {
        #[arg(short = 'c', long = "config", env = "DAMOCLES_WORKER_CONFIG")]
        config: PathBuf,
    },
    /// Make sure the Groth parameters of small sectors are in the cache (generated when missing)
    Params {
        /// Sector sizes to prepare (2KiB and 8MiB can be generated)
        #[arg(long, default_value = "2KiB")]
        sector_size: Vec<String>,
    },
    /// Time a stage's bare library call: runs the task of STAGE in TASK (JSON) RUNS times in
    /// this process, as a processor child would but without the protocol, and prints the
    /// seconds of each run
    #[command(hide = true)]
    BenchStage {
        stage: String,
        task: PathBuf,
        runs: usize,
    },
    /// Seal a 2KiB CC sector from add_pieces to c2 as bare library calls back to back in this
    /// process, `runs` times under `dir`; prints the seconds of each run and of each stage
    #[command(hide = true)]
    BenchSeal { dir: PathBuf, runs: usize },
    /// Serve one processor stage over stdin/stdout (started by the daemon)
    Processor {
        /// add_pieces, tree_d, pc1, pc2, c1, c2, snap_encode, snap_prove or window_post
        stage: String,
    },
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell) to stdout
    Completions { shell: clap_complete::Shell },
    /// Write the man pages, one per command, into DIR
    Man { dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    damocles_actors::logging::init("DAMOCLES_WORKER_LOG");
    let result = match cli.cmd {
        Cmd::Daemon { config } => daemon::run(&config),
        Cmd::Worker(cmd) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(cmd.run())),
        Cmd::Completions { shell } => {
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "damocles-worker", &mut out);
            Ok(())
        }
        Cmd::Man { dir } => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
            .map_err(|e| anyhow::anyhow!("write the man pages into {}: {e}", dir.display())),
        Cmd::Doctor { config } => doctor::run(&config),
        Cmd::Processor { stage } => processor_child::run(&stage),
        Cmd::Params { sector_size } => params::ensure_for_sizes(&sector_size),
        Cmd::BenchStage { stage, task, runs } => stages::bench(&stage, &task, runs),
        Cmd::BenchSeal { dir, runs } => stages::bench_seal(&dir, runs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("damocles-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
