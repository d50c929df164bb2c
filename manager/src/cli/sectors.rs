//! `damocles-manager util sealer sectors ...`: one sector at a time, through the REST API.

use reqwest::Method;

use super::sched::{pledge, SectorsSub};
use super::{decode, print_json, Api};
use crate::rest::sectors::{Changed, Imported};

/// A miner as damocles' commands take it: `t01000`, `f01000` or `1000`.
pub fn actor(s: &str) -> Result<u64, String> {
    let digits = s
        .strip_prefix("t0")
        .or_else(|| s.strip_prefix("f0"))
        .unwrap_or(s);
    digits.parse().map_err(|_| {
        format!("{s:?} is not a miner actor id: give t0<id>, f0<id> or the id (t01000, 1000)")
    })
}

fn changed(what: &str, v: serde_json::Value) -> anyhow::Result<()> {
    let c: Changed = decode(what, v)?;
    let dry = if c.dry_run { " (dry run)" } else { "" };
    println!("{}: {}{dry}", c.sector, c.action);
    if let Some(t) = &c.thread {
        let stopped = if c.thread_stopped {
            "stopped and freed"
        } else {
            "not stopped"
        };
        if !c.dry_run {
            println!("thread {t}: {stopped}");
        }
    }
    if let Some(n) = &c.note {
        println!("{n}");
    }
    Ok(())
}

pub async fn run(cmd: SectorsSub, api: &Api) -> anyhow::Result<()> {
    match cmd {
        SectorsSub::Pledge {
            count,
            fill,
            once_per_worker,
        } => pledge(api, count, fill, once_per_worker).await,
        SectorsSub::List { miner, json } => super::market::sectors_list(api, miner, json).await,
        SectorsSub::State {
            miner,
            number,
            json,
        } => super::market::sector_state(api, miner, number, json).await,
        SectorsSub::Abort {
            miner,
            number,
            reason,
            really_do_it,
        } => {
            let mut path = format!("/sectors/{miner}/{number}/abort?really_do_it={really_do_it}");
            if let Some(r) = reason {
                path += &format!("&reason={}", urlencoding(&r));
            }
            changed("abort", api.call(Method::POST, &path, None).await?)
        }
        SectorsSub::Restore {
            miner,
            number,
            really_do_it,
        } => {
            let path = format!("/sectors/{miner}/{number}/restore?really_do_it={really_do_it}");
            changed("restore", api.call(Method::POST, &path, None).await?)
        }
        SectorsSub::Rebuild {
            miner,
            number,
            really_do_it,
        } => {
            let path = format!("/sectors/{miner}/{number}/rebuild?really_do_it={really_do_it}");
            changed("rebuild", api.call(Method::POST, &path, None).await?)
        }
        SectorsSub::Unseal {
            piece_cid,
            actor,
            sector,
            output,
            dest,
            no_wait,
            requeue,
            timeout,
        } => {
            let ask = super::unseal::Ask {
                piece_cid,
                sector: actor.zip(sector),
                output,
                dest,
                no_wait,
                requeue,
                timeout,
            };
            super::unseal::unseal(api, ask).await
        }
        SectorsSub::Unseals { json } => super::unseal::list(api, json).await,
        SectorsSub::ExportJson { miner, number } => {
            let v = api
                .call(
                    Method::GET,
                    &format!("/sectors/{miner}/{number}/export"),
                    None,
                )
                .await?;
            // One line, as damocles prints it: `> sector.json` gives a file import-json reads.
            println!("{}", serde_json::to_string(&v)?);
            Ok(())
        }
        SectorsSub::ImportJson {
            file,
            r#override,
            store,
            really_do_it,
        } => {
            let text = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("read {}: {e}", file.display()))?;
            let body: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", file.display()))?;
            let mut path = format!(
                "/sectors/import?really_do_it={really_do_it}&override={}",
                r#override
            );
            if let Some(s) = store {
                path += &format!("&store={}", urlencoding(&s));
            }
            let r = api.call(Method::POST, &path, Some(body)).await?;
            let imp: Imported = decode("import", r.clone())?;
            if imp.dry_run {
                print_json(&r["import"])?;
                println!(
                    "{}: would be imported, proven in deadline {} partition {} (dry run; pass --really-do-it)",
                    imp.sector, imp.deadline, imp.partition
                );
            } else {
                println!(
                    "{}: imported, proven in deadline {} partition {}",
                    imp.sector, imp.deadline, imp.partition
                );
            }
            Ok(())
        }
    }
}

/// Percent-encodes a query value.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn miners_are_taken_as_damocles_takes_them() {
        assert_eq!(super::actor("t01000"), Ok(1000));
        assert_eq!(super::actor("f01000"), Ok(1000));
        assert_eq!(super::actor("1000"), Ok(1000));
        let e = super::actor("t1abc").unwrap_err();
        assert!(e.contains("not a miner actor id"), "{e}");
        assert_eq!(super::urlencoding("a b&c"), "a%20b%26c");
    }
}
