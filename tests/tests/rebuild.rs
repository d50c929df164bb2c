//! Rebuild through the whole cluster: a real 2KiB sector is sealed and proven, its files are
//! lost, its WindowPoSt fails until the window closes and the sector is faulty; an operator
//! queues a rebuild, a `plan = "rebuild"` thread seals it again with its ticket (checking the
//! CommR is the chain's) and persists it, and the next WindowPoSt proves it again.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

fn cli(m: &Manager, args: &[&str]) -> (bool, String) {
    let out = m.cli(args);
    (out.status.success(), stdout(&out) + &stderr(&out))
}

/// `damocles-manager util sealer sectors rebuild t010000 <args>`.
fn rebuild(m: &Manager, args: &[&str]) -> (bool, String) {
    let mut all = vec!["util", "sealer", "sectors", "rebuild", "t010000"];
    all.extend_from_slice(args);
    cli(m, &all)
}

fn sector(m: &Manager, number: u64) -> Value {
    m.sectors()
        .into_iter()
        .find(|s| s["sector_number"] == number)
        .unwrap_or(Value::Null)
}

fn faulty(m: &Manager) -> Vec<u64> {
    let (_, f) = m.rest(Method::GET, "/proving/faults", None);
    f.as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["sector"].as_u64())
        .collect()
}

#[test]
fn a_sector_whose_files_are_lost_is_rebuilt_and_proven_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = "[mock]\ndeadline_interval = \"20s\"\ndeadlines = 1\n\n[task]\nretry_job_interval = \"1s\"\n";
    let m = Manager::start_with(d, None, free_port(), cfg);
    let port = free_port();
    let config = worker_config(d, "w", &m, port, 1, "");
    append_config(
        &config,
        &format!(
            "\n[[sealing_thread]]\nplan = \"rebuild\"\nlocation = \"{}\"\n\n[[sealing_thread]]\nplan = \"wdpost\"\n",
            d.join("w-rebuild").display()
        ),
    );
    let w = Worker::start_config(d, "w", config, port);

    // Sector 1 sealed, proven, and proven again by WindowPoSt; the sealer then stops.
    wait_for(Duration::from_secs(900), "sector 1 proven", || {
        (sector(&m, 1)["proof_state"] == "Landed").then_some(())
    });
    assert!(w.cli(&["pause", "--index", "0"]).status.success());
    let proven = |m: &Manager| {
        let (_, jobs) = m.rest(Method::GET, "/wdpost/jobs?all=true", None);
        jobs.as_array()
            .unwrap()
            .iter()
            .filter(|j| j["state"] == "Succeed")
            .count()
    };
    wait_for(Duration::from_secs(120), "a WindowPoSt of sector 1", || {
        (proven(&m) > 0).then_some(())
    });

    // Refusals first: a sector that does not exist, one not proven, no flag.
    let (ok, out) = rebuild(&m, &["99"]);
    assert!(!ok && out.contains("does not exist"), "{out}");
    let alloc = json!([{"AllowedMiners": null, "AllowedProofTypes": null}]);
    let other = m.rpc_as("other", "Venus.AllocateSector", alloc).unwrap();
    let n = other["ID"]["Number"].as_u64().unwrap().to_string();
    let (ok, out) = rebuild(&m, &[&n, "--really-do-it"]);
    assert!(!ok && out.contains("is not proven"), "{out}");
    let (ok, out) = rebuild(&m, &["1"]);
    assert!(
        ok && out.contains("would queue a rebuild") && out.contains("dry run"),
        "{out}"
    );
    assert!(
        sector(&m, 1)["rebuild"].is_null(),
        "a dry run queues nothing"
    );

    // The disk holding its replica is lost: WindowPoSt fails, the window closes, it is faulty.
    let store = d.join("remote");
    for sub in ["sealed", "cache"] {
        let p = store.join(sub).join("s-t010000-1");
        assert!(p.exists(), "{}", p.display());
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    wait_for(Duration::from_secs(120), "sector 1 faulty", || {
        faulty(&m).contains(&1).then_some(())
    });

    // Rebuilt: sealed again with its ticket, checked against the chain's CommR, persisted.
    let (ok, out) = rebuild(&m, &["1", "--really-do-it"]);
    assert!(ok && out.contains("queued for a rebuild"), "{out}");
    let (ok, out) = rebuild(&m, &["1", "--really-do-it"]);
    assert!(
        !ok && (out.contains("queued for a rebuild already") || out.contains("being rebuilt")),
        "{out}"
    );
    let (_, exported) = m.rest(Method::GET, "/sectors/10000/1/export", None);
    assert_eq!(exported["NeedRebuild"], true, "damocles' mark: {exported}");
    let done = wait_for(Duration::from_secs(600), "sector 1 rebuilt", || {
        let s = sector(&m, 1);
        (s["rebuild"]["state"] == "Done").then_some(s)
    });
    assert_eq!(done["persist_store"], "remote", "{done}");
    assert!(store.join("sealed").join("s-t010000-1").exists());
    let log = w.proc.log_text();
    assert!(log.contains("SealedChecked"), "the CommR was checked");
    let (_, exported) = m.rest(Method::GET, "/sectors/10000/1/export", None);
    assert_eq!(exported["NeedRebuild"], false, "{exported}");
    // The next WindowPoSt proves it: the fault is cleared.
    wait_for(Duration::from_secs(120), "sector 1 proven again", || {
        (!faulty(&m).contains(&1)).then_some(())
    });
    let threads = w.list();
    let rebuild = threads.iter().find(|t| t["plan"] == "rebuild").unwrap();
    assert!(rebuild["last_error"].is_null(), "{rebuild}");
    let (_, audit) = m.rest(Method::GET, "/audit", None);
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["action"] == "sector.rebuild"));
}
