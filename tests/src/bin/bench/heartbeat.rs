//! `bench heartbeat`: ping ingest through the manager beside the raw batched upsert.

use std::time::Instant;

use damocles_tests::Manager;
use serde_json::json;

use super::{call_as, managers, percentiles, ping, report_cost, side_by_side, tokens};

pub(super) fn heartbeat(workers: usize, threads: usize, base_url: &str) {
    use diesel::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let [(with_auth, _), (without, db)] = managers(dir.path(), base_url, "bench_hb", "");
    let names: Vec<String> = (0..workers).map(|w| format!("w{w}")).collect();
    let toks = tokens(&with_auth, &names);

    // Through a manager: every worker pings once per round, 64 at a time; the two managers
    // take turns in the order A B B A A B B A, so drift on the machine touches both alike.
    let (rounds, passes, concurrency) = (3, 8, 64);
    let pings = |m: &Manager, toks: Option<&Vec<String>>, pass: usize| {
        let rpc = m.url("/rpc/v0");
        let lat = std::sync::Mutex::new(Vec::new());
        let started = Instant::now();
        std::thread::scope(|s| {
            for c in 0..concurrency {
                let (rpc, lat, names) = (&rpc, &lat, &names);
                s.spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    for round in 0..rounds {
                        for w in (c..workers).step_by(concurrency) {
                            let t = Instant::now();
                            let token = toks.map(|t| t[w].as_str());
                            let ping = ping(&names[w], threads, pass * rounds + round);
                            let r = call_as(&client, rpc, token, "Venus.WorkerPing", json!([ping]));
                            assert!(r.is_null());
                            lat.lock().unwrap().push(t.elapsed());
                        }
                    }
                });
            }
        });
        (
            workers * rounds,
            started.elapsed(),
            lat.into_inner().unwrap(),
        )
    };
    let names_of = [
        "manager WorkerPing, each worker with its token ([auth] workers = required)",
        "manager WorkerPing, no tokens ([auth] workers = optional)",
    ];
    let (mut tallies, ratios) = side_by_side(names_of, passes, |which, pass| {
        if which == 0 {
            pings(&with_auth, Some(&toks), pass)
        } else {
            pings(&without, None, pass)
        }
    });
    for t in &mut tallies {
        println!(
            "{} ({workers} workers x {threads} threads, {concurrency} concurrent): {} pings in {:?} = {:.0} pings/s, {:.0} thread rows/s; latency {}",
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
