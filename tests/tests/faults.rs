//! Faults, each with its figures in the output. Processor children that misbehave (print bytes
//! that are not text, never answer, crash, die mid-task) fail their task with a readable error
//! within its timeout, are started again, and the sector then seals. A worker killed with -9 in
//! the middle of PC1, PC2, the copy to its store and C2 resumes its sector after a restart, and
//! the manager verifies the proof; the WindowPoSt that follows reads the copied files. A manager killed with -9 while a WindowPoSt job runs comes back with the job still
//! running, gives it its grace, and the job succeeds once, on its first try.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use damocles_tests::*;
use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::Value;

fn thread0(w: &Worker) -> Value {
    w.list()
        .into_iter()
        .find(|t| t["index"] == 0)
        .unwrap_or(Value::Null)
}

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn misbehaving_processors_fail_their_task_readably_and_the_sector_then_seals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start(d, None);
    let port = free_port();
    let config = worker_config(d, "w", &m, port, 1, "");
    append_config(
        &config,
        &format!(
            "\n[[processors.pc1]]\nbin = \"python3\"\nargs = [\"{}\", \"{}\", \"{}\", \"processor\", \"pc1\"]\ntimeout = \"5s\"\n",
            fixture("faulty_processor.py"),
            d.join("pc1-tasks").display(),
            bin("damocles-worker").display()
        ),
    );
    let w = Worker::start_config(d, "w", config, port);

    let faults = [
        (
            "bytes that are not text",
            "it printed a line that is not UTF-8",
        ),
        (
            "no answer",
            "task 2 did not answer within 5s (processors.pc1[0].timeout)",
        ),
        ("a crash (SIGABRT)", "child process exited: pc1"),
        ("an exit mid-task", "child process exited: pc1"),
    ];
    for (i, (fault, want)) in faults.iter().enumerate() {
        let since = Instant::now();
        let err = wait_for(Duration::from_secs(120), fault, || {
            let t = thread0(&w);
            let paused = t["thread_state"]["state"] == "Paused";
            paused.then(|| t["last_error"].as_str().unwrap_or("").to_string())
        });
        println!(
            "fault {}: {fault}: the thread showed {err:?} {:.1?} after the task was {}",
            i + 1,
            since.elapsed(),
            if i == 0 { "reached" } else { "retried" }
        );
        assert!(err.starts_with("permanent: pc1: "), "{err}");
        assert!(err.contains(want), "{fault}: {err}");
        if i == 1 {
            assert!(
                since.elapsed() < Duration::from_secs(20),
                "{:?}",
                since.elapsed()
            );
        }
        assert_eq!(thread0(&w)["job_state"], "TicketAssigned");
        assert!(w.cli(&["resume", "--index", "0"]).status.success());
    }
    let since = Instant::now();
    wait_for(Duration::from_secs(900), "the sector to finish", || {
        let t = thread0(&w);
        assert_ne!(t["thread_state"]["state"], "Paused", "{t}");
        m.sectors()
            .iter()
            .any(|s| s["state"] == "Finished" && s["proof_state"] == "Landed")
            .then_some(())
    });
    println!(
        "after the four faults the sector sealed and its proof was verified in {:.1?}",
        since.elapsed()
    );
    // Each fault cost the child: it was started again every time.
    let starts = w
        .proc
        .log_text()
        .lines()
        .filter(|l| l.contains("processor started") && l.contains("pc1#0"))
        .count();
    assert!(starts >= 5, "pc1 started {starts} times");
}

