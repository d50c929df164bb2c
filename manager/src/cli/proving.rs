//! `damocles-manager util sealer proving faults|missed`: what missed WindowPoSt windows cost,
//! through the REST API.

use clap::Subcommand;
use reqwest::Method;

use super::{decode, opt, print_json, table, Api};
use crate::db::wdpost::MissedRow;
use crate::rest::wdpost::Fault;

#[derive(Debug, Subcommand)]
pub enum ProvingSub {
    /// Faulty sectors: each missed a WindowPoSt and stays faulty until one proves it again
    Faults {
        /// Only this miner's
        #[arg(long)]
        miner: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Missed deadlines, newest first: windows that closed without a verified proof
    Missed {
        /// Only this miner's
        #[arg(long)]
        miner: Option<u64>,
        /// Most rows
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

/// `HH:MM:SS` of a UTC time, with its date.
fn time(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl ProvingSub {
    pub async fn run(self, api: &Api) -> anyhow::Result<()> {
        match self {
            ProvingSub::Faults { miner, json } => {
                let path = match miner {
                    Some(m) => format!("/proving/faults?miner={m}"),
                    None => "/proving/faults".into(),
                };
                let r = api.call(Method::GET, &path, None).await?;
                if json {
                    return print_json(&r);
                }
                let faults: Vec<Fault> = decode(&path, r)?;
                let rows = faults
                    .iter()
                    .map(|f| {
                        vec![
                            format!("s-t0{}-{}", f.miner, f.sector),
                            opt(&f.deadline),
                            opt(&f.partition),
                            time(&f.since),
                            f.reason.replace(['\t', '\n'], " "),
                        ]
                    })
                    .collect();
                table(
                    "Sector\tDeadline\tPartition\tFaultySince(UTC)\tReason",
                    rows,
                )
            }
            ProvingSub::Missed { miner, limit, json } => {
                let mut path = format!("/proving/missed?limit={limit}");
                if let Some(m) = miner {
                    path += &format!("&miner={m}");
                }
                let r = api.call(Method::GET, &path, None).await?;
                if json {
                    return print_json(&r);
                }
                let missed: Vec<MissedRow> = decode(&path, r)?;
                let rows = missed
                    .iter()
                    .map(|m| {
                        vec![
                            m.job_id.clone(),
                            m.miner_id.to_string(),
                            m.deadline_idx.to_string(),
                            m.partitions.clone(),
                            m.sectors.to_string(),
                            time(&m.deadline_close_at),
                            m.reason.replace(['\t', '\n'], " "),
                        ]
                    })
                    .collect();
                table(
                    "JobID\tMinerID\tDDL\tPartitions\tSectors\tClosedAt(UTC)\tReason",
                    rows,
                )
            }
        }
    }
}
