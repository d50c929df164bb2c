//! The seeds' commands and files as written: seed 002 starts the manager with
//! `damocles-manager daemon run --miner --poster --worker-prover` and configures its WindowPoSt
//! job keeper in `~/.damocles-manager/sector-manager.cfg` under `[Common.Proving.WorkerProver]`.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::NaiveDateTime;
use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

const SEED_CFG: &str = r#"
[Common.API]
Chain = "/ip4/127.0.0.1/tcp/3453"

[Common.Proving.WorkerProver]
JobMaxTry = 1
HeartbeatTimeout = "2s"
JobLifetime = "25h0m0s"

[[Miners]]
Actor = 20000
"#;

fn at(v: &Value) -> NaiveDateTime {
    v.as_str().unwrap().parse::<NaiveDateTime>().unwrap()
}

fn the_seeds_command_line_and_config_set_the_job_keeper(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("manager-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("sector-manager.cfg"), SEED_CFG).unwrap();
    let args = ["daemon", "run", "--miner", "--poster", "--worker-prover"];
    let m = Manager::start_cmd(dir.path(), Some(url.clone()), free_port(), "", &args);
    assert!(m.proc.log_text().contains("damocles config read"));

    // The miner comes from the config.
    let s = m
        .rpc_as("prover", "Venus.AllocateSector", json!([{}]))
        .unwrap();
    assert_eq!(s["ID"]["Miner"], 20000, "{s}");

    // A claimed job that is never heartbeated fails after the seed's HeartbeatTimeout (2s, where
    // the default is 15s), and with JobMaxTry = 1 it is not tried again.
    insert_fake_jobs(&url, 1);
    let jobs = m
        .rpc_as(
            "prover",
            "Venus.WdPoStAllocateJobs",
            json!([{}, 1, "prover"]),
        )
        .unwrap();
    // The claim's id is `<id>@<attempt>`; the operators' view shows the job's id.
    let wire_id = jobs[0]["Id"].as_str().unwrap().to_string();
    let id = wire_id.split('@').next().unwrap().to_string();
    assert_ne!(id, wire_id);
    let job = |m: &Manager| {
        let (_, all) = m.rest(Method::GET, "/wdpost/jobs?all=true&detail=true", None);
        all.as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id.as_str())
            .cloned()
            .unwrap()
    };
    let failed = wait_for(Duration::from_secs(60), "the job failed", || {
        Some(job(&m)).filter(|j| j["state"] == "Failed")
    });
    assert_eq!(failed["error_reason"], "heartbeat timeout", "{failed}");
    let waited = at(&failed["finished_at"]) - at(&failed["heartbeat_at"]);
    assert!(
        waited >= chrono::Duration::seconds(2) && waited < chrono::Duration::seconds(15),
        "failed {waited} after its last heartbeat: {failed}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let later = job(&m);
    assert_eq!(
        (later["state"].as_str(), later["try_num"].as_i64()),
        (Some("Failed"), Some(1))
    );

    // damocles' flag for another prover is refused with the reason.
    let out = std::process::Command::new(bin("damocles-manager"))
        .env("DAMOCLES_PATH", &home)
        .args(["daemon", "run", "--miner", "--ext-prover"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--ext-prover is not supported"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_seeds_command_line_and_config_set_the_job_keeper_mysql() {
    if let Some(db) = mysql_database("seedcfg") {
        the_seeds_command_line_and_config_set_the_job_keeper(db);
    }
}

#[test]
fn a_setting_in_both_files_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("manager-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("sector-manager.cfg"), SEED_CFG).unwrap();
    let cfg = dir.path().join("manager.toml");
    std::fs::write(&cfg, "[task]\nheartbeat_timeout = \"15s\"\n").unwrap();
    let out = std::process::Command::new(bin("damocles-manager"))
        .env("DAMOCLES_PATH", &home)
        .args([
            "daemon",
            "run",
            "--miner",
            "--poster",
            "--worker-prover",
            "-c",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Common.Proving.WorkerProver.HeartbeatTimeout")
            && err.contains("[task] heartbeat_timeout = 15s in manager.toml"),
        "{err}"
    );
}
