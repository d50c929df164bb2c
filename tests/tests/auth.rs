//! Identity on every port: each state-changing REST route, worker-facing RPC method and worker
//! management method is tried with no credential, a wrong one, a revoked one and another
//! worker's, and each try is refused with nothing changed (rows and files compared before and
//! after). Tokens are made, listed and revoked with the CLI, as an operator would.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use damocles_actors::wire::auth::{unix_now, ControlKey};
use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A revoked worker token.
fn revoked(m: &Manager) -> String {
    let token = m.worker_token("gone");
    let out = m.cli(&["util", "worker", "token", "revoke", "gone"]);
    assert!(out.status.success(), "{}", stderr(&out));
    token
}

fn rpc_matrix(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), db.clone());
    // "owner" pings and takes a sector, and (on MySQL, where a job can be put in) a job.
    let summary = json!({"Threads": 1, "Empty": 0, "Paused": 0, "Errors": 0});
    let ping = json!([{"Name": "owner", "Dest": "127.0.0.1:1", "Summary": summary}]);
    m.rpc_as("owner", "Venus.WorkerPing", ping.clone()).unwrap();
    let sector = m
        .rpc_as("owner", "Venus.AllocateSector", json!([{}]))
        .unwrap();
    let sid = sector["ID"].clone();
    m.rpc_as("owner", "Venus.AssignTicket", json!([sid]))
        .unwrap();
    let job = db.as_ref().map(|url| {
        insert_fake_jobs(url, 1);
        let got = m
            .rpc_as("owner", "Venus.WdPoStAllocateJobs", json!([{}, 1, "owner"]))
            .unwrap();
        got[0]["Id"].as_str().unwrap().to_string()
    });

    let other = m.worker_token("intruder");
    let gone = revoked(&m);
    let ticket = json!({"Ticket": "AQ==", "Epoch": 0});
    let mut calls = vec![
        ("Venus.WorkerPing", ping),
        ("Venus.AllocateSector", json!([{}])),
        ("Venus.AcquireDeals", json!([sid, {}])),
        ("Venus.AssignTicket", json!([sid])),
        (
            "Venus.SubmitPreCommit",
            json!([sector, {"CommR": vec![1u8; 32], "CommD": vec![2u8; 32], "Ticket": ticket}, true]),
        ),
        ("Venus.StoreReserveSpace", json!([sid, 1, ["remote"]])),
        ("Venus.SubmitPersisted", json!([sid, "remote"])),
        ("Venus.SubmitPersistedEx", json!([sid, "remote", false])),
        ("Venus.WaitSeed", json!([sid, 5])),
        ("Venus.SubmitProof", json!([sid, {"Proof": "AAAA"}, true])),
        (
            "Venus.ReportState",
            json!([sid, {"Worker": {"Instance": "owner", "Location": "/x"}, "StateChange": {"Prev": "A", "Next": "B", "Event": "None"}, "Failure": null}]),
        ),
        ("Venus.ReportFinalized", json!([sid])),
        ("Venus.ReportAborted", json!([sid, "stolen"])),
        ("Venus.WdPoStAllocateJobs", json!([{}, 1, "owner"])),
    ];
    if let Some(id) = &job {
        calls.push(("Venus.WdPoStHeartbeatJobs", json!([[id], "owner"])));
        calls.push((
            "Venus.WdPoStFinishJob",
            json!([id, null, "finished by another"]),
        ));
    }
    let before = manager_state(&m);
    for (method, params) in &calls {
        for (who, token) in [
            ("no token", None),
            ("a wrong token", Some(WRONG)),
            ("a revoked token", Some(gone.as_str())),
            ("another worker's token", Some(other.as_str())),
        ] {
            // Allocating for oneself is no harm: the intruder gets its own sector.
            if who == "another worker's token" && *method == "Venus.AllocateSector" {
                continue;
            }
            let e = m
                .rpc_with(token, method, params.clone())
                .err()
                .unwrap_or_else(|| panic!("{method} with {who} was taken"));
            let want = match who {
                "another worker's token" => [11002, 11005],
                _ => [11003, 11003],
            };
            assert!(
                want.contains(&e["code"].as_i64().unwrap_or(0)),
                "{method} with {who}: {e}"
            );
        }
    }
    assert_eq!(
        manager_state(&m),
        before,
        "a refused call changed something"
    );
    // The owner still can.
    m.rpc_as("owner", "Venus.AssignTicket", json!([sid]))
        .unwrap();
}