/// Kills the worker the moment its copy of `sector` to the store `remote` begins (a temporary
/// `.copying` name appears), starts it again, and checks that the sector was not reported
/// persisted: it is still at PCLanded and the manager knows no store for it. The copy then runs
/// again; the WindowPoSt at the end of the test reads what it wrote.
fn kill_while_persisting(
    w: &mut Worker,
    d: &Path,
    config: &Path,
    port: u16,
    m: &Manager,
    sector: &str,
) -> Option<Worker> {
    let store = d.join("remote");
    let copying = |sub: &str| {
        std::fs::read_dir(store.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".copying"))
    };
    let watching = Instant::now();
    let caught = loop {
        if copying("sealed") || copying("cache") {
            w.proc.signal(Signal::SIGKILL);
            break true;
        }
        if store.join("cache").join(sector).exists() {
            break false;
        }
        assert!(
            watching.elapsed() < Duration::from_secs(600),
            "no persist seen"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    if !caught {
        println!("the copy of {sector} to the store ended before the watcher saw it: no kill");
        return None;
    }
    assert!(w.proc.wait_exit(Duration::from_secs(10)).is_some());
    let row = m
        .sectors()
        .into_iter()
        .find(|s| format!("s-t0{}-{}", s["miner_id"], s["sector_number"]) == sector)
        .unwrap();
    assert!(row["persist_store"].is_null(), "reported persisted: {row}");
    let again = Worker::start_config(d, "w", config.to_path_buf(), port);
    // The copy is quick to redo: the record it started from is in the log.
    let resumed = format!("sector=Some(\"{sector}\") state=PCLanded");
    let log = again.proc.log_text();
    assert!(
        log.lines().any(
            |l| l.contains("resuming the sector held before the restart") && l.contains(&resumed)
        ),
        "after a kill in the copy:\n{log}"
    );
    println!(
        "worker killed -9 while copying {sector} to the store: not reported persisted, and back at PCLanded after the restart"
    );
    Some(again)
}

#[test]
fn killed_worker_and_manager_lose_no_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manager_port = free_port();
    let manager_cfg = "[mock]\ndeadline_interval = \"20s\"\ndeadlines = 1\n\n[task]\nheartbeat_timeout = \"10s\"\n";
    let mut m = Manager::start_with(d, None, manager_port, manager_cfg);
    let port = free_port();
    let config = worker_config(d, "w", &m, port, 1, "");
    append_config(
        &config,
        &["pc1", "pc2", "c2", "window_post"]
            .iter()
            .map(|s| slow_processor(s, 4, true))
            .collect::<String>(),
    );
    append_config(&config, "\n[[sealing_thread]]\nplan = \"wdpost\"\n");
    let mut w = Worker::start_config(d, "w", config.clone(), port);

    // Killed in the middle of each heavy stage (the stage's files are written, its answer is
    // not in), then started again.
    for (stage, before) in [
        ("pc1", "TicketAssigned"),
        ("pc2", "PC1Done"),
        ("c2", "C1Done"),
    ] {
        let sector = wait_for(Duration::from_secs(600), stage, || {
            let t = thread0(&w);
            (t["job_state"] == before && t["thread_state"]["state"] == "Running")
                .then(|| t["job_id"].as_str().unwrap_or("").to_string())
        });
        std::thread::sleep(Duration::from_secs(2));
        w.proc.signal(Signal::SIGKILL);
        assert!(w.proc.wait_exit(Duration::from_secs(10)).is_some());
        let since = Instant::now();
        w = Worker::start_config(d, "w", config.clone(), port);
        let t = thread0(&w);
        assert_eq!(
            (t["job_id"].as_str(), t["job_state"].as_str()),
            (Some(sector.as_str()), Some(before)),
            "after a kill in {stage}: {t}"
        );
        println!(
            "worker killed -9 in {stage} of {sector}: back with the sector at {before} {:.1?} after the restart",
            since.elapsed()
        );
        if stage == "pc2" {
            if let Some(again) = kill_while_persisting(&mut w, d, &config, port, &m, &sector) {
                w = again;
            }
        }
    }
    let sector = wait_for(Duration::from_secs(900), "the sector to be proven", || {
        m.sectors()
            .into_iter()
            .find(|s| s["state"] == "Finished" && s["proof_state"] == "Landed")
    });
    println!(
        "the sector finished and its proof was verified: {} {}",
        sector["sector_number"], sector["proof_state"]
    );
    assert!(w.cli(&["pause", "--index", "0"]).status.success());

    // The sector's WindowPoSt job runs (its answer held 4 s): the manager is killed -9 and
    // started again on the same database.
    let job = wait_for(Duration::from_secs(120), "a running WindowPoSt job", || {
        let (_, jobs) = m.rest(Method::GET, "/wdpost/jobs?all=true", None);
        jobs.as_array()?
            .iter()
            .find(|j| j["state"] == "Running")
            .cloned()
    });
    let id = job["id"].as_str().unwrap().to_string();
    m.proc.signal(Signal::SIGKILL);
    assert!(m.proc.wait_exit(Duration::from_secs(10)).is_some());
    let since = Instant::now();
    m = Manager::start_with(d, None, manager_port, manager_cfg);
    let find = |m: &Manager| {
        let (_, jobs) = m.rest(Method::GET, "/wdpost/jobs?all=true", None);
        jobs.as_array()
            .and_then(|j| j.iter().find(|j| j["id"] == id.as_str()).cloned())
            .unwrap_or(Value::Null)
    };
    let again = find(&m);
    assert!(
        again["state"] == "Running" || again["state"] == "Succeed",
        "after the restart: {again}"
    );
    let done = wait_for(Duration::from_secs(120), "the job to succeed", || {
        let j = find(&m);
        assert_ne!(j["state"], "Failed", "{j}");
        (j["state"] == "Succeed").then_some(j)
    });
    assert_eq!(
        done["try_num"], 1,
        "finished once, on its first try: {done}"
    );
    println!(
        "manager killed -9 while job {id} ran: it succeeded on try 1 {:.1?} after the restart",
        since.elapsed()
    );
}

