//! `damocles-worker worker list | pause | resume | limits`: a client of the local management API.

use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use damocles_actors::limits::{limits_table, parse_assignment};
use damocles_actors::wire::auth::{unix_now, ControlKey, FORCE_HEADER};
use damocles_actors::wire::jsonrpc::{CallError, Client};
use damocles_actors::wire::method::Method;
use damocles_actors::wire::worker_api::DEFAULT_PORT;
use damocles_actors::wire::worker_methods::{
    is_read, WorkerLimits, WorkerList, WorkerPause, WorkerResume, WorkerSetLimits,
};

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
    /// Pause one thread (at once when it waits; else when its step ends)
    Pause {
        #[arg(short, long)]
        index: usize,
        /// Stop now even inside a processor step, which then runs again from its start on resume
        #[arg(long)]
        force: bool,
    },
    /// Resume a paused thread, optionally from another state
    Resume {
        #[arg(short, long)]
        index: usize,
        #[arg(short, long)]
        state: Option<String>,
        /// Resume into Finished or Aborted (implied here, on the worker's own machine)
        #[arg(long)]
        force: bool,
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
    /// Where the worker's API is, and the key to sign changes with (from the config's token).
    fn target(&self) -> anyhow::Result<(String, Result<Option<ControlKey>, String>)> {
        if let Some(path) = &self.config {
            let cfg = Config::load(path)?;
            let host = match cfg.worker.rpc_server.host.as_deref() {
                None | Some("0.0.0.0") | Some("::") => "127.0.0.1".to_string(),
                Some(h) => h.to_string(),
            };
            // Reads need no token: an unreadable one is reported only by calls that change.
            let key = cfg
                .token(path)
                .map(|t| t.as_deref().map(ControlKey::from_token))
                .map_err(|e| e.to_string());
            return Ok((format!("{host}:{}", cfg.rpc_port()), key));
        }
        let host = self
            .host
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"));
        Ok((host, Ok(None)))
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let (addr, key) = self.target()?;
        let api = Api {
            client: Client::new(format!("http://{addr}/"), Duration::from_secs(10)),
            key,
            addr,
        };
        match self.cmd {
            WorkerSub::List { json } => {
                let list = api.call::<WorkerList>([], false).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    for t in &list {
                        println!("{}", t.list_line());
                    }
                }
            }
            WorkerSub::Pause { index, force } => {
                if api.call::<WorkerPause>((index,), force).await? {
                    // A step that cannot stop half-way runs to its end first.
                    let list = api.call::<WorkerList>([], false).await?;
                    match list.iter().find(|t| t.index == index && t.pausing) {
                        Some(t) => println!(
                            "thread #{index} pauses when its running step ends ({}; `worker list` shows it pausing)",
                            t.job_stage.as_deref().unwrap_or(&t.job_state)
                        ),
                        None => println!("thread #{index} paused"),
                    }
                } else {
                    println!("thread #{index} was already paused");
                }
            }
            WorkerSub::Limits { set, json } => {
                let now = if set.is_empty() {
                    api.call::<WorkerLimits>([], false).await?
                } else {
                    let changes: BTreeMap<String, Option<usize>> = set.into_iter().collect();
                    api.call::<WorkerSetLimits>((changes,), false).await?
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&now)?);
                } else {
                    print!("{}", limits_table(&now));
                }
            }
            WorkerSub::Resume {
                index,
                state,
                force,
            } => {
                // This CLI signs only with the local config's token, so it speaks for the
                // operator at the machine: dropping a sector needs no extra flag here, as in
                // damocles. `--force` stays for symmetry with the manager's CLI.
                let drops = matches!(state.as_deref(), Some("Finished" | "Aborted"));
                let resumed = api
                    .call::<WorkerResume>((index, state.clone()), force || drops)
                    .await?;
                match (resumed, state) {
                    (false, _) => println!("thread #{index} was not paused: nothing to resume"),
                    (true, Some(s)) => println!("thread #{index} resumed from state {s}"),
                    (true, None) => println!("thread #{index} resumed"),
                }
            }
        }
        Ok(())
    }
}

/// The worker's API as this CLI calls it: every call signed when the config gave a token.
struct Api {
    client: Client,
    /// The signing key, or why the config's token could not be read.
    key: Result<Option<ControlKey>, String>,
    addr: String,
}

impl Api {
    async fn call<M: Method>(&self, params: M::Params, force: bool) -> anyhow::Result<M::Output> {
        let key = match &self.key {
            Ok(k) => k.clone(),
            Err(e) if !is_read(M::NAME) => anyhow::bail!("{e}"),
            Err(_) => None,
        };
        self.client
            .call_with::<M>(params, move |body| {
                let mut h = Vec::new();
                if let Some(k) = &key {
                    h.push(("Authorization", k.sign(unix_now(), force, body)));
                }
                if force {
                    h.push((FORCE_HEADER, "true".to_string()));
                }
                h
            })
            .await
            .map_err(|e| match e {
                CallError::Transport { reason, .. } => {
                    anyhow::anyhow!("cannot reach the worker at {}: {reason}", self.addr)
                }
                CallError::Rpc(r) => anyhow::anyhow!("{}", r.message),
                other => anyhow::anyhow!("{other}"),
            })
    }
}