#[test]
fn worker_calls_need_the_callers_own_token_sqlite() {
    rpc_matrix(None);
}

#[test]
fn worker_calls_need_the_callers_own_token_mysql() {
    if let Some(db) = mysql_database("authrpc") {
        rpc_matrix(Some(db));
    }
}

#[test]
fn operator_routes_need_the_admin_token_and_tokens_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let w = Worker::start(dir.path(), "w", &m, 1, "sealing.allowed_miners = [1]");
    m.wait_for_workers(1);
    let worker_token = m.worker_token("w");
    let gone = revoked(&m);
    let routes: [(Method, &str, Option<&str>); 19] = [
        (Method::POST, "/workers/w/threads/0/pause", None),
        (Method::POST, "/workers/w/threads/0/resume", Some("{}")),
        (Method::DELETE, "/workers/w", None),
        (Method::POST, "/workers/w/limits", Some(r#"{"pc1": 1}"#)),
        (Method::POST, "/workers/w/drain", None),
        (Method::POST, "/workers/w/undrain", None),
        (
            Method::POST,
            "/sealer/sectors/pledge",
            Some(r#"{"count": 1}"#),
        ),
        (Method::POST, "/wdpost/jobs/x/reset", None),
        (Method::DELETE, "/wdpost/jobs/x", None),
        (Method::DELETE, "/wdpost/jobs?really_do_it=true", None),
        (Method::POST, "/workers/new/token", None),
        (Method::DELETE, "/workers/w/token", None),
        (Method::GET, "/tokens", None),
        (Method::GET, "/workers/w", None),
        (
            Method::POST,
            "/sectors/10000/1/abort?really_do_it=true",
            None,
        ),
        (
            Method::POST,
            "/sectors/10000/1/restore?really_do_it=true",
            None,
        ),
        (
            Method::POST,
            "/sectors/import?really_do_it=true&store=s",
            Some("{}"),
        ),
        (Method::GET, "/proving/faults", None),
        (Method::GET, "/ui/states", None),
    ];
    let config = std::fs::read_to_string(&w.config).unwrap();
    let threads = || {
        w.list()
            .into_iter()
            .map(|t| (t["index"].clone(), t["thread_state"]["state"].clone()))
            .collect::<Vec<_>>()
    };
    let (before, threads_before) = (manager_state(&m), threads());
    let http = reqwest::blocking::Client::new();
    for (method, path, body) in &routes {
        for (who, token) in [
            ("no token", None),
            ("a wrong token", Some(WRONG)),
            ("a revoked worker token", Some(gone.as_str())),
            ("a worker's token", Some(worker_token.as_str())),
        ] {
            let mut req = http.request(method.clone(), m.url(path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(*b);
            }
            let status = req.send().unwrap().status().as_u16();
            assert_eq!(status, 401, "{method} {path} with {who}");
        }
    }
    // The worker pinged meanwhile: its counters are the same, its ping time is not compared.
    let without_ping_times = |mut state: Value| {
        for w in state["/workers"].as_array_mut().into_iter().flatten() {
            w.as_object_mut().unwrap().remove("last_ping_at");
        }
        state
    };
    assert_eq!(
        without_ping_times(manager_state(&m)),
        without_ping_times(before),
        "a refused route changed something"
    );
    assert_eq!(threads(), threads_before);
    assert_eq!(std::fs::read_to_string(&w.config).unwrap(), config);

    // The CLI: list shows who has a token; a second create is refused; revoke, then create anew.
    let list = stdout(&m.cli(&["util", "worker", "token", "list"]));
    assert!(list.starts_with("Worker"), "{list}");
    let line = |name: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {list}"))
            .to_string()
    };
    assert!(line("w").ends_with("active"), "{list}");
    assert!(line("gone").contains("revoked"), "{list}");
    let again = m.cli(&["util", "worker", "token", "create", "w"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already has a token"),
        "{}",
        stderr(&again)
    );
    assert!(m
        .cli(&["util", "worker", "token", "revoke", "w"])
        .status
        .success());
    let e = m.rpc_with(Some(&worker_token), "Venus.StoreBasicInfo", json!(["x"]));
    assert_eq!(e.unwrap_err()["code"], 11003, "revoked at once");
    let fresh = m.cli(&["util", "worker", "token", "create", "w"]);
    assert!(fresh.status.success(), "{}", stderr(&fresh));
    let token = stdout(&fresh).trim().to_string();
    assert_eq!(token.len(), 64, "one token on stdout: {token}");
    assert!(m
        .rpc_with(Some(&token), "Venus.StoreBasicInfo", json!(["x"]))
        .is_ok());
    // The database keeps no token, only hashes.
    let db = std::fs::read(m.home.join("damocles.sqlite")).unwrap();
    assert!(!db.windows(64).any(|win| win == token.as_bytes()));
}

#[test]
fn the_management_port_takes_changes_only_from_its_manager() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let w = Worker::start(dir.path(), "w", &m, 2, "sealing.allowed_miners = [1]");
    m.wait_for_workers(1);
    let other = m.worker_token("intruder");
    let gone = revoked(&m);
    let url = format!("http://127.0.0.1:{}/", w.port);
    let calls = [
        ("VenusWorker.WorkerPause", json!([0])),
        ("VenusWorker.WorkerResume", json!([0, null])),
        ("VenusWorker.WorkerSetEnv", json!(["X", "1"])),
        ("VenusWorker.WorkerRemoveEnv", json!(["X"])),
        ("VenusWorker.WorkerSetLimits", json!([{"pc1": 1}])),
    ];
    let config = std::fs::read_to_string(&w.config).unwrap();
    let states = || {
        w.list()
            .into_iter()
            .map(|t| {
                (
                    t["index"].clone(),
                    t["thread_state"]["state"].clone(),
                    t["job_id"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = states();
    let http = reqwest::blocking::Client::new();
    for (method, params) in &calls {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        for (who, auth) in [
            ("no credential", None),
            ("a garbled one", Some("DamoclesControl 1.zz".to_string())),
            (
                "a wrong key",
                Some(ControlKey::from_token(WRONG).sign(unix_now(), false, body.as_bytes())),
            ),
            (
                "a revoked token's key",
                Some(ControlKey::from_token(&gone).sign(unix_now(), false, body.as_bytes())),
            ),
            (
                "another worker's key",
                Some(ControlKey::from_token(&other).sign(unix_now(), false, body.as_bytes())),
            ),
            ("a worker token as bearer", Some(format!("Bearer {other}"))),
        ] {
            let mut req = http.post(&url).header("Content-Type", "application/json");
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            let resp: Value = req.body(body.clone()).send().unwrap().json().unwrap();
            assert_eq!(resp["error"]["code"], 11005, "{method} with {who}: {resp}");
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(states(), before, "a refused call changed a thread");
    assert_eq!(std::fs::read_to_string(&w.config).unwrap(), config);

    // Its manager can: pause through the REST API, and a resume into Aborted needs force.
    let (status, body) = m.rest(Method::POST, "/workers/w/threads/1/pause", None);
    assert_eq!((status, &body["paused"]), (200, &json!(true)), "{body}");
    let (status, body) = m.rest(
        Method::POST,
        "/workers/w/threads/1/resume",
        Some(r#"{"state": "Aborted"}"#),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--force"),
        "{body}"
    );
    let (status, body) = m.rest(Method::POST, "/workers/w/threads/1/resume", None);
    assert_eq!((status, &body["resumed"]), (200, &json!(true)), "{body}");
    // Reads stay open (a damocles-manager's `util worker info` cannot sign).
    let resp: Value = http
        .post(&url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "VenusWorker.WorkerList", "params": []}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp["result"].as_array().map(Vec::len), Some(2), "{resp}");
    // The local CLI signs with the config's token.
    assert!(w.cli(&["pause", "--index", "0"]).status.success());
    assert!(w.cli(&["resume", "--index", "0"]).status.success());
}
