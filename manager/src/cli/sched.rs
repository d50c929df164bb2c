//! `util sealer sectors pledge` (new CC sectors when the chain does not grant them by itself) and
//! `util worker sched-log` (the decision log), through the REST API.

use std::time::Duration;

use clap::{ArgGroup, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::{decode, iso, Api};
use crate::db::sched::DecisionRow;
use crate::rest::Pledged;

#[derive(Debug, Subcommand)]
pub enum SealerSub {
    /// Sectors of the mock chain
    Sectors {
        #[command(subcommand)]
        cmd: SectorsSub,
    },
    /// Snap-up: deals into proven CC sectors
    Snap {
        #[command(subcommand)]
        cmd: super::market::SnapSub,
    },
    /// WindowPoSt: faulty sectors and missed deadlines
    Proving {
        #[command(subcommand)]
        cmd: super::proving::ProvingSub,
    },
}

#[derive(Debug, Subcommand)]
pub enum SectorsSub {
    /// Pledge new CC sectors (with `[mock] auto_pledge = false`), spread evenly over the active
    /// workers
    #[command(group(ArgGroup::new("how").required(true).args(["count", "fill", "once_per_worker"])))]
    Pledge {
        /// This many sectors in all
        #[arg(long)]
        count: Option<u32>,
        /// One for every idle sealer thread of an active worker
        #[arg(long)]
        fill: bool,
        /// One for each active worker
        #[arg(long)]
        once_per_worker: bool,
    },
    /// Every sector: its kind (CC, deals, snapped), state and deals
    List {
        /// Only this miner's
        #[arg(long)]
        miner: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Abort a sector that is not proven (or the snap-up in flight of a proven one); the
    /// thread working on it stops at once and wipes it. A dry run without --really-do-it
    Abort {
        #[arg(value_parser = super::sectors::actor)]
        miner: u64,
        number: u64,
        /// Why (kept with the sector)
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        really_do_it: bool,
    },
    /// Undo an abort: the sector goes back to the state it was aborted in. A dry run without
    /// --really-do-it
    Restore {
        #[arg(value_parser = super::sectors::actor)]
        miner: u64,
        number: u64,
        #[arg(long)]
        really_do_it: bool,
    },
    /// Queue a proven sector whose files are lost for a rebuild by a `plan = "rebuild"` thread.
    /// A dry run without --really-do-it
    Rebuild {
        #[arg(value_parser = super::sectors::actor)]
        miner: u64,
        number: u64,
        #[arg(long)]
        really_do_it: bool,
    },
    /// Get a deal's piece back from its sealed sector: a `plan = "unseal"` thread regenerates
    /// it. Waits for the bytes and writes them to --output (default ./<piece_cid>), or has the
    /// worker deliver them to --dest
    Unseal {
        piece_cid: String,
        /// The sector's miner (with --sector; found from the deals otherwise)
        #[arg(long, visible_aliases = ["miner", "actor-id"], value_parser = super::sectors::actor, requires = "sector")]
        actor: Option<u64>,
        /// The sector's number (with --actor)
        #[arg(long, visible_alias = "sector-id", requires = "actor")]
        sector: Option<u64>,
        /// Where the client's bytes are written (a directory: <dir>/<piece_cid>)
        #[arg(long, short = 'o', conflicts_with = "dest")]
        output: Option<std::path::PathBuf>,
        /// Have the worker deliver the piece instead: file:///path (on the worker's machine) or
        /// http://host/path (a PUT)
        #[arg(long)]
        dest: Option<String>,
        /// Queue it and return without waiting
        #[arg(long)]
        no_wait: bool,
        /// Start over even when a thread holds it (its worker is gone for good); that thread's
        /// work on it no longer counts
        #[arg(long)]
        requeue: bool,
        /// How long to wait for the bytes
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Every unseal task: its piece, sector, state and destinations
    Unseals {
        #[arg(long)]
        json: bool,
    },
    /// Print a sector as damocles-manager's SectorState JSON (what import-json reads, here or
    /// in damocles)
    ExportJson {
        #[arg(value_parser = super::sectors::actor)]
        miner: u64,
        number: u64,
    },
    /// Import a proven sector from a SectorState JSON file (ours, or damocles-manager's own
    /// export-json). Shows what it would import without --really-do-it
    ImportJson {
        file: std::path::PathBuf,
        /// Replace a finished or aborted sector of the same number
        #[arg(long)]
        r#override: bool,
        /// The persist store holding its sealed file and cache (damocles' records name none)
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        really_do_it: bool,
    },
    /// One sector with its deals and pieces
    State {
        miner: u64,
        number: u64,
        #[arg(long)]
        json: bool,
    },
}

impl SealerSub {
    pub async fn run(self, api: &Api) -> anyhow::Result<()> {
        match self {
            SealerSub::Snap { cmd } => cmd.run(api).await,
            SealerSub::Proving { cmd } => cmd.run(api).await,
            SealerSub::Sectors { cmd } => super::sectors::run(cmd, api).await,
        }
    }
}

/// `util sealer sectors pledge`.
pub async fn pledge(
    api: &Api,
    count: Option<u32>,
    fill: bool,
    once_per_worker: bool,
) -> anyhow::Result<()> {
    let body = match count {
        Some(n) => json!({ "count": n }),
        None if fill => json!({"fill": true}),
        None => json!({"once_per_worker": once_per_worker}),
    };
    let r = api
        .call(Method::POST, "/sealer/sectors/pledge", Some(body))
        .await?;
    let r: Pledged = decode("pledge", r)?;
    println!("pledged {} sectors", r.pledged);
    for (worker, n) in r.workers {
        println!("  {worker}: {n}");
    }
    Ok(())
}

/// Prints the decisions of the last `since` (one greppable line each), or their JSON.
pub async fn sched_log(
    api: &Api,
    worker: Option<String>,
    since: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let mut path = format!("/sched/log?since_secs={}", since.as_secs());
    if let Some(w) = &worker {
        path += &format!("&worker={w}");
    }
    let rows = api.call(Method::GET, &path, None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let rows: Vec<DecisionRow> = decode(&path, rows)?;
    for r in &rows {
        println!("{}", line(r));
    }
    Ok(())
}

fn line(r: &DecisionRow) -> String {
    let (at, worker, work) = (iso(&r.at), &r.worker_name, &r.work);
    if r.decision == "granted" {
        match r.thread_index {
            Some(i) => format!("{at} sched: granted {work} to {worker} #{i}"),
            None => format!("{at} sched: granted {work} to {worker}"),
        }
    } else {
        format!("{at} sched: not scheduling {worker}: {} ({work})", r.reason)
    }
}
