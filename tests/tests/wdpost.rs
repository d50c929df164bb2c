//! WindowPoSt through the whole cluster: sectors sealed by a worker get jobs from the mock
//! chain's deadline clock, WindowPoSt workers prove them for real and the manager verifies each
//! proof. A job that fails on every try stays Failed until an operator resets it; a worker killed
//! mid-job costs one retry on another worker; a stale worker is refused. And two managers on one
//! MariaDB database hand out 10,000 jobs to 32 claimers, each job exactly once.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

/// One deadline, opening every 90 s (its challenge window); a job per partition (the two
/// sectors are in partitions 0 and 1); dead workers are noticed after 6 s, failed jobs go back
/// to the queue every second while their window is open.
const MANAGER: &str = r#"
[mock]
deadline_interval = "90s"
deadlines = 1

[task]
heartbeat_timeout = "6s"
retry_job_interval = "1s"
max_retry = 2
partitions_per_job = 1
"#;
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(6);

fn jobs(m: &Manager) -> Vec<Value> {
    let (status, body) = m.rest(Method::GET, "/wdpost/jobs?all=true", None);
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

fn job(m: &Manager, id: &str) -> Value {
    jobs(m)
        .into_iter()
        .find(|j| j["id"] == id)
        .unwrap_or(Value::Null)
}

fn prover(
    dir: &std::path::Path,
    m: &Manager,
    name: &str,
    store: &std::path::Path,
    extra: &str,
) -> Worker {
    let port = free_port();
    let cfg = wdpost_config(dir, name, m, port, 1, store, extra);
    Worker::start_config(dir, name, cfg, port)
}

/// The first line of a table, single-spaced.
fn header(table: &str) -> String {
    let first = table.lines().next().unwrap_or("");
    first.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cli_ok(m: &Manager, args: &[&str]) -> String {
    let out = m.cli(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn sealed_sectors_are_proven_through_failures_and_dead_workers(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, db, free_port(), MANAGER);

    // Two real 2KiB sectors, sealed and proven by the cluster; then the sealer stops taking more.
    let sealer = Worker::start(d, "sealer", &m, 2, "");
    wait_for(Duration::from_secs(900), "two proven sectors", || {
        let n = m
            .sectors()
            .iter()
            .filter(|s| s["proof_state"] == "Landed" && s["deadline_idx"] == 0)
            .count();
        (n >= 2).then_some(())
    });
    for i in ["0", "1"] {
        assert!(sealer.cli(&["pause", "--index", i]).status.success());
    }

    // No prover yet: a window closes without a proof, a missed deadline that faults its sector.
    let missed = wait_for(Duration::from_secs(240), "a missed deadline", || {
        let (_, m) = m.rest(Method::GET, "/proving/missed", None);
        m.as_array()?.first().cloned()
    });
    assert!(
        missed["reason"]
            .as_str()
            .unwrap()
            .contains("no prover claimed"),
        "{missed}"
    );
    let faults = cli_ok(&m, &["util", "sealer", "proving", "faults"]);
    assert!(
        faults.contains("missed WindowPoSt of deadline 0"),
        "{faults}"
    );

    // What follows runs in one window: it starts when a window has just opened.
    wait_for(Duration::from_secs(120), "a fresh window", || {
        jobs(&m)
            .into_iter()
            .find(|j| j["state"] == "ReadyToRun" && window_left(j) >= 75)
    });

    // A prover whose store has no files: the job fails on both tries and then stays Failed.
    let empty = d.join("empty-store");
    std::fs::create_dir_all(&empty).unwrap();
    let bad = prover(d, &m, "prover-bad", &empty, "");
    let failed = wait_for(Duration::from_secs(120), "a job failed twice", || {
        jobs(&m)
            .into_iter()
            .find(|j| j["state"] == "Failed" && j["try_num"] == 2)
    });
    let failed_id = failed["id"].as_str().unwrap().to_string();
    assert_eq!(failed["worker_name"], "prover-bad", "{failed}");
    let reason = failed["error_reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("window_post: "), "{failed}");
    assert!(failed["sectors"].as_i64().unwrap() >= 1, "{failed}");
    drop(bad);
    std::thread::sleep(Duration::from_secs(3));
    let still = job(&m, &failed_id);
    assert_eq!(
        (still["state"].as_str(), still["try_num"].as_i64()),
        (Some("Failed"), Some(2)),
        "{still}"
    );
    let table = cli_ok(&m, &["util", "worker", "wdpost", "list"]);
    assert_eq!(
        header(&table),
        "JobID MinerID DDL Partitions Worker State Try CreateAt Elapsed Heartbeat Error",
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with(&failed_id)).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    let partitions = failed["partitions"].as_str().unwrap();
    assert_eq!(&cells[1..3], ["10000", "0"], "{row}");
    assert_eq!(cells[3], partitions, "{row}");
    assert_eq!(&cells[4..7], ["prover-bad", "Failed", "2"], "{row}");
    assert!(
        row.contains("(done)") && row.contains("window_post: "),
        "{row}"
    );

    // An operator resets it; a slow prover takes a job and is killed -9 while it holds it.
    let out = cli_ok(&m, &["util", "worker", "wdpost", "reset", &failed_id]);
    assert_eq!(out.trim(), format!("wdpost job {failed_id} reset"));
    let r = job(&m, &failed_id);
    assert_eq!(
        (r["state"].as_str(), r["try_num"].as_i64()),
        (Some("ReadyToRun"), Some(0)),
        "{r}"
    );
    let store = d.join("remote");
    let slow = slow_processor("window_post", 120, false);
    let p1 = prover(d, &m, "prover-1", &store, &slow);
    let held = wait_for(Duration::from_secs(60), "a job running on prover-1", || {
        jobs(&m)
            .into_iter()
            .find(|j| j["state"] == "Running" && j["worker_name"] == "prover-1")
    });
    let held_id = held["id"].as_str().unwrap().to_string();
    assert_eq!(held["try_num"], 1, "{held}");
    let info = p1.list();
    assert_eq!(info[0]["plan"], "wdpost");
    assert_eq!(info[0]["job_id"], held_id.as_str());
    assert_eq!(info[0]["job_state"], "Allocated");
    let p2 = prover(d, &m, "prover-2", &store, "");
    p1.proc.signal(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    wait_for(
        HEARTBEAT_TIMEOUT + Duration::from_secs(20),
        "the job on prover-2",
        || {
            let j = job(&m, &held_id);
            (j["worker_name"] == "prover-2" && j["try_num"] == 2).then_some(())
        },
    );
    eprintln!(
        "job {held_id} moved to prover-2 {:?} after the kill",
        killed.elapsed()
    );
    let done = wait_for(
        Duration::from_secs(120),
        "the retried job to succeed",
        || {
            let j = job(&m, &held_id);
            (j["state"] == "Succeed").then_some(j)
        },
    );
    assert_eq!(
        (done["try_num"].as_i64(), done["worker_name"].as_str()),
        (Some(2), Some("prover-2")),
        "{done}"
    );
    assert!(done["error_reason"].is_null(), "{done}");

    // The dead worker's calls about that job are refused and change nothing.
    let before = job(&m, &held_id);
    let hb = m.rpc_as(
        "prover-1",
        "Venus.WdPoStHeartbeatJobs",
        json!([[held_id], "prover-1"]),
    );
    let err = hb.unwrap_err();
    assert_eq!(err["code"], 11002, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("not running"),
        "{err}"
    );
    let fin = m.rpc_as(
        "prover-1",
        "Venus.WdPoStFinishJob",
        json!([held_id, null, "late"]),
    );
    assert_eq!(fin.unwrap_err()["code"], 11002);
    assert_eq!(job(&m, &held_id), before);
    let unknown = m.rpc_as(
        "prover-2",
        "Venus.WdPoStHeartbeatJobs",
        json!([["nope"], "prover-2"]),
    );
    assert!(unknown.unwrap_err()["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));

    // prover-2 steps aside (paused through the manager); prover-1 comes back and, with every
    // failed job of an open window reset, proves them and the jobs of the windows after. A job
    // of a closed window cannot be reset: a proof would not count any more.
    wait_for(
        Duration::from_secs(15),
        "prover-2 in the manager's list",
        || {
            stdout(&m.cli(&["util", "worker", "list"]))
                .contains("prover-2")
                .then_some(())
        },
    );
    let out = cli_ok(&m, &["util", "worker", "pause", "prover-2", "0"]);
    assert!(out.contains("paused"), "{out}");
    let p1 = prover(d, &m, "prover-1", &store, "");
    for j in jobs(&m).iter().filter(|j| j["state"] == "Failed") {
        let id = j["id"].as_str().unwrap();
        let out = m.cli(&["util", "worker", "wdpost", "reset", id]);
        if window_left(j) > 1 {
            assert!(out.status.success(), "{}", stderr(&out));
        } else if window_left(j) < -1 {
            assert!(
                stderr(&out).contains("its challenge window closed"),
                "{}",
                stderr(&out)
            );
        }
    }
    // The jobs that must succeed: those proven already, and those of a window with time left
    // for prover-1 to start and prove them. When the window flipped during the steps above,
    // this waits for the next opening's jobs.
    let all: Vec<String> = wait_for(Duration::from_secs(120), "jobs of an open window", || {
        let now = jobs(&m);
        let open = |j: &Value| j["state"] != "Failed" && window_left(j) >= 30;
        let ids: Vec<String> = now
            .iter()
            .filter(|j| j["state"] == "Succeed" || open(j))
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect();
        (now.iter().any(open) && ids.len() >= 2).then_some(ids)
    });
    // Every job so far succeeds, and prover-1 proves some (new deadlines keep coming).
    let proven = wait_for(Duration::from_secs(300), "every job to succeed", || {
        let now = jobs(&m);
        let by_p1 = now
            .iter()
            .any(|j| j["state"] == "Succeed" && j["worker_name"] == "prover-1");
        let mine: Vec<Value> = now
            .into_iter()
            .filter(|j| all.contains(&j["id"].as_str().unwrap().to_string()))
            .collect();
        (by_p1 && mine.iter().all(|j| j["state"] == "Succeed")).then_some(mine)
    });
    let workers: HashSet<String> = jobs(&m)
        .iter()
        .filter(|j| j["state"] == "Succeed")
        .filter_map(|j| j["worker_name"].as_str().map(String::from))
        .collect();
    assert!(
        workers.contains("prover-1") && workers.contains("prover-2"),
        "{workers:?}"
    );
    let log = m.proc.log_text();
    for j in &proven {
        let id = j["id"].as_str().unwrap();
        assert!(
            log.contains(&format!("wdpost job succeeded: proof verified job={id}")),
            "no verified proof logged for {id}"
        );
    }
    assert!(log.contains("heartbeat timeout") || log.contains("stopped heartbeating"));
    // Proven again, no sector is faulty any more; the misses stay on record.
    let (_, faults) = m.rest(Method::GET, "/proving/faults", None);
    assert_eq!(faults, json!([]), "recovered by the verified proofs");
    let (_, missed) = m.rest(Method::GET, "/proving/missed", None);
    assert!(!missed.as_array().unwrap().is_empty());
    let table = cli_ok(
        &m,
        &["util", "worker", "wdpost", "list", "--all", "--detail"],
    );
    assert_eq!(
        header(&table),
        "JobID MinerID DDL Partitions Sectors Worker State Try CreateAt StartedAt HeartbeatAt FinishedAt UpdatedAt Elapsed Error",
        "{table}"
    );
    assert!(
        table.contains("(done)") && table.contains("Succeed"),
        "{table}"
    );

    // Removing the open deadline's job makes the chain clock create it again (same input, same
    // id); bad ids are errors that name them; remove-all asks first; all of it is audited.
    let seen: HashSet<String> = jobs(&m)
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    let fresh = wait_for(Duration::from_secs(120), "a new deadline opening", || {
        jobs(&m)
            .into_iter()
            .find(|j| !seen.contains(j["id"].as_str().unwrap()))
    });
    let fresh_id = fresh["id"].as_str().unwrap();
    let out = cli_ok(&m, &["util", "worker", "wdpost", "remove", fresh_id]);
    assert_eq!(out.trim(), format!("wdpost job {fresh_id} removed"));
    wait_for(
        Duration::from_secs(10),
        "the open deadline's job again",
        || (!job(&m, fresh_id).is_null()).then_some(()),
    );
    let out = m.cli(&["util", "worker", "wdpost", "reset", "nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wdpost job 'nope' does not exist"),
        "{}",
        stderr(&out)
    );
    let (status, body) = m.rest(Method::DELETE, "/wdpost/jobs/nope", None);
    assert_eq!(status, 404, "{body}");
    let before = jobs(&m).len();
    let out = cli_ok(&m, &["util", "worker", "wdpost", "remove-all"]);
    assert!(
        out.contains("Pass --really-do-it to actually execute this action"),
        "{out}"
    );
    assert!(jobs(&m).len() >= before);
    let (status, body) = m.rest(Method::GET, "/audit", None);
    assert_eq!(status, 200);
    let actions: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    for a in ["wdpost.reset", "wdpost.remove", "thread.pause"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let metrics = reqwest::blocking::get(m.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let succeeded = metrics
        .lines()
        .find_map(|l| l.strip_prefix("damocles_wdpost_jobs{miner=\"10000\",state=\"Succeed\"} "))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    assert!(succeeded >= proven.len(), "{metrics}");

    // With both provers paused and the queue emptied, a forger claims the open deadline's job
    // (made again by the clock) and hands back garbage: it is not accepted.
    assert!(p1.cli(&["pause", "--index", "0"]).status.success());
    let out = cli_ok(
        &m,
        &["util", "worker", "wdpost", "remove-all", "--really-do-it"],
    );
    assert!(
        out.contains(&format!("wdpost job {fresh_id} removed")),
        "{out}"
    );
    let forged = wait_for(Duration::from_secs(30), "a job for the forger", || {
        let got = m
            .rpc_as(
                "forger",
                "Venus.WdPoStAllocateJobs",
                json!([{}, 1, "forger"]),
            )
            .ok()?;
        got.as_array()?.first().cloned()
    });
    let forged_id = forged["Id"].as_str().unwrap();
    assert!(!forged["Input"]["Sectors"].as_array().unwrap().is_empty());
    let garbage = json!({"proofs": ["AAAA"], "faults": []});
    // Someone else's token cannot finish the forger's job; the forger's own can.
    let e = m
        .rpc_as(
            "prover-1",
            "Venus.WdPoStFinishJob",
            json!([forged_id, null, "x"]),
        )
        .unwrap_err();
    assert_eq!(e["code"], 11002, "{e}");
    m.rpc_as(
        "forger",
        "Venus.WdPoStFinishJob",
        json!([forged_id, garbage, ""]),
    )
    .unwrap();
    // The claim's id names its attempt (`<id>@<attempt>`); operators see the job's id. The
    // keeper (every second here) may already have put the failed job back for its second try,
    // which keeps the reason and the count of tries.
    let j = job(&m, forged_id.split('@').next().unwrap());
    assert!(
        matches!(j["state"].as_str(), Some("Failed" | "ReadyToRun")),
        "{j}"
    );
    assert_eq!(
        (j["error_reason"].as_str(), j["try_num"].as_i64()),
        (Some("invalid proof"), Some(1)),
        "{j}"
    );
    drop(p1);
    drop(p2);
}

#[test]
fn sealed_sectors_are_proven_through_failures_and_dead_workers_on_sqlite() {
    sealed_sectors_are_proven_through_failures_and_dead_workers(None);
}

#[test]
fn sealed_sectors_are_proven_through_failures_and_dead_workers_on_mariadb() {
    if let Some(url) = mysql_database("wdpost_e2e") {
        sealed_sectors_are_proven_through_failures_and_dead_workers(Some(url));
    }
}

/// 10,000 small fake jobs (the claim path reads only their rows), two managers on one MariaDB
/// database, 32 claimers going through both: every job is claimed exactly once, with
/// `SELECT … FOR UPDATE SKIP LOCKED` (MariaDB's default) ...
#[test]
fn two_managers_hand_out_each_job_exactly_once() {
    two_managers_hand_out_each_job_exactly_once_by("skip_locked");
}

/// ... and with the conditional update that engines without `SKIP LOCKED` (TiDB) use.
#[test]
fn two_managers_hand_out_each_job_exactly_once_by_conditional_updates() {
    two_managers_hand_out_each_job_exactly_once_by("conditional");
}

fn two_managers_hand_out_each_job_exactly_once_by(mode: &str) {
    let Some(url) = mysql_database(&format!("wdpost_claims_{mode}")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The claimers never heartbeat: keep the keeper from re-queueing their jobs meanwhile.
    let quiet = format!("[db]\nclaim = \"{mode}\"\n[task]\nheartbeat_timeout = \"1h\"\n");
    let quiet = quiet.as_str();
    let a = Manager::start_with(&dir.path().join("a"), Some(url.clone()), free_port(), quiet);
    let b = Manager::start_with(&dir.path().join("b"), Some(url.clone()), free_port(), quiet);
    const JOBS: usize = 10_000;
    insert_fake_jobs(&url, JOBS);
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let managers = Arc::new([a.url("/rpc/v0"), b.url("/rpc/v0")]);
    // Each claimer has its own token, made through one manager and known to both.
    let tokens: Vec<String> = (0..32)
        .map(|c| a.worker_token(&format!("claimer-{c}")))
        .collect();
    // claimer-0 is known and draining: both managers refuse it every job (one query per batch
    // of claims says so), and the others share the queue.
    let summary = json!({"Threads": 1, "Empty": 1, "Paused": 0, "Errors": 0});
    let ping = json!([{"Name": "claimer-0", "Dest": "127.0.0.1:1", "Summary": summary}]);
    a.rpc_as("claimer-0", "Venus.WorkerPing", ping).unwrap();
    let (status, body) = b.rest(reqwest::Method::POST, "/workers/claimer-0/drain", None);
    assert_eq!(status, 200, "{body}");
    let threads: Vec<_> = (0..32)
        .map(|c| {
            let (claimed, managers) = (claimed.clone(), managers.clone());
            let token = tokens[c].clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                for n in 0.. {
                    let body = json!({"jsonrpc": "2.0", "id": n, "method": "Venus.WdPoStAllocateJobs",
                        "params": [{"AllowedMiners": null, "AllowedProofTypes": null}, 1, format!("claimer-{c}")]});
                    let resp: Value = http
                        .post(&managers[(c + n) % 2])
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .unwrap()
                        .json()
                        .unwrap();
                    let got = resp["result"].as_array().cloned().unwrap_or_else(|| panic!("{resp}"));
                    // Rows others hold are skipped, and they claim them: empty means all taken.
                    if got.is_empty() {
                        return;
                    }
                    let mut ids = claimed.lock().unwrap();
                    ids.extend(got.iter().map(|j| (j["Id"].as_str().unwrap().to_string(), c)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ids = claimed.lock().unwrap().clone();
    let unique: HashSet<&String> = ids.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), ids.len(), "a job was claimed twice");
    assert_eq!(ids.len(), JOBS, "every job claimed");
    assert!(
        ids.iter().all(|(_, c)| *c != 0),
        "the draining claimer got a job"
    );
    let counts = mysql_exec(
        &url,
        "SELECT state, try_num, COUNT(*) FROM wdpost_jobs GROUP BY state, try_num;",
    );
    assert_eq!(counts.trim(), format!("Running\t1\t{JOBS}"));
    // Each job is held, under the attempt its claimer was given, by that claimer.
    assert_held_by_claimers(&url, &ids);
    let refused = [&a, &b].map(|m| {
        m.proc
            .log_text()
            .contains("not scheduling claimer-0: draining")
    });
    assert!(
        refused.iter().any(|r| *r),
        "no refusal logged for the draining claimer"
    );
    let by_manager = [&a, &b].map(|m| m.proc.log_text().matches("wdpost job claimed").count());
    assert!(by_manager.iter().all(|n| *n > 0), "{by_manager:?}");
    assert_eq!(by_manager.iter().sum::<usize>(), JOBS);
}
