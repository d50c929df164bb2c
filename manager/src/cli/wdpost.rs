//! `damocles-manager util worker wdpost ...`: the WindowPoSt jobs in seed 002's table, and
//! reset / remove / remove-all, through the REST API.

use std::time::Duration;

use chrono::{Local, NaiveDateTime, TimeZone};
use clap::Subcommand;
use reqwest::Method;

use super::{decode, go_duration, table, Api};
use crate::rest::wdpost::{JobView, RemovedJobs};

#[derive(Debug, Subcommand)]
pub enum WdpostSub {
    /// Unfinished and failed jobs (all jobs with --all)
    List {
        /// Include succeeded jobs
        #[arg(long)]
        all: bool,
        /// Add start, heartbeat, finish and update times and the sector count
        #[arg(long)]
        detail: bool,
        #[arg(long)]
        json: bool,
    },
    /// Put jobs back in the queue with no tries used
    Reset {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete jobs (the mock chain creates a job again while its deadline is open)
    Remove {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete every job; prints what it would delete unless --really-do-it is given
    RemoveAll {
        #[arg(long)]
        really_do_it: bool,
    },
}

/// `MM-DD HH:MM:SS` in local time, as damocles prints job times; `-` when unset.
fn local_time(t: Option<&NaiveDateTime>) -> String {
    t.map(|t| {
        Local
            .from_utc_datetime(t)
            .format("%m-%d %H:%M:%S")
            .to_string()
    })
    .unwrap_or_else(|| "-".into())
}

fn secs(v: Option<i64>) -> Option<Duration> {
    v.and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_secs)
}

/// One table cell: no tabs or newlines, `-` when empty.
fn cell(v: Option<&str>) -> String {
    match v {
        None | Some("") => "-".into(),
        Some(s) => s.replace(['\t', '\n'], " "),
    }
}

fn row(j: &JobView, detail: bool) -> Vec<String> {
    let r = &j.row;
    let elapsed = match (secs(j.elapsed_secs), r.finished_at.is_none()) {
        (Some(d), true) => go_duration(d),
        (Some(d), false) => format!("{}(done)", go_duration(d)),
        (None, _) => "-".into(),
    };
    let heartbeat = secs(j.heartbeat_age_secs)
        .map(go_duration)
        .unwrap_or_else(|| "-".into());
    let mut out = vec![
        r.id.clone(),
        r.miner_id.to_string(),
        r.deadline_idx.to_string(),
        cell(Some(&r.partitions)),
    ];
    if detail {
        out.push(r.sectors.to_string());
    }
    out.extend([
        cell(r.worker_name.as_deref()),
        r.state.to_string(),
        r.try_num.to_string(),
    ]);
    out.push(local_time(Some(&r.created_at)));
    if detail {
        for t in [
            r.started_at,
            r.heartbeat_at,
            r.finished_at,
            Some(r.updated_at),
        ] {
            out.push(local_time(t.as_ref()));
        }
        out.push(elapsed);
    } else {
        out.extend([elapsed, heartbeat]);
    }
    out.push(cell(r.error_reason.as_deref()));
    out
}

impl WdpostSub {
    pub async fn run(self, api: &Api) -> anyhow::Result<()> {
        match self {
            WdpostSub::List { all, detail, json } => {
                let path = format!("/wdpost/jobs?all={all}&detail={}", detail && json);
                let jobs = api.call(Method::GET, &path, None).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&jobs)?);
                    return Ok(());
                }
                let jobs: Vec<JobView> = decode(&path, jobs)?;
                let rows = jobs.iter().map(|j| row(j, detail)).collect();
                let header = if detail {
                    "JobID\tMinerID\tDDL\tPartitions\tSectors\tWorker\tState\tTry\tCreateAt\tStartedAt\tHeartbeatAt\tFinishedAt\tUpdatedAt\tElapsed\tError"
                } else {
                    "JobID\tMinerID\tDDL\tPartitions\tWorker\tState\tTry\tCreateAt\tElapsed\tHeartbeat\tError"
                };
                table(header, rows)
            }
            WdpostSub::Reset { ids } => each(api, Method::POST, &ids, "/reset", "reset").await,
            WdpostSub::Remove { ids } => each(api, Method::DELETE, &ids, "", "removed").await,
            WdpostSub::RemoveAll { really_do_it } => {
                let path = format!("/wdpost/jobs?really_do_it={really_do_it}");
                let r = api.call(Method::DELETE, &path, None).await?;
                let jobs = decode::<RemovedJobs>(&path, r)?.jobs;
                if really_do_it {
                    for id in &jobs {
                        println!("wdpost job {id} removed");
                    }
                    println!("{} jobs removed", jobs.len());
                } else {
                    println!("would remove {} jobs: {}", jobs.len(), jobs.join(" "));
                    println!("Pass --really-do-it to actually execute this action");
                }
                Ok(())
            }
        }
    }
}

/// Applies one action to each job, saying what happened to each; fails if any failed.
async fn each(
    api: &Api,
    method: Method,
    ids: &[String],
    suffix: &str,
    done: &str,
) -> anyhow::Result<()> {
    let mut failed = 0;
    for id in ids {
        match api
            .call(method.clone(), &format!("/wdpost/jobs/{id}{suffix}"), None)
            .await
        {
            Ok(_) => println!("wdpost job {id} {done}"),
            Err(e) => {
                eprintln!("wdpost job {id}: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} jobs failed", ids.len());
    }
    Ok(())
}
