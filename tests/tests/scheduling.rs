//! Operators' scheduling controls on a running cluster. Stage limits change while a worker runs:
//! by editing its config file, and from the manager (`util worker limits`), which the worker keeps
//! in its config file across a restart; lowering a limit stops nothing that runs, and new work
//! waits until fewer than the new limit run. A drained worker finishes what it holds and takes
//! nothing new until it is undrained.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use damocles_tests::*;
use reqwest::Method;
use serde_json::Value;

/// Threads running PC1 now, and threads waiting for the pc1 limit.
fn pc1(w: &Worker) -> (usize, usize) {
    let list = w.list();
    let running = list
        .iter()
        .filter(|t| t["thread_state"]["state"] == "Running" && t["job_state"] == "TicketAssigned")
        .count();
    let waiting = list
        .iter()
        .filter(|t| t["thread_state"]["reason"] == "stage limit pc1")
        .count();
    (running, waiting)
}

fn limit(w: &Worker, stage: &str) -> Value {
    let out = w.cli(&["limits", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[stage].clone()
}

#[test]
fn pc1_limit_changes_live_from_the_file_and_from_the_manager() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start(d, None);
    let port = free_port();
    let path = worker_config(d, "w", &m, port, 3, "");
    // Two PC1s at once, each held 8 s by a slow processor in front of the real one.
    let cfg = std::fs::read_to_string(&path).unwrap().replace(
        "[processors.limitation.concurrent]\nc2 = 1\n",
        "[processors.limitation.concurrent]\nc2 = 1\npc1 = 2\n",
    ) + &slow_processor("pc1", 8, false);
    std::fs::write(&path, &cfg).unwrap();
    let w = Worker::start_config(d, "w", path.clone(), port);

    wait_for(
        Duration::from_secs(60),
        "two PC1 running, one waiting",
        || (pc1(&w) == (2, 1)).then_some(()),
    );
    assert_eq!(limit(&w, "pc1")["limit"], 2);
    assert_eq!(limit(&w, "pc1")["running"], 2);

    // The operator lowers pc1 to 1 in the file: nothing running stops, and from the moment
    // fewer than 2 run, never more than one runs.
    std::fs::write(&path, cfg.replace("pc1 = 2\n", "pc1 = 1\n")).unwrap();
    wait_for(Duration::from_secs(10), "the change in the log", || {
        w.proc
            .log_text()
            .contains("stage limit changed stage=pc1 old=2 new=1 why=\"config file changed\"")
            .then_some(())
    });
    assert_eq!(limit(&w, "pc1")["limit"], 1);
    let start = Instant::now();
    let mut settled = false;
    let mut max_after = 0;
    let mut third_ran = false;
    while start.elapsed() < Duration::from_secs(30) {
        let (running, waiting) = pc1(&w);
        settled |= running <= 1;
        if settled {
            max_after = max_after.max(running);
            third_ran |= running == 1 && waiting == 0;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(settled, "a running PC1 ended");
    assert_eq!(max_after, 1, "never two PC1 at once under the new limit");
    assert!(
        third_ran,
        "the waiting thread ran its PC1 once the others were done"
    );

    // From the manager: back to 2; bad input is refused with what is allowed.
    wait_for(Duration::from_secs(15), "w in the manager's list", || {
        stdout(&m.cli(&["util", "worker", "list"]))
            .contains("w ")
            .then_some(())
    });
    let out = m.cli(&["util", "worker", "limits", "w", "pc1=2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("Stage"), "{table}");
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("pc1 "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "2", "{table}");
    assert!(w
        .proc
        .log_text()
        .contains("stage limit changed stage=pc1 old=1 new=2 why=\"remote change\""));
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(
        file.contains("pc1 = 2") && file.contains("[[processors.pc1]]"),
        "{file}"
    );
    let out = m.cli(&["util", "worker", "limits", "w", "pc9=1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown stage \"pc9\""),
        "{}",
        stderr(&out)
    );
    let (status, body) = m.rest(Method::POST, "/workers/w/limits", Some(r#"{"pc1": 0}"#));
    assert_eq!(status, 400, "{body}");
    assert_eq!(limit(&w, "pc1")["limit"], 2);

    // The remote change survives a restart of the worker.
    drop(w);
    let w = Worker::start_config(d, "w", path, port);
    assert_eq!(limit(&w, "pc1")["limit"], 2);
    let (status, body) = m.rest(Method::GET, "/workers/w/limits", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["pc1"]["limit"], 2);
    let (_, audit) = m.rest(Method::GET, "/audit", None);
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["action"] == "worker.limits" && a["target"] == "w"));
}

fn mode(m: &Manager, name: &str) -> String {
    let (_, list) = m.rest(Method::GET, "/workers", None);
    list.as_array()
        .and_then(|l| l.iter().find(|w| w["name"] == name))
        .and_then(|w| w["mode"].as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_draining_worker_finishes_what_it_holds_and_takes_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start(d, None);
    let w = Worker::start(d, "w", &m, 1, "");
    let held = wait_for(Duration::from_secs(60), "a sector on w", || {
        w.list()[0]["job_id"].as_str().map(String::from)
    });
    let number: u64 = held.rsplit('-').next().unwrap().parse().unwrap();
    m.wait_for_workers(1);

    let out = m.cli(&["util", "worker", "drain", "w"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("worker w is draining"),
        "{}",
        stdout(&out)
    );
    assert_eq!(mode(&m, "w"), "draining");
    let table = stdout(&m.cli(&["util", "worker", "list"]));
    assert!(table.lines().next().unwrap().contains("Mode"), "{table}");
    assert!(table.contains("draining"), "{table}");

    // The held sector is finished; then nothing new starts and the worker shows drained.
    wait_for(Duration::from_secs(300), "the held sector finished", || {
        m.sectors()
            .iter()
            .any(|s| s["sector_number"] == number && s["state"] == "Finished")
            .then_some(())
    });
    wait_for(Duration::from_secs(20), "w drained", || {
        (mode(&m, "w") == "drained").then_some(())
    });
    let sectors = m.sectors().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        m.sectors().len(),
        sectors,
        "no new sector for a draining worker"
    );
    assert!(w.list()[0]["job_id"].is_null());
    assert!(m
        .proc
        .log_text()
        .contains("sched: not scheduling w: draining"));
    // The manager refuses WindowPoSt jobs to it too, whatever the worker asks.
    let jobs = m
        .rpc_as(
            "w",
            "Venus.WdPoStAllocateJobs",
            serde_json::json!([{}, 1, "w"]),
        )
        .unwrap();
    assert_eq!(jobs, serde_json::json!([]));

    let out = m.cli(&["util", "worker", "undrain", "w"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&m, "w"), "active");
    wait_for(
        Duration::from_secs(30),
        "a new sector after undrain",
        || (m.sectors().len() > sectors).then_some(()),
    );
    let out = m.cli(&["util", "worker", "drain", "nope"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown worker \"nope\""),
        "{}",
        stderr(&out)
    );
    let (_, audit) = m.rest(Method::GET, "/audit", None);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert!(actions.contains(&"worker.drain") && actions.contains(&"worker.undrain"));
}

#[test]
fn a_disk_quota_holds_new_sectors_until_it_is_raised() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start(d, None);
    let port = free_port();
    let path = worker_config(d, "q", &m, port, 1, "");
    let cfg = std::fs::read_to_string(&path).unwrap();
    let small = cfg.replace("[sealing]\n", "[sealing]\ndisk_quota = \"1KiB\"\n");
    std::fs::write(&path, &small).unwrap();
    let w = Worker::start_config(d, "q", path.clone(), port);

    // Less than one 2KiB sector fits: the thread waits and says why.
    let reason = wait_for(
        Duration::from_secs(20),
        "the thread held by the quota",
        || {
            let t = w.list().remove(0);
            let why = t["thread_state"]["reason"].as_str()?.to_string();
            (t["thread_state"]["state"] == "Waiting").then_some(why)
        },
    );
    assert!(
        reason.starts_with(
            "disk quota: 0B used of 1KiB in the sealing locations, a new sector needs 12KiB"
        ),
        "{reason}"
    );
    assert!(m.sectors().is_empty());
    m.wait_for_workers(1);
    wait_for(
        Duration::from_secs(10),
        "the reason in the manager's info",
        || {
            stdout(&m.cli(&["util", "worker", "info", "q"]))
                .contains("Empty (waiting: disk quota: ")
                .then_some(())
        },
    );

    // Raised in the config file while the worker runs: the thread takes a sector.
    std::fs::write(
        &path,
        cfg.replace("[sealing]\n", "[sealing]\ndisk_quota = \"1GiB\"\n"),
    )
    .unwrap();
    wait_for(
        Duration::from_secs(20),
        "a sector after the quota was raised",
        || (!m.sectors().is_empty()).then_some(()),
    );
    assert!(w
        .proc
        .log_text()
        .contains("disk quota changed old=1KiB new=1GiB"));
}

/// A worker with `threads` sealer threads whose C2 is held 10 minutes by a slow processor: its
/// sectors stay busy before C2, and no proof eats memory while the test counts grants.
fn busy_worker(d: &std::path::Path, m: &Manager, name: &str, threads: usize) -> Worker {
    let port = free_port();
    let path = worker_config(d, name, m, port, threads, "");
    append_config(&path, &slow_processor("c2", 600, false));
    Worker::start_config(d, name, path, port)
}

/// Sectors granted to each worker, from the decision log.
fn grants(m: &Manager) -> std::collections::BTreeMap<String, usize> {
    let (status, rows) = m.rest(Method::GET, "/sched/log?since_secs=3600", None);
    assert_eq!(status, 200, "{rows}");
    let mut out = std::collections::BTreeMap::new();
    for r in rows.as_array().unwrap() {
        if r["decision"] == "granted" && r["work"].as_str().unwrap().starts_with("s-t0") {
            *out.entry(r["worker_name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    out
}

fn pledge(m: &Manager, how: &[&str]) -> String {
    let mut args = vec!["util", "sealer", "sectors", "pledge"];
    args.extend(how);
    let out = m.cli(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn pledged_sectors_are_spread_evenly_across_workers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, None, free_port(), "[mock]\nauto_pledge = false\n");
    let _workers: Vec<Worker> = ["a", "b", "c"]
        .into_iter()
        .map(|n| busy_worker(d, &m, n, 3))
        .collect();
    m.wait_for_workers(3);

    // Nothing pledged: every thread is refused, and the log says why.
    wait_for(
        Duration::from_secs(15),
        "refusals in the decision log",
        || {
            let out = stdout(&m.cli(&["util", "worker", "sched-log", "--worker", "a"]));
            out.contains("sched: not scheduling a: no pledge budget (sector)")
                .then_some(())
        },
    );
    assert!(m.sectors().is_empty());
    let out = m.cli(&["util", "sealer", "sectors", "pledge"]);
    assert!(
        !out.status.success(),
        "one of --count, --fill, --once-per-worker is needed"
    );

    // 6 for 9 asking threads: 2 each, not first come first served.
    let out = pledge(&m, &["--count", "6"]);
    assert!(out.starts_with("pledged 6 sectors"), "{out}");
    let even = |n: usize| {
        ["a", "b", "c"]
            .iter()
            .map(|w| (w.to_string(), n))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    wait_for(Duration::from_secs(30), "6 sectors granted", || {
        (m.sectors().len() == 6).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(m.sectors().len(), 6, "no sector beyond the pledge");
    assert_eq!(grants(&m), even(2));

    // --fill: one for each idle sealer thread (one per worker now).
    wait_for(
        Duration::from_secs(10),
        "the pings to show 2 busy threads a worker",
        || {
            let (_, list) = m.rest(Method::GET, "/workers", None);
            list.as_array()?
                .iter()
                .all(|w| w["empty_threads"] == 1)
                .then_some(())
        },
    );
    let out = pledge(&m, &["--fill"]);
    assert!(out.starts_with("pledged 3 sectors"), "{out}");
    wait_for(Duration::from_secs(30), "9 sectors granted", || {
        (grants(&m) == even(3)).then_some(())
    });

    // --once-per-worker: one more each (they wait for a free thread).
    let out = pledge(&m, &["--once-per-worker"]);
    assert!(out.starts_with("pledged 3 sectors"), "{out}");
    for w in ["a", "b", "c"] {
        assert!(out.contains(&format!("  {w}: 1")), "{out}");
    }

    // The decision log of one worker, and the counts in /metrics.
    let log = stdout(&m.cli(&["util", "worker", "sched-log", "--worker", "b"]));
    assert_eq!(log.matches("sched: granted s-t010000-").count(), 3, "{log}");
    // Each grant names the thread it went to.
    assert_eq!(log.matches(" to b #").count(), 3, "{log}");
    assert!(m.proc.log_text().contains(" to b #"));
    assert!(
        log.lines()
            .all(|l| l.contains(" to b") || l.contains("scheduling b:")),
        "{log}"
    );
    let metrics = reqwest::blocking::get(m.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("damocles_sched_decisions_total{decision=\"granted\",reason=\"\"} 9"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "damocles_sched_decisions_total{decision=\"refused\",reason=\"no pledge budget\"}"
    ));
}
