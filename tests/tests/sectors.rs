//! Operators and sectors, and WindowPoSt windows, through a real manager on SQLite and on
//! MariaDB: sectors move in from damocles-manager's own `export-json` records (and out again),
//! abort and restore check what they may do and stop a worker's calls about an aborted sector;
//! a deadline split into partition groups is shared by two provers, and a proof handed in after
//! its window closed counts as a missed deadline that faults its sectors.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

/// A record of damocles-manager's `util sealer sectors export-json` (see the golden file),
/// renumbered.
fn golden_record(case: &str, number: u64) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/golden/sector_state.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut r = doc[case].clone();
    r["ID"]["Number"] = number.into();
    r
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
    p
}

fn cli(m: &Manager, args: &[&str]) -> (bool, String) {
    let out = m.cli(args);
    (out.status.success(), stdout(&out) + &stderr(&out))
}

/// `damocles-manager util sealer sectors <args>`.
fn sectors_cli(m: &Manager, args: &[&str]) -> (bool, String) {
    let mut all = vec!["util", "sealer", "sectors"];
    all.extend_from_slice(args);
    cli(m, &all)
}

fn sector(m: &Manager, number: u64) -> Value {
    m.sectors()
        .into_iter()
        .find(|s| s["sector_number"] == number)
        .unwrap_or(Value::Null)
}

fn import(m: &Manager, path: &Path, extra: &[&str]) -> (bool, String) {
    let p = path.to_str().unwrap();
    let mut args = vec!["import-json", p];
    args.extend_from_slice(extra);
    sectors_cli(m, &args)
}

