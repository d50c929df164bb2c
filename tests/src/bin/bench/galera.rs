//! `bench galera`: WindowPoSt claims on a three-node Galera cluster, a manager per node,
//! beside a bare `SKIP LOCKED` loop spread over the same nodes (which must retry the
//! certification conflicts itself), and beside all claimers on one manager.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use damocles_tests::{galera_cluster, insert_fake_jobs, mysql_exec, Manager, OwnMariaDb};
use serde_json::json;

use super::claims::{raw_claim, RESET_JOBS};
use super::{call_as, percentiles};

pub(super) fn galera(jobs: usize, claimers: usize, nodes: usize) {
    use diesel::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let cluster = galera_cluster(dir.path(), nodes).expect("Galera (galera-4) is not installed");
    // The claimers never heartbeat: keep the keeper from re-queueing their jobs meanwhile.
    let cfg = "[task]\nheartbeat_timeout = \"1h\"\n[auth]\nworkers = \"optional\"\n";
    let urls: Vec<String> = cluster.iter().map(OwnMariaDb::url).collect();
    let managers = Manager::one_on_each(dir.path(), &urls, cfg);
    let url = cluster[0].url();
    insert_fake_jobs(&url, jobs);

    // Until no claimer gets a job; the claimed ids, to count duplicates.
    let run = |claim: &(dyn Fn(usize) -> Option<String> + Sync)| {
        let (lat, ids) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
        let started = Instant::now();
        std::thread::scope(|s| {
            for c in 0..claimers {
                let (lat, ids) = (&lat, &ids);
                s.spawn(move || loop {
                    let t = Instant::now();
                    let Some(id) = claim(c) else { return };
                    lat.lock().unwrap().push(t.elapsed());
                    ids.lock().unwrap().push(id);
                });
            }
        });
        let ids = ids.into_inner().unwrap();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        (
            started.elapsed(),
            lat.into_inner().unwrap(),
            ids.len() - unique.len(),
        )
    };
    let report = |what: &str,
                  (t, lat, dups): (Duration, Vec<Duration>, usize),
                  conflicts: usize| {
        assert_eq!(lat.len(), jobs, "{what}: not every job claimed");
        println!(
            "{what} ({claimers} claimers): {jobs} claims in {t:?} = {:.0} claims/s; {dups} duplicates; {conflicts} conflicts retried; latency {}",
            jobs as f64 / t.as_secs_f64(),
            percentiles(lat)
        );
    };
    let conflicts = || -> usize {
        managers
            .iter()
            .map(|m| m.proc.log_text().matches("claim conflicted").count())
            .sum()
    };

    let clients: Vec<_> = (0..claimers)
        .map(|_| reqwest::blocking::Client::new())
        .collect();
    let through = |spread: usize| {
        run(&|c| {
            let m = &managers[c % spread];
            let r = call_as(
                &clients[c],
                &m.url("/rpc/v0"),
                None,
                "Venus.WdPoStAllocateJobs",
                json!([{}, 1, format!("claimer-{c}")]),
            );
            r.as_array()
                .unwrap()
                .first()
                .map(|j| j["Id"].as_str().unwrap().to_string())
        })
    };
    let before = conflicts();
    report(
        &format!("{nodes} managers, one per node"),
        through(nodes),
        conflicts() - before,
    );
    mysql_exec(&url, RESET_JOBS);
    // Let the reset reach every node before the next pass.
    std::thread::sleep(Duration::from_secs(1));
    let before = conflicts();
    report("1 manager on node 0", through(1), conflicts() - before);
    mysql_exec(&url, RESET_JOBS);
    std::thread::sleep(Duration::from_secs(1));

    let conns: Vec<_> = (0..claimers)
        .map(|c| Mutex::new(diesel::MysqlConnection::establish(&cluster[c % nodes].url()).unwrap()))
        .collect();
    let retried = AtomicUsize::new(0);
    let raw = run(&|c| {
        let mut conn = conns[c].lock().unwrap();
        loop {
            let r = raw_claim(&mut conn, c);
            match r {
                Ok(id) => return id,
                Err(e) if e.to_string().contains("Deadlock") => {
                    retried.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => panic!("raw claim: {e}"),
            }
        }
    });
    report(
        &format!("baseline bare SKIP LOCKED loop over {nodes} nodes"),
        raw,
        retried.load(Ordering::Relaxed),
    );
}
