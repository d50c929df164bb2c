//! `bench heartbeat`: ping ingest through the manager beside the raw batched upsert.
//!
//! `changed` is the percentage of workers whose threads differ from their last ping in each
//! round: 100 (every ping's rows are new: the writer's worst case) or, as a farm's pings are,
//! a few (a sealing step takes minutes to hours; a ping comes every 30 s).

use std::time::Instant;

use damocles_tests::Manager;
use serde_json::Value;

use super::{managers, percentiles, report_cost, side_by_side, tokens};

pub(super) fn heartbeat(workers: usize, threads: usize, base_url: &str, changed: usize) {
    use diesel::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let [(with_auth, _), (without, db)] = managers(dir.path(), base_url, "bench_hb", "");
    let names: Vec<String> = (0..workers).map(|w| format!("w{w}")).collect();
    let toks = std::sync::Arc::new(tokens(&with_auth, &names));
    let started = Instant::now();

    // Through a manager: every worker pings once per round, 64 at a time; the two managers
    // take turns in the order A B B A A B B A, so drift on the machine touches both alike.
    // Round 0 is a warm-up, untimed: every worker's first ping writes all its rows.
    // One thread drives every ping (as in `bench scale`): the generator takes as little of the
    // two cores as it can, so that the manager and the database have the rest, as the raw
    // baseline's database has them.
    let (rounds, passes, concurrency) = (3, 8, 64);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = super::pinger();
    let pings =
        |m: &Manager, toks: Option<&std::sync::Arc<Vec<String>>>, first: usize, rounds: usize| {
            let rpc = m.url("/rpc/v0");
            let begun = Instant::now();
            let lat = rt.block_on(async {
                let tasks: Vec<_> = (0..concurrency)
                    .map(|c| {
                        let (client, rpc) = (client.clone(), rpc.clone());
                        let toks = toks.cloned();
                        tokio::spawn(async move {
                            let mut lat = Vec::new();
                            for round in first..first + rounds {
                                for w in (c..workers).step_by(concurrency) {
                                    let t = Instant::now();
                                    let body = ping_body(w, threads, changed, round, started);
                                    let mut req = client
                                        .post(&rpc)
                                        .header("Content-Type", "application/json")
                                        .body(body);
                                    if let Some(toks) = &toks {
                                        req = req.bearer_auth(&toks[w]);
                                    }
                                    let resp: Value =
                                        req.send().await.unwrap().json().await.unwrap();
                                    assert!(
                                        resp["error"].is_null() && resp["result"].is_null(),
                                        "{resp}"
                                    );
                                    lat.push(t.elapsed());
                                }
                            }
                            lat
                        })
                    })
                    .collect();
                let mut lat = Vec::with_capacity(workers * rounds);
                for t in tasks {
                    lat.extend(t.await.unwrap());
                }
                lat
            });
            (workers * rounds, begun.elapsed(), lat)
        };
    pings(&with_auth, Some(&toks), 0, 1);
    pings(&without, None, 0, 1);
    let names_of = [
        "manager WorkerPing, each worker with its token ([auth] workers = required)",
        "manager WorkerPing, no tokens ([auth] workers = optional)",
    ];
    let (mut tallies, ratios) = side_by_side(names_of, passes, |which, pass| {
        if which == 0 {
            pings(&with_auth, Some(&toks), 1 + pass * rounds, rounds)
        } else {
            pings(&without, None, 1 + pass * rounds, rounds)
        }
    });
    for t in &mut tallies {
        println!(
            "{} ({workers} workers x {threads} threads, {changed}% of workers changed per round, {concurrency} concurrent): {} pings in {:?} = {:.0} pings/s, {:.0} thread rows/s; latency {}",
            t.name,
            t.calls,
            t.time,
            t.rate(),
            t.rate() * threads as f64,
            percentiles(std::mem::take(&mut t.lat))
        );
    }
    report_cost("ping", &tallies, ratios);

    // Baseline: the same rows straight into the same tables, batched 512 workers per
    // transaction (the writer's largest batch), one connection.
    let n = workers * rounds;
    let mut conn = diesel::MysqlConnection::establish(&db).unwrap();
    let now = "2026-01-01 00:00:00";
    let mut batch_lat = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        for chunk in (0..workers).collect::<Vec<_>>().chunks(512) {
            let t = Instant::now();
            let wvals: Vec<String> = chunk
                .iter()
                .map(|w| format!("('w{w}','10.0.0.1:17890','bench',{threads},0,0,{threads},0,0,'{now}','{now}')"))
                .collect();
            let tvals: Vec<String> = chunk
                .iter()
                .flat_map(|w| {
                    (0..threads).map(move |i| {
                        format!("('w{w}',{i},'/data/w{w}/store{i}','sealer','s-t010000-{}','PC1Done','PC2','Running','{now}',NULL,'{now}')", round * 100 + i)
                    })
                })
                .collect();
            conn.transaction::<_, diesel::result::Error, _>(|c| {
                diesel::sql_query(format!(
                    "INSERT INTO workers (name, dest, version, threads, empty_threads, paused_threads, running_threads, waiting_threads, error_threads, first_seen_at, last_ping_at) VALUES {} ON DUPLICATE KEY UPDATE dest=VALUES(dest), version=VALUES(version), threads=VALUES(threads), running_threads=VALUES(running_threads), last_ping_at=VALUES(last_ping_at)",
                    wvals.join(",")
                ))
                .execute(c)?;
                diesel::sql_query(format!(
                    "INSERT INTO worker_threads (worker_name, thread_index, location, plan, job_id, job_state, job_stage, thread_state, state_since, last_error, updated_at) VALUES {} ON DUPLICATE KEY UPDATE job_id=VALUES(job_id), job_state=VALUES(job_state), thread_state=VALUES(thread_state), updated_at=VALUES(updated_at)",
                    tvals.join(",")
                ))
                .execute(c)?;
                Ok(())
            })
            .unwrap();
            batch_lat.push(t.elapsed());
        }
    }
    let total = started.elapsed();
    println!(
        "baseline raw batched upsert (512 workers/transaction, 1 connection): {n} workers in {total:?} = {:.0} workers/s, {:.0} thread rows/s; per batch {}",
        n as f64 / total.as_secs_f64(),
        (n * threads) as f64 / total.as_secs_f64(),
        percentiles(batch_lat)
    );
}

