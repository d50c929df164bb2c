//! A manager in mock mode and a worker seal real 2KiB sectors; operators pause, resume and
//! recover threads while it runs; the manager verifies every PoRep and rejects a tampered one.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use damocles_tests::*;
use serde_json::{json, Value};

fn thread(list: &[Value], idx: u64) -> &Value {
    list.iter().find(|t| t["index"] == idx).expect("thread")
}

fn state(t: &Value) -> &str {
    t["thread_state"]["state"].as_str().unwrap_or("")
}

#[test]
fn cluster_seals_real_sectors_while_operators_steer_threads() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let w = Worker::start(dir.path(), "worker-a", &m, 3, "");

    // All three threads reach C2; one runs it (c2 = 1), the others wait for the slot.
    let (running, waiting) = wait_for(
        Duration::from_secs(300),
        "one thread running C2 and one waiting",
        || {
            let list = w.list();
            let r = list
                .iter()
                .find(|t| state(t) == "Running" && t["job_state"] == "C1Done")?;
            let q = list
                .iter()
                .find(|t| state(t) == "Waiting" && t["job_state"] == "C1Done")?;
            Some((r["index"].as_u64()?, q["index"].as_u64()?))
        },
    );

    // Pause while waiting takes effect at once: the very next list shows it, no polling.
    // (Its latency is measured in BENCHMARKS.md, not asserted here.)
    let out = w.cli(&["pause", "--index", &waiting.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("thread #{waiting} paused"));
    assert_eq!(state(thread(&w.list(), waiting)), "Paused");
    assert!(
        w.list_lines().contains(&format!("#{waiting}: ")),
        "{}",
        w.list_lines()
    );

    // An unknown state is refused with the valid ones listed; the thread stays paused.
    let out = w.cli(&[
        "resume",
        "--index",
        &waiting.to_string(),
        "--state",
        "Bogus",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unknown state \"Bogus\"")
            && err.contains("valid states:")
            && err.contains("PC1Done"),
        "{err}"
    );
    assert_eq!(state(thread(&w.list(), waiting)), "Paused");

    // Pause inside a running step waits for the step to end, and says so everywhere at once.
    let out = w.cli(&["pause", "--index", &running.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "thread #{running} pauses when its running step ends"
        )),
        "{}",
        stdout(&out)
    );
    let t = thread(&w.list(), running).clone();
    assert_eq!(
        (state(&t), &t["pausing"]),
        ("Running", &Value::Bool(true)),
        "{t}"
    );
    let lines = w.list_lines();
    assert!(lines.contains("state=C1Done (pausing)"), "{lines}");
    // (The manager knows the worker from its first ping, a second after it started.)
    wait_for(
        Duration::from_secs(10),
        "pausing in the manager's view",
        || {
            let out = m.cli(&["util", "worker", "info", "worker-a"]);
            stdout(&out).contains("C1Done (pausing)").then_some(())
        },
    );

    // kill -9 of the C2 child mid-task: the task fails with a readable error and the thread pauses.
    let proc_name = thread(&w.list(), running)["thread_state"]["proc"]
        .as_str()
        .unwrap()
        .to_string();
    let pid: i32 = proc_name
        .trim_start_matches("ext(pid: ")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let err = wait_for(
        Duration::from_secs(30),
        "the thread to pause on the killed child",
        || {
            let list = w.list();
            let t = thread(&list, running);
            (state(t) == "Paused").then(|| t["last_error"].as_str().unwrap_or("").to_string())
        },
    );
    assert!(
        err.starts_with("permanent: c2: child process exited: c2"),
        "{err}"
    );
    let line = w.list_lines();
    assert!(
        line.contains(&format!("#{running}: "))
            && line.contains("paused=true")
            && line.contains("last_err=Some(\"permanent: c2: child process exited"),
        "{line}"
    );

    // The waiting thread goes back to PC1Done and redoes PC2 and what follows.
    let out = w.cli(&[
        "resume",
        "--index",
        &waiting.to_string(),
        "--state",
        "PC1Done",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("thread #{waiting} resumed from state PC1Done")
    );
    let sector = thread(&w.list(), waiting)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        Duration::from_secs(60),
        "PC2 to run again after the resume",
        || {
            let needle = format!("sector=Some(\"{sector}\") prev=PC1Done next=PC2Done");
            (w.proc.log_text().matches(&needle).count() >= 2).then_some(())
        },
    );

    // The killed child was started again; after resume the sector finishes.
    let out = w.cli(&["resume", "--index", &running.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let finished = wait_for(
        Duration::from_secs(900),
        "three sectors finished with verified proofs",
        || {
            let done: Vec<Value> = m
                .sectors()
                .into_iter()
                .filter(|s| s["state"] == "Finished" && s["proof_state"] == "Landed")
                .collect();
            (done.len() >= 3).then_some(done)
        },
    );
    for s in &finished {
        assert!(s["comm_r"].as_str().is_some_and(|c| c.len() == 64), "{s}");
        assert!(s["persist_store"] == "remote", "{s}");
        let name = format!("s-t010000-{}", s["sector_number"]);
        assert!(
            dir.path().join("remote/sealed").join(&name).is_file(),
            "persisted sealed file of {name}"
        );
        assert!(
            dir.path()
                .join("remote/cache")
                .join(&name)
                .join("p_aux")
                .is_file(),
            "persisted cache of {name}"
        );
    }
    assert!(m.proc.log_text().matches("PoRep proof verified").count() >= 3);
    let lines = w.list_lines();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines
            .lines()
            .all(|l| l.contains("sector_id=") && l.contains("paused=")),
        "{lines}"
    );

    // A tampered proof of a real sector is rejected, never accepted.
    let s = &finished[0];
    let mut proof = base64::engine::general_purpose::STANDARD
        .decode(s["proof"].as_str().unwrap())
        .unwrap();
    proof[10] ^= 0xff;
    let id = json!({"Miner": 10000, "Number": s["sector_number"]});
    let forged =
        json!([id, {"Proof": base64::engine::general_purpose::STANDARD.encode(&proof)}, true]);
    // Another worker may not touch it at all.
    let e = m
        .rpc_as("intruder", "Venus.SubmitProof", forged.clone())
        .unwrap_err();
    assert_eq!(e["code"], 11002, "not the intruder's sector: {e}");
    let resp = m
        .rpc_as(
            "worker-a",
            "Venus.SubmitProof",
            json!([id, {"Proof": base64::engine::general_purpose::STANDARD.encode(&proof)}, true]),
        )
        .unwrap();
    assert_eq!(resp["Res"], 4, "Rejected: {resp}");
    assert_eq!(resp["Desc"], "invalid proof");
}