fn operators_move_abort_and_restore_sectors(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, db, free_port(), "");

    // damocles' record of a deal sector: its store must be named; a dry run changes nothing.
    let deal = write(d, "deal.json", &golden_record("deal_sector", 12));
    let (ok, out) = import(&m, &deal, &["--really-do-it"]);
    assert!(
        !ok && out.contains("give the store holding its sealed file and cache with --store"),
        "{out}"
    );
    let (ok, out) = import(&m, &deal, &["--store", "store-a"]);
    assert!(
        ok && out.contains("would be imported") && out.contains("dry run"),
        "{out}"
    );
    assert!(sector(&m, 12).is_null(), "a dry run imports nothing");
    let (ok, out) = import(&m, &deal, &["--store", "store-a", "--really-do-it"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("s-t010000-12: imported, proven in deadline"),
        "{out}"
    );
    let s = sector(&m, 12);
    assert_eq!(
        (
            s["state"].as_str(),
            s["proof_state"].as_str(),
            s["persist_store"].as_str()
        ),
        (Some("Finished"), Some("Landed"), Some("store-a")),
        "{s}"
    );
    let (_, deals) = m.rest(Method::GET, "/mock/deals", None);
    let d7 = deals
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["deal_id"] == 7)
        .cloned();
    assert_eq!(
        d7.map(|x| (x["state"].clone(), x["sector_number"].clone())),
        Some((json!("Active"), json!(12)))
    );
    // Again: refused without --override (the dry run makes every check the import does),
    // done with it.
    let (ok, out) = import(&m, &deal, &["--store", "store-a", "--really-do-it"]);
    assert!(
        !ok && out.contains("exists already (state Finished)"),
        "{out}"
    );
    let (ok, out) = import(&m, &deal, &["--store", "store-a"]);
    assert!(!ok && out.contains("exists already"), "dry run: {out}");
    let (ok, out) = import(
        &m,
        &deal,
        &["--store", "store-a", "--really-do-it", "--override"],
    );
    assert!(ok, "{out}");
    // A sector still being sealed on its cluster, or of another miner, never comes in.
    let online = write(d, "online.json", &golden_record("online_sector", 14));
    let (ok, out) = import(&m, &online, &["--store", "s", "--really-do-it"]);
    assert!(!ok && out.contains("not finalized"), "{out}");
    let mut other = golden_record("deal_sector", 15);
    other["ID"]["Miner"] = 20000.into();
    let (ok, out) = import(
        &m,
        &write(d, "other.json", &other),
        &["--store", "s", "--really-do-it"],
    );
    assert!(!ok && out.contains("serves t010000 only"), "{out}");
    let (ok, out) = import(
        &m,
        &write(d, "junk.json", &json!({"ID": 3})),
        &["--store", "s"],
    );
    assert!(!ok && out.contains("is not a sector record"), "{out}");

    // A snapped sector's record, exported here and read back: the same damocles keys, our store.
    let snapped = write(d, "snap.json", &golden_record("snapped_sector", 13));
    assert!(import(&m, &snapped, &["--store", "store-a", "--really-do-it"]).0);
    let (ok, text) = sectors_cli(&m, &["export-json", "t010000", "13"]);
    assert!(ok, "{text}");
    let ours: Value = serde_json::from_str(text.trim()).unwrap();
    let theirs = golden_record("snapped_sector", 13);
    // Epochs are the chain's business: ours are 0.
    for key in [
        "/ID",
        "/SectorType",
        "/Pre/CommR",
        "/Pre/CommD",
        "/Proof",
        "/Upgraded",
        "/Ticket/Ticket",
        "/Seed/Seed",
    ] {
        assert_eq!(ours.pointer(key), theirs.pointer(key), "{key}");
    }
    assert_eq!(
        ours["UpgradedInfo"]["SealedCID"],
        theirs["UpgradedInfo"]["SealedCID"]
    );
    assert_eq!(ours["DamoclesRs"]["PersistStore"], "store-a");
    let (ok, out) = sectors_cli(&m, &["export-json", "t010000", "99"]);
    assert!(
        !ok && out.contains("sector s-t010000-99 does not exist"),
        "{out}"
    );
    // New sectors are numbered after the imported ones.
    let alloc = json!([{"AllowedMiners": null, "AllowedProofTypes": null}]);
    let got = m.rpc_as("w1", "Venus.AllocateSector", alloc).unwrap();
    let n = got["ID"]["Number"].as_u64().unwrap();
    assert_eq!(n, 14, "{got}");

    // Abort: refused for a proven sector and an unknown one; a dry run first; then the
    // worker's calls about it are refused, so its thread aborts too; restore brings it back.
    let (ok, out) = sectors_cli(&m, &["abort", "t010000", "12", "--really-do-it"]);
    assert!(
        !ok && out.contains("is proven on chain") && out.contains("rebuild"),
        "{out}"
    );
    let (ok, out) = sectors_cli(&m, &["abort", "10000", "77"]);
    assert!(!ok && out.contains("does not exist"), "{out}");
    let (ok, out) = sectors_cli(&m, &["abort", "10000", &n.to_string()]);
    assert!(
        ok && out.contains("would abort the sector (state Allocated)") && out.contains("dry run"),
        "{out}"
    );
    assert_eq!(sector(&m, n)["state"], "Allocated");
    let id = json!({"Miner": 10000, "Number": n});
    let args = [
        "util",
        "sealer",
        "sectors",
        "abort",
        "10000",
        &n.to_string(),
        "--reason",
        "stuck disk",
        "--really-do-it",
    ];
    let (ok, out) = cli(&m, &args);
    assert!(ok && out.contains("sector aborted"), "{out}");
    assert!(
        out.contains("aborts at its next call"),
        "no thread holds it: {out}"
    );
    let s = sector(&m, n);
    assert_eq!(s["state"], "Aborted");
    assert!(
        s["abort_reason"].as_str().unwrap().contains("stuck disk"),
        "{s}"
    );
    let err = m
        .rpc_as("w1", "Venus.AssignTicket", json!([id]))
        .unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("was aborted"),
        "{err}"
    );
    let (ok, out) = cli(&m, &args);
    assert!(!ok && out.contains("aborted already"), "{out}");
    let (ok, out) = sectors_cli(&m, &["restore", "10000", "12", "--really-do-it"]);
    assert!(!ok && out.contains("is not aborted"), "{out}");
    let (ok, out) = sectors_cli(&m, &["restore", "10000", "77", "--really-do-it"]);
    assert!(!ok && out.contains("does not exist"), "{out}");
    let (ok, out) = sectors_cli(&m, &["restore", "10000", &n.to_string()]);
    assert!(ok && out.contains("would restore it to Allocated"), "{out}");
    let (ok, out) = sectors_cli(&m, &["restore", "10000", &n.to_string(), "--really-do-it"]);
    assert!(ok && out.contains("restored to Allocated"), "{out}");
    assert!(m.rpc_as("w1", "Venus.AssignTicket", json!([id])).is_ok());

    // Each change is in the audit log; the dry runs are not.
    let (_, audit) = m.rest(Method::GET, "/audit", None);
    let mut actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str().filter(|x| x.starts_with("sector.")))
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "sector.abort",
            "sector.import",
            "sector.import",
            "sector.import",
            "sector.restore"
        ]
    );
}

