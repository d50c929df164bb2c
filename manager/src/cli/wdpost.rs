//! `damocles-manager util worker wdpost ...`: the WindowPoSt jobs in seed 002's table, and
//! reset / remove / remove-all, through the REST API.

use std::time::Duration;

use chrono::{Local, NaiveDateTime, TimeZone};
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::{go_duration, s, table, Api};

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
fn local_time(v: &Value) -> String {
    v.as_str()
        .and_then(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .map(|t| {
            Local
                .from_utc_datetime(&t)
                .format("%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn secs(v: &Value) -> Option<Duration> {
    v.as_u64().map(Duration::from_secs)
}

/// One table cell: no tabs or newlines, `-` when empty.
fn cell(v: &Value) -> String {
    if v.is_null() || v.as_str() == Some("") {
        "-".into()
    } else {
        s(v).replace(['\t', '\n'], " ")
    }
}

fn row(j: &Value, detail: bool) -> Vec<String> {
    let partitions = j["partitions"].as_str().unwrap_or_default().to_string();
    let elapsed = match (secs(&j["elapsed_secs"]), j["finished_at"].is_null()) {
        (Some(d), true) => go_duration(d),
        (Some(d), false) => format!("{}(done)", go_duration(d)),
        (None, _) => "-".into(),
    };
    let heartbeat = secs(&j["heartbeat_age_secs"])
        .map(go_duration)
        .unwrap_or_else(|| "-".into());
    let mut r = vec![
        s(&j["id"]),
        s(&j["miner_id"]),
        s(&j["deadline_idx"]),
        if partitions.is_empty() {
            "-".into()
        } else {
            partitions
        },
    ];
    if detail {
        r.push(s(&j["sectors"]));
    }
    r.extend([cell(&j["worker_name"]), s(&j["state"]), s(&j["try_num"])]);
    r.push(local_time(&j["created_at"]));
    if detail {
        for k in ["started_at", "heartbeat_at", "finished_at", "updated_at"] {
            r.push(local_time(&j[k]));
        }
        r.push(elapsed);
    } else {
        r.extend([elapsed, heartbeat]);
    }
    r.push(cell(&j["error_reason"]));
    r
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
                let rows = jobs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|j| row(j, detail))
                    .collect();
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
                let jobs: Vec<String> = r["jobs"].as_array().into_iter().flatten().map(s).collect();
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
