//! `damocles-manager util sealer sectors unseal` and `unseals`: a deal's piece back from its
//! sealed sector, through the REST API.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::{decode, print_json, table, Api};
use crate::rest::unseal::UnsealView;

/// How often the task is looked at while waiting.
const POLL: Duration = Duration::from_secs(2);

/// What `unseal` was asked.
pub struct Ask {
    pub piece_cid: String,
    pub sector: Option<(u64, u64)>,
    pub output: Option<PathBuf>,
    pub dest: Option<String>,
    pub no_wait: bool,
    pub requeue: bool,
    pub timeout: Duration,
}

/// Where the bytes are written: `output` (inside it when it is a directory), or
/// `./<piece_cid>`.
fn output_file(output: Option<&Path>, cid: &str) -> PathBuf {
    match output {
        Some(p) if p.is_dir() => p.join(cid),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(cid),
    }
}

pub async fn unseal(api: &Api, ask: Ask) -> anyhow::Result<()> {
    let (miner, number) = ask.sector.unzip();
    let body = json!({
        "piece_cid": ask.piece_cid,
        "miner": miner,
        "number": number,
        "dest": ask.dest,
        "requeue": ask.requeue,
    });
    let r = api
        .call(Method::POST, "/sectors/unseal", Some(body))
        .await?;
    let v: UnsealView = decode("unseal", r)?;
    println!(
        "unseal of piece {} in {}: {} (offset {}, size {}, payload {} bytes)",
        v.piece_cid,
        v.sector,
        v.result.as_deref().unwrap_or("queued"),
        v.offset,
        v.size,
        v.payload_size
    );
    if ask.no_wait {
        println!("`util sealer sectors unseals` shows how it goes");
        return Ok(());
    }
    let path = format!("/unseal/{}/{}/{}", v.miner, v.number, v.piece_cid);
    let started = Instant::now();
    let mut last = String::new();
    let done = loop {
        let now: UnsealView = decode("unseal", api.call(Method::GET, &path, None).await?)?;
        if now.state != last {
            let by = now
                .worker
                .as_deref()
                .map(|w| format!(" by {w}"))
                .unwrap_or_default();
            println!("{}{by}", now.state);
            last = now.state.clone();
        }
        match now.state.as_str() {
            "finished" => break now,
            "failed" => anyhow::bail!(
                "the unseal of {} in {} failed: {}",
                now.piece_cid,
                now.sector,
                now.error.as_deref().unwrap_or("-")
            ),
            _ if started.elapsed() >= ask.timeout => anyhow::bail!(
                "the unseal of {} in {} is still {} after {}; it goes on: `util sealer sectors \
                 unseals` shows it, and asking again waits again",
                now.piece_cid,
                now.sector,
                now.state,
                humantime::format_duration(ask.timeout)
            ),
            _ => tokio::time::sleep(POLL).await,
        }
    };
    if ask.dest.is_some() {
        println!("delivered to {}", done.dest.join(", "));
        return Ok(());
    }
    let bytes = api.get_bytes(&format!("{path}/piece")).await?;
    let file = output_file(ask.output.as_deref(), &done.piece_cid);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
    }
    std::fs::write(&file, &bytes).map_err(|e| anyhow::anyhow!("write {}: {e}", file.display()))?;
    println!("wrote {} bytes to {}", bytes.len(), file.display());
    Ok(())
}

/// `util sealer sectors unseals`.
pub async fn list(api: &Api, json: bool) -> anyhow::Result<()> {
    let r = api.call(Method::GET, "/unseal", None).await?;
    if json {
        return print_json(&r);
    }
    let list: Vec<UnsealView> = decode("/unseal", r)?;
    let rows = list
        .into_iter()
        .map(|v| {
            vec![
                v.sector,
                v.piece_cid,
                v.state,
                v.worker.unwrap_or_else(|| "-".into()),
                v.dest.join(","),
                super::iso(&v.requested_at),
                v.error.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table("Sector\tPiece\tState\tWorker\tDest\tRequested\tError", rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_is_the_file_named_or_the_piece_in_the_directory_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(output_file(None, "baga"), PathBuf::from("baga"));
        assert_eq!(
            output_file(Some(dir.path()), "baga"),
            dir.path().join("baga")
        );
        let f = dir.path().join("out.bin");
        assert_eq!(output_file(Some(&f), "baga"), f);
    }
}