/// What one side of the load saw.
#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    /// Refused as "try again" (database unavailable, busy).
    retryable: usize,
    /// Anything else: must stay empty.
    other: Vec<String>,
}

impl Tally {
    fn count(&mut self, r: &Result<Value, Value>) {
        match r {
            Ok(_) => self.ok += 1,
            Err(e) if e["code"] == -32003 => self.retryable += 1,
            Err(e) => self.other.push(e.to_string()),
        }
    }
}

#[test]
fn mariadb_restarted_under_load_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(mut db) = OwnMariaDb::start(&d.join("mariadb")) else {
        return;
    };
    // No claimer heartbeats here: the job keeper must not fail claimed jobs before the check,
    // however long the restart takes on a loaded machine.
    let keeper = "[task]\nheartbeat_timeout = \"10m\"\n";
    let m = Manager::start_with(d, Some(db.url()), free_port(), keeper);
    insert_fake_jobs(&db.url(), 3000);
    let pingers: Vec<(String, String)> = (0..40)
        .map(|i| {
            let name = format!("p{i}");
            (m.worker_token(&name), name)
        })
        .collect();
    let (claimer, sealer) = (m.worker_token("claimer"), m.worker_token("sealer"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = || !stop.load(std::sync::atomic::Ordering::Relaxed);

    let (pings, claims, sectors, downtime) = std::thread::scope(|s| {
        let pings = s.spawn(|| {
            let mut t = Tally::default();
            while running() {
                for (token, name) in &pingers {
                    let summary = serde_json::json!({"Threads": 1, "Empty": 1, "Paused": 0, "Errors": 0});
                    let ping = serde_json::json!([{"Name": name, "Dest": "127.0.0.1:9", "Summary": summary}]);
                    t.count(&m.rpc_with(Some(token), "Venus.WorkerPing", ping));
                }
            }
            t
        });
        let claims = s.spawn(|| {
            let (mut t, mut ids) = (Tally::default(), Vec::new());
            while running() {
                let r = m.rpc_with(
                    Some(&claimer),
                    "Venus.WdPoStAllocateJobs",
                    serde_json::json!([{}, 4, "claimer"]),
                );
                if let Ok(jobs) = &r {
                    for j in jobs.as_array().into_iter().flatten() {
                        ids.push(j["Id"].as_str().unwrap_or("").to_string());
                    }
                }
                t.count(&r);
            }
            (t, ids)
        });
        let sectors = s.spawn(|| {
            let (mut t, mut numbers) = (Tally::default(), Vec::new());
            while running() {
                let r = m.rpc_with(
                    Some(&sealer),
                    "Venus.AllocateSector",
                    serde_json::json!([{}]),
                );
                if let Ok(sector) = &r {
                    numbers.push(sector["ID"]["Number"].as_u64().unwrap());
                }
                t.count(&r);
                std::thread::sleep(Duration::from_millis(20));
            }
            (t, numbers)
        });
        std::thread::sleep(Duration::from_secs(4));
        db.kill();
        let down = Instant::now();
        std::thread::sleep(Duration::from_secs(4));
        db.restart();
        let downtime = down.elapsed();
        std::thread::sleep(Duration::from_secs(8));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (
            pings.join().unwrap(),
            claims.join().unwrap(),
            sectors.join().unwrap(),
            downtime,
        )
    });
    let ((claims, claimed), (allocs, numbers)) = (claims, sectors);
    println!(
        "MariaDB killed -9 under load and back after {downtime:.1?}: pings {} ok / {} retryable, claims {} ok / {} retryable ({} jobs), sector allocations {} ok / {} retryable",
        pings.ok, pings.retryable, claims.ok, claims.retryable, claimed.len(), allocs.ok, allocs.retryable
    );
    for (what, t) in [
        ("ping", &pings),
        ("claim", &claims),
        ("allocation", &allocs),
    ] {
        assert!(
            t.other.is_empty(),
            "{what}: errors that are not retryable: {:?}",
            t.other
        );
        // A call may also wait out the outage (a connection comes within the pool's 5 s):
        // only "try again" may be answered, never anything else.
        assert!(t.ok > 0, "{what}: {t:?}");
    }

    // Nothing handed out twice, nothing handed out lost.
    let base: Vec<&str> = claimed
        .iter()
        .map(|i| i.split('@').next().unwrap())
        .collect();
    let unique: std::collections::HashSet<&str> = base.iter().copied().collect();
    assert_eq!(unique.len(), base.len(), "a job was claimed twice");
    let running_jobs = mysql_exec(
        &db.url(),
        "SELECT id FROM wdpost_jobs WHERE state = 'Running' AND worker_name = 'claimer';",
    );
    let in_db: std::collections::HashSet<&str> = running_jobs.lines().collect();
    for id in &unique {
        assert!(
            in_db.contains(id),
            "claimed job {id} is not held by its claimer"
        );
    }
    let numbers_set: std::collections::HashSet<u64> = numbers.iter().copied().collect();
    assert_eq!(
        numbers_set.len(),
        numbers.len(),
        "a sector number was handed out twice"
    );
    let on_chain: std::collections::HashSet<u64> = m
        .sectors()
        .iter()
        .filter_map(|s| s["sector_number"].as_u64())
        .collect();
    for n in &numbers {
        assert!(
            on_chain.contains(n),
            "sector {n} was handed out but is not recorded"
        );
    }
    // Every pinging worker is known, with a ping from after the restart (8 s before the end).
    let (_, workers) = m.rest(Method::GET, "/workers", None);
    let fresh = workers.as_array().map_or(0, |w| {
        w.iter()
            .filter(|w| w["name"].as_str().is_some_and(|n| n.starts_with('p')))
            .filter(|w| w["last_ping_age_secs"].as_i64().is_some_and(|a| a < 8))
            .count()
    });
    assert_eq!(fresh, pingers.len(), "{workers}");
}
