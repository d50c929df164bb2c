//! `util mock deals ...`, `util sealer snap ...` and `util sealer sectors list|state`, through
//! the REST API (`rest/market.rs`).

use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;

use super::{decode, opt, print_json, table, Api};
use crate::db::deals::DealRow;
use crate::rest::market::{DeadlineCandidates, SectorState, SectorView, SnapFetched};

#[derive(Debug, Subcommand)]
pub enum MockSub {
    /// Deals of the mock market
    Deals {
        #[command(subcommand)]
        cmd: DealsSub,
    },
}

#[derive(Debug, Subcommand)]
pub enum DealsSub {
    /// Make a deal of a file's bytes: padded as Filecoin pads a piece, its piece CID computed,
    /// kept in the manager's piece store, waiting for a sector
    Import {
        /// The miner the deal is with
        #[arg(long)]
        miner: Option<u64>,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Every deal and where it went
    List {
        #[arg(long)]
        miner: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapSub {
    /// Make the proven CC sectors of a deadline snap-up candidates
    Fetch { miner: u64, deadline: u32 },
    /// The candidates of each deadline
    Candidates {
        miner: u64,
        /// Every deadline, also those without candidates
        #[arg(long)]
        show_all: bool,
        #[arg(long)]
        json: bool,
    },
}

fn sector_of(d: &DealRow) -> String {
    d.sector_number
        .map_or_else(|| "-".into(), |n| format!("s-t0{}-{n}", d.miner_id))
}

impl MockSub {
    pub async fn run(self, api: &Api) -> anyhow::Result<()> {
        let MockSub::Deals { cmd } = self;
        match cmd {
            DealsSub::Import { miner, file, json } => {
                let bytes = std::fs::read(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                let path = match miner {
                    Some(m) => format!("/mock/deals?miner={m}"),
                    None => "/mock/deals".into(),
                };
                let r = api.call_bytes(Method::POST, &path, bytes).await?;
                if json {
                    return print_json(&r);
                }
                let d: DealRow = decode("deal import", r)?;
                println!(
                    "deal {} imported: piece {} ({} bytes of data in a {} byte piece), waiting for a sector",
                    d.deal_id, d.piece_cid, d.payload_size, d.piece_size
                );
                Ok(())
            }
            DealsSub::List { miner, json } => {
                let path = match miner {
                    Some(m) => format!("/mock/deals?miner={m}"),
                    None => "/mock/deals".into(),
                };
                let r = api.call(Method::GET, &path, None).await?;
                if json {
                    return print_json(&r);
                }
                let deals: Vec<DealRow> = decode(&path, r)?;
                let rows = deals
                    .iter()
                    .map(|d| {
                        vec![
                            d.deal_id.to_string(),
                            format!("t0{}", d.miner_id),
                            d.piece_cid.clone(),
                            d.piece_size.to_string(),
                            d.payload_size.to_string(),
                            d.state.clone(),
                            sector_of(d),
                            opt(&d.piece_offset),
                        ]
                    })
                    .collect();
                table(
                    "ID\tMiner\tPiece\tSize\tPayload\tState\tSector\tOffset",
                    rows,
                )
            }
        }
    }
}

impl SnapSub {
    pub async fn run(self, api: &Api) -> anyhow::Result<()> {
        match self {
            SnapSub::Fetch { miner, deadline } => {
                let path = format!("/sealer/snap/{miner}/fetch?deadline={deadline}");
                let r = api.call(Method::POST, &path, None).await?;
                let r: SnapFetched = decode("snap fetch", r)?;
                println!(
                    "candidate sectors fetched: available-in-deadline={} added={}",
                    r.total, r.diff
                );
                Ok(())
            }
            SnapSub::Candidates {
                miner,
                show_all,
                json,
            } => {
                let path = format!("/sealer/snap/{miner}/candidates?show_all={show_all}");
                let r = api.call(Method::GET, &path, None).await?;
                if json {
                    return print_json(&r);
                }
                let list: Vec<DeadlineCandidates> = decode(&path, r)?;
                if list.iter().all(|d| d.sectors.is_empty()) && !show_all {
                    println!("no candidates available");
                    return Ok(());
                }
                let rows = list
                    .iter()
                    .map(|d| {
                        let numbers: Vec<String> = d.sectors.iter().map(u64::to_string).collect();
                        vec![
                            d.deadline.to_string(),
                            d.sectors.len().to_string(),
                            numbers.join(","),
                        ]
                    })
                    .collect();
                table("deadline\tcount\tsectors", rows)
            }
        }
    }
}

fn deals_cell(v: &SectorView) -> String {
    if v.deals.is_empty() {
        "-".into()
    } else {
        v.deals
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `util sealer sectors list`.
pub async fn sectors_list(api: &Api, miner: Option<u64>, json: bool) -> anyhow::Result<()> {
    let path = match miner {
        Some(m) => format!("/sectors?miner={m}"),
        None => "/sectors".into(),
    };
    let r = api.call(Method::GET, &path, None).await?;
    if json {
        return print_json(&r);
    }
    let list: Vec<SectorView> = decode(&path, r)?;
    let rows = list
        .iter()
        .map(|v| {
            let r = &v.row;
            vec![
                format!("s-t0{}-{}", r.miner_id, r.sector_number),
                format!("{:?}", v.kind),
                r.state.clone(),
                opt(&r.worker_name),
                opt(&r.deadline_idx),
                deals_cell(v),
                opt(&r.snap_state),
            ]
        })
        .collect();
    table("Sector\tKind\tState\tWorker\tDeadline\tDeals\tSnapUp", rows)
}

/// `util sealer sectors state`.
pub async fn sector_state(api: &Api, miner: u64, number: u64, json: bool) -> anyhow::Result<()> {
    let path = format!("/sectors/{miner}/{number}");
    let r = api.call(Method::GET, &path, None).await?;
    if json {
        return print_json(&r);
    }
    let st: SectorState = decode(&path, r)?;
    let (v, r) = (&st.sector, &st.sector.row);
    let lines = [
        ("Sector", format!("s-t0{}-{}", r.miner_id, r.sector_number)),
        ("Kind", format!("{:?}", v.kind)),
        ("State", r.state.clone()),
        ("Worker", opt(&r.worker_name)),
        ("CommR", opt(&r.comm_r)),
        ("CommD", opt(&r.comm_d)),
        ("Store", opt(&r.persist_store)),
        ("Proof", opt(&r.proof_state)),
        ("Deadline", opt(&r.deadline_idx)),
        ("Partition", opt(&r.partition_idx)),
        ("SnapUp", opt(&r.snap_state)),
        ("UpdateCommR", opt(&r.update_comm_r)),
        ("UpdateCommD", opt(&r.update_comm_d)),
        ("UpdateStore", opt(&r.update_store)),
        ("AbortReason", opt(&r.abort_reason)),
    ];
    let rows = lines
        .into_iter()
        .map(|(k, v)| vec![format!("{k}:"), v])
        .collect();
    table("", rows)?;
    if st.deal_rows.is_empty() {
        println!("no deals");
        return Ok(());
    }
    println!();
    let rows = st
        .deal_rows
        .iter()
        .map(|d| {
            vec![
                d.deal_id.to_string(),
                d.piece_cid.clone(),
                d.piece_size.to_string(),
                opt(&d.piece_offset),
                d.payload_size.to_string(),
                d.state.clone(),
            ]
        })
        .collect();
    table("Deal\tPiece\tSize\tOffset\tPayload\tState", rows)
}