/// Whether worker `w`'s threads changed in round `r` (`changed`% of the workers each round,
/// a different set each round).
fn changes(w: usize, r: usize, changed: usize) -> bool {
    r == 0 || (w + r * 37) % 100 < changed
}

/// The JSON-RPC body of worker `w`'s ping in round `r`, written straight into a string (building
/// a `serde_json::Value` per ping cost the load generator a fifth of the machine's CPU).
/// A changed worker's thread 0 has a new job; the other threads keep theirs, and their
/// `elapsed` grows with the clock, so their `state_since` stays put, as a real thread's does.
pub(super) fn ping_body(
    w: usize,
    threads: usize,
    changed: usize,
    r: usize,
    started: Instant,
) -> String {
    let last_change = (0..=r).rev().find(|&r| changes(w, r, changed)).unwrap_or(0);
    let now = started.elapsed().as_secs() as usize;
    let mut out = String::with_capacity(300 + threads * 260);
    out += r#"{"jsonrpc":"2.0","id":1,"method":"Venus.WorkerPing","params":[{"Name":"w"#;
    out += &format!(
        r#"{w}","Dest":"10.0.0.1:17890","Version":"bench","Summary":{{"Threads":{threads},"Empty":0,"Paused":0,"Running":{threads},"Waiting":0,"Errors":0}},"Threads":["#
    );
    for i in 0..threads {
        let (job, elapsed) = if i == 0 {
            (format!("s-{w}-0-{last_change}"), 5)
        } else {
            (format!("s-{w}-{i}"), now + (w * 13 + i * 7) % 3600)
        };
        if i > 0 {
            out.push(',');
        }
        out += &format!(
            r#"{{"location":"/data/w{w}/store{i}","plan":"sealer","job_id":"{job}","index":{i},"thread_state":{{"state":"Running","elapsed":{elapsed},"proc":"ext(pid: 42)"}},"job_state":"PC1Done","job_stage":"PC2","last_error":null}}"#
        );
    }
    out += "]}]}";
    out
}
