//! `damocles-worker worker list | pause | resume | limits`: a client of the local management API.

use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use damocles_actors::limits::{limits_table, parse_assignment, StageUse};
use damocles_actors::wire::jsonrpc::{CallError, Client};
use damocles_actors::wire::worker_api::{ThreadInfo, DEFAULT_PORT};
use serde_json::json;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct WorkerCmd {
    /// The worker's config file; its rpc_server tells where to connect
    #[arg(
        short = 'c',
        long = "config",
        env = "DAMOCLES_WORKER_CONFIG",
        global = true
    )]
    config: Option<PathBuf>,
    /// The worker's management address (host:port); default 127.0.0.1:17890
    #[arg(
        short = 'H',
        long = "host",
        env = "DAMOCLES_WORKER_HOST",
        global = true
    )]
    host: Option<String>,
    #[command(subcommand)]
    cmd: WorkerSub,
}

#[derive(Debug, Subcommand)]
enum WorkerSub {
    /// Show every sealing thread
    List {
        /// Print the raw thread list as JSON
        #[arg(long)]
        json: bool,
    },
    /// Pause one thread
    Pause {
        #[arg(short, long)]
        index: usize,
    },
    /// Resume a paused thread, optionally from another state
    Resume {
        #[arg(short, long)]
        index: usize,
        #[arg(short, long)]
        state: Option<String>,
    },
    /// Show the stage limits and how many of each run; with stage=N (or stage=none), change
    /// them now and in the config file
    Limits {
        #[arg(value_parser = parse_assignment)]
        set: Vec<(String, Option<usize>)>,
        #[arg(long)]
        json: bool,
    },
}

impl WorkerCmd {
    fn target(&self) -> anyhow::Result<String> {
        if let Some(path) = &self.config {
            let cfg = Config::load(path)?;
            let host = match cfg.worker.rpc_server.host.as_deref() {
                None | Some("0.0.0.0") | Some("::") => "127.0.0.1".to_string(),
                Some(h) => h.to_string(),
            };
            return Ok(format!("{host}:{}", cfg.rpc_port()));
        }
        Ok(self
            .host
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}")))
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let addr = self.target()?;
        let client = Client::new(format!("http://{addr}/"), Duration::from_secs(10));
        let fail = |e: CallError| match e {
            CallError::Transport { reason, .. } => {
                anyhow::anyhow!("cannot reach the worker at {addr}: {reason}")
            }
            CallError::Rpc(r) => anyhow::anyhow!("{}", r.message),
            other => anyhow::anyhow!("{other}"),
        };
        match self.cmd {
            WorkerSub::List { json } => {
                let list: Vec<ThreadInfo> = client
                    .call("VenusWorker.WorkerList", json!([]))
                    .await
                    .map_err(fail)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    for t in &list {
                        println!("{}", t.list_line());
                    }
                }
            }
            WorkerSub::Pause { index } => {
                let done: bool = client
                    .call("VenusWorker.WorkerPause", json!([index]))
                    .await
                    .map_err(fail)?;
                if done {
                    println!("thread #{index} paused");
                } else {
                    println!("thread #{index} was already paused");
                }
            }
            WorkerSub::Limits { set, json } => {
                let now: BTreeMap<String, StageUse> = if set.is_empty() {
                    client.call("VenusWorker.WorkerLimits", json!([])).await
                } else {
                    let changes: BTreeMap<String, Option<usize>> = set.into_iter().collect();
                    client
                        .call("VenusWorker.WorkerSetLimits", json!([changes]))
                        .await
                }
                .map_err(fail)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&now)?);
                } else {
                    print!("{}", limits_table(&now));
                }
            }
            WorkerSub::Resume { index, state } => {
                let _: bool = client
                    .call("VenusWorker.WorkerResume", json!([index, state]))
                    .await
                    .map_err(fail)?;
                match state {
                    Some(s) => println!("thread #{index} resumed from state {s}"),
                    None => println!("thread #{index} resumed"),
                }
            }
        }
        Ok(())
    }
}