#[test]
fn operators_move_abort_and_restore_sectors_on_sqlite() {
    operators_move_abort_and_restore_sectors(None);
}

#[test]
fn operators_move_abort_and_restore_sectors_on_mariadb() {
    if let Some(url) = mysql_database("sector_admin") {
        operators_move_abort_and_restore_sectors(Some(url));
    }
}

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

fn claim(m: &Manager, prover: &str) -> Vec<Value> {
    let spec = json!([{"AllowedMiners": null, "AllowedProofTypes": null}, 1, prover]);
    let got = m.rpc_as(prover, "Venus.WdPoStAllocateJobs", spec).unwrap();
    got.as_array().cloned().unwrap_or_default()
}

fn proofs() -> Value {
    json!({"proofs": [base64_of(&[7u8; 192])], "faults": []})
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Two imported sectors in two partitions of the one deadline; a job per partition
/// (`partitions_per_job = 1`), windows of 8 s.
fn a_proof_after_its_window_closes_is_a_missed_deadline(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = "[mock]\ndeadline_interval = \"8s\"\ndeadlines = 1\n\n[task]\npartitions_per_job = 1\nheartbeat_timeout = \"1h\"\n";
    let m = Manager::start_with(d, db, free_port(), cfg);
    // Numbers 1 and 2: with one deadline and 2KiB partitions of 2, partitions 0 and 1.
    for (n, case) in [(1, "deal_sector"), (2, "snapped_sector")] {
        let f = write(d, &format!("{n}.json"), &golden_record(case, n));
        let (ok, out) = import(&m, &f, &["--store", "s", "--really-do-it"]);
        assert!(ok, "{out}");
    }

    // The next window has two jobs; two provers take one each and nothing is left.
    let pair = wait_for(Duration::from_secs(30), "a window's two jobs", || {
        let open: Vec<Value> = jobs(&m)
            .into_iter()
            .filter(|j| j["state"] == "ReadyToRun" && window_left(j) >= 4)
            .collect();
        (open.len() == 2).then_some(open)
    });
    assert_eq!(pair[0]["deadline_open_at"], pair[1]["deadline_open_at"]);
    let mut parts: Vec<&str> = pair
        .iter()
        .map(|j| j["partitions"].as_str().unwrap())
        .collect();
    parts.sort_unstable();
    assert_eq!(parts, ["0", "1"]);
    let a = claim(&m, "prover-a");
    let b = claim(&m, "prover-b");
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_ne!(
        a[0]["Id"], b[0]["Id"],
        "one deadline, shared by two provers"
    );
    assert!(claim(&m, "prover-c").is_empty());
    let (a_wire, b_wire) = (a[0]["Id"].as_str().unwrap(), b[0]["Id"].as_str().unwrap());
    let a_id = a_wire.split('@').next().unwrap().to_string();
    let b_id = b_wire.split('@').next().unwrap().to_string();

    // prover-a hands its proof in after the window closed (by the manager's clock, which
    // follows the database's to the second); prover-b never does.
    let wait = window_left(&job(&m, &a_id)) + 2;
    std::thread::sleep(Duration::from_secs(wait.max(0) as u64));
    // Whichever comes first, the proof or the clock's tick, the job fails as a missed window
    // (a proof that comes first is not even verified).
    let fin = m.rpc_as(
        "prover-a",
        "Venus.WdPoStFinishJob",
        json!([a_wire, proofs(), ""]),
    );
    if let Err(e) = &fin {
        assert_eq!(e["code"], 11002, "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("is Failed, not running"),
            "{e}"
        );
    }
    let ja = job(&m, &a_id);
    assert_eq!(
        (ja["state"].as_str(), ja["try_num"].as_i64()),
        (Some("Failed"), Some(1)),
        "{ja}"
    );
    let reason = ja["error_reason"].as_str().unwrap();
    assert!(reason.starts_with("deadline closed: "), "{ja}");
    let jb = wait_for(Duration::from_secs(10), "the clock to fail b", || {
        let j = job(&m, &b_id);
        (j["state"] == "Failed").then_some(j)
    });
    assert!(
        jb["error_reason"]
            .as_str()
            .unwrap()
            .contains("worker prover-b had not handed in a proof"),
        "{jb}"
    );
    // Its heartbeat and finish are refused now; it is never retried or reset.
    let hb = m.rpc_as(
        "prover-b",
        "Venus.WdPoStHeartbeatJobs",
        json!([[b_wire], "prover-b"]),
    );
    assert!(hb.unwrap_err()["message"]
        .as_str()
        .unwrap()
        .contains("not running"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(job(&m, &b_id)["state"], "Failed");
    assert_eq!(job(&m, &b_id)["try_num"], 1);
    let (status, body) = m.rest(Method::POST, &format!("/wdpost/jobs/{b_id}/reset"), None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("its challenge window closed"),
        "{body}"
    );

    // Both sectors are faulty, both misses are on record, and /metrics counts them.
    let faults = wait_for(Duration::from_secs(10), "both sectors faulty", || {
        let (_, f) = m.rest(Method::GET, "/proving/faults?miner=10000", None);
        (f.as_array()?.len() == 2).then_some(f)
    });
    assert!(
        faults[0]["reason"]
            .as_str()
            .unwrap()
            .contains("missed WindowPoSt of deadline 0"),
        "{faults}"
    );
    let (ok, table) = cli(&m, &["util", "sealer", "proving", "faults"]);
    assert!(
        ok && table.contains("s-t010000-1") && table.contains("s-t010000-2"),
        "{table}"
    );
    let (ok, table) = cli(
        &m,
        &["util", "sealer", "proving", "missed", "--miner", "10000"],
    );
    assert!(
        ok && table.contains(&a_id) && table.contains(&b_id),
        "{table}"
    );
    assert!(table.starts_with("JobID"), "{table}");
    let metrics = reqwest::blocking::get(m.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let missed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("damocles_wdpost_missed_deadlines_total{miner=\"10000\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(missed >= 2, "{metrics}");
    assert!(
        metrics.contains("damocles_faulty_sectors{miner=\"10000\"} 2"),
        "{metrics}"
    );
    let (status, body) = m.rest(Method::GET, "/proving/missed?limit=0", None);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_proof_after_its_window_closes_is_a_missed_deadline_on_sqlite() {
    a_proof_after_its_window_closes_is_a_missed_deadline(None);
}

#[test]
fn a_proof_after_its_window_closes_is_a_missed_deadline_on_mariadb() {
    if let Some(url) = mysql_database("deadlines") {
        a_proof_after_its_window_closes_is_a_missed_deadline(Some(url));
    }
}

/// A sealer thread held in PC1 (a slow processor in front of the real one) has its sector
/// aborted by an operator: the thread drops it at once, wipes it and takes new work.
#[test]
fn an_abort_stops_the_thread_sealing_the_sector_and_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start(d, None);
    let port = free_port();
    let config = worker_config(d, "w", &m, port, 1, "");
    append_config(&config, &slow_processor("pc1", 600, false));
    let w = Worker::start_config(d, "w", config, port);
    let thread = || w.list().into_iter().find(|t| t["index"] == 0).unwrap();
    let held = wait_for(Duration::from_secs(120), "the thread in PC1", || {
        let t = thread();
        (t["job_state"] == "TicketAssigned" && t["thread_state"]["state"] == "Running")
            .then(|| t["job_id"].as_str().unwrap().to_string())
    });
    let number = held.rsplit('-').next().unwrap().to_string();
    // The manager reaches the worker at the address its pings give.
    m.wait_for_workers(1);
    let (ok, out) = sectors_cli(&m, &["abort", "t010000", &number]);
    assert!(ok && out.contains("and stop w#0"), "{out}");
    assert_eq!(thread()["job_id"], held.as_str(), "a dry run stops nothing");
    let (ok, out) = sectors_cli(&m, &["abort", "t010000", &number, "--really-do-it"]);
    assert!(ok, "{out}");
    assert!(out.contains("thread w#0: stopped and freed"), "{out}");
    // The thread lets the sector go and works again (on a new sector), not paused.
    let next = wait_for(
        Duration::from_secs(30),
        "the thread free of the sector",
        || {
            let t = thread();
            (t["job_id"] != held.as_str() && t["thread_state"]["state"] != "Paused").then_some(t)
        },
    );
    assert!(next["last_error"].is_null(), "{next}");
    let s = sector(&m, number.parse().unwrap());
    assert_eq!(s["state"], "Aborted", "{s}");
    let log = w.proc.log_text();
    assert!(
        log.contains("state changed") && log.contains("Aborted"),
        "the abort step ran"
    );
}
