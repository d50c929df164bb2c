//! `bench claims`: WindowPoSt claims through the manager beside the raw `SKIP LOCKED` loop.

use std::time::Instant;

use damocles_tests::{insert_fake_jobs, mysql_exec, Manager};
use serde_json::json;

use super::{call_as, managers, percentiles, report_cost, side_by_side, tokens};

pub(super) const RESET_JOBS: &str = "UPDATE wdpost_jobs SET state = 'ReadyToRun', try_num = 0, worker_name = NULL, started_at = NULL, heartbeat_at = NULL;";

/// Claims of `jobs` fake jobs by `claimers` concurrent claimers until none is left: through a
/// manager with tokens and one without, both claiming by `mode` (`[db] claim`) (`Venus.WdPoStAllocateJobs`, one job per call, the two
/// taking turns four times), then the raw `SELECT ... FOR UPDATE SKIP LOCKED` + `UPDATE` transaction
/// on the same table, one connection per claimer.
pub(super) fn claims(jobs: usize, claimers: usize, base_url: &str, mode: &str) {
    use diesel::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    // The claimers never heartbeat: keep the keeper from re-queueing their jobs meanwhile.
    let quiet = format!("[db]\nclaim = \"{mode}\"\n[task]\nheartbeat_timeout = \"1h\"\n");
    let [(with_auth, db_a), (without, db)] = managers(dir.path(), base_url, "bench_cl", &quiet);
    insert_fake_jobs(&db_a, jobs);
    insert_fake_jobs(&db, jobs);
    let names: Vec<String> = (0..claimers).map(|c| format!("claimer-{c}")).collect();
    let toks = tokens(&with_auth, &names);

    let run = |claim: &(dyn Fn(usize) -> bool + Sync)| {
        let lat = std::sync::Mutex::new(Vec::new());
        let started = Instant::now();
        std::thread::scope(|s| {
            for c in 0..claimers {
                let lat = &lat;
                s.spawn(move || loop {
                    let t = Instant::now();
                    if !claim(c) {
                        return;
                    }
                    lat.lock().unwrap().push(t.elapsed());
                });
            }
        });
        (started.elapsed(), lat.into_inner().unwrap())
    };

    let clients: Vec<_> = (0..claimers)
        .map(|_| reqwest::blocking::Client::new())
        .collect();
    let through = |m: &Manager, toks: Option<&Vec<String>>| {
        let rpc = m.url("/rpc/v0");
        run(&|c| {
            let token = toks.map(|t| t[c].as_str());
            let r = call_as(
                &clients[c],
                &rpc,
                token,
                "Venus.WdPoStAllocateJobs",
                json!([{}, 1, names[c]]),
            );
            !r.as_array().unwrap().is_empty()
        })
    };
    let names_of = [
        format!("manager WdPoStAllocateJobs ({mode}), each claimer with its token ([auth] workers = required)"),
        format!("manager WdPoStAllocateJobs ({mode}), no tokens ([auth] workers = optional)"),
    ];
    let (mut tallies, ratios) =
        side_by_side(names_of.each_ref().map(String::as_str), 4, |which, _| {
            let (t, l) = if which == 0 {
                mysql_exec(&db_a, RESET_JOBS);
                through(&with_auth, Some(&toks))
            } else {
                mysql_exec(&db, RESET_JOBS);
                through(&without, None)
            };
            assert_eq!(l.len(), jobs);
            (jobs, t, l)
        });
    for t in &mut tallies {
        println!(
            "{} ({claimers} claimers): {} claims in {:?} = {:.0} claims/s; latency {}",
            t.name,
            t.calls,
            t.time,
            t.rate(),
            percentiles(std::mem::take(&mut t.lat))
        );
    }
    report_cost("claim", &tallies, ratios);

    mysql_exec(&db, RESET_JOBS);
    let conns: Vec<_> = (0..claimers)
        .map(|_| std::sync::Mutex::new(diesel::MysqlConnection::establish(&db).unwrap()))
        .collect();
    let (total, lat) = run(&|c| {
        raw_claim(&mut conns[c].lock().unwrap(), c)
            .unwrap()
            .is_some()
    });
    assert_eq!(lat.len(), jobs);
    println!(
        "baseline raw SKIP LOCKED claim ({claimers} connections): {jobs} claims in {total:?} = {:.0} claims/s; latency {}",
        jobs as f64 / total.as_secs_f64(),
        percentiles(lat)
    );
}

/// The baseline's claim: one job for claimer `c` in a `SELECT … FOR UPDATE SKIP LOCKED` and
/// `UPDATE` transaction of its own; None when no job is left.
pub(super) fn raw_claim(
    conn: &mut diesel::MysqlConnection,
    c: usize,
) -> diesel::QueryResult<Option<String>> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    conn.transaction(|conn| {
        let ids: Vec<Id> = diesel::sql_query(
            "SELECT id FROM wdpost_jobs WHERE state = 'ReadyToRun' ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .load(conn)?;
        let Some(id) = ids.into_iter().next() else {
            return Ok(None);
        };
        diesel::sql_query(
            "UPDATE wdpost_jobs SET state = 'Running', try_num = try_num + 1, worker_name = ?, started_at = NOW(), heartbeat_at = NOW(), updated_at = NOW() WHERE id = ?",
        )
        .bind::<diesel::sql_types::Text, _>(format!("raw-{c}"))
        .bind::<diesel::sql_types::Text, _>(&id.id)
        .execute(conn)?;
        Ok(Some(id.id))
    })
}
