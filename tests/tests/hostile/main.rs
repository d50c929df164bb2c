//! Generated hostile input on every port. proptest makes the requests: damocles' real calls
//! (`tests/golden`) with parts replaced, removed or added, calls of every method with random
//! parameters, unknown methods, broken envelopes and bytes that are not JSON, and every REST
//! route with random names, indexes, queries and bodies. Each goes out with no credential, a
//! wrong one, a revoked one, a worker's token where the admin's is needed, and the right one.
//!
//! Nothing may answer 5xx or an internal error, panic, or go down; and a refused request
//! changes nothing: the manager's tables (as its API shows them), the worker's threads and its
//! config file are compared before and after. Requests that carry no valid credential are
//! checked in groups (one comparison around each group); the others one by one, since the
//! right credential may make a legitimate change.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use damocles_actors::wire::auth::{unix_now, ControlKey};
use damocles_tests::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

mod gen;

use gen::{request, Cred, Port, Req, WRONG};

struct Cluster {
    m: Manager,
    w: Worker,
    admin: String,
    fuzzer: String,
    other: String,
    revoked: String,
    w1: String,
    http: reqwest::blocking::Client,
}

/// What the answer says: refused, and whether it failed inside (a bug, whatever the input).
struct Answer {
    status: u16,
    refused: bool,
    internal: Option<String>,
}

impl Cluster {
    fn send(&self, r: &Req) -> Answer {
        let url = match r.port {
            Port::Rpc | Port::Rest => self.m.url(&r.path),
            Port::WorkerRpc => format!("http://127.0.0.1:{}/", self.w.port),
        };
        let auth = match (&r.port, r.cred) {
            (_, Cred::None) => None,
            (_, Cred::Garbage) => Some("Bearer \u{1}not a token".to_string()),
            (Port::WorkerRpc, Cred::Wrong) => {
                Some(ControlKey::from_token(WRONG).sign(unix_now(), false, &r.body))
            }
            (Port::WorkerRpc, Cred::Revoked) => {
                Some(ControlKey::from_token(&self.revoked).sign(unix_now(), false, &r.body))
            }
            (Port::WorkerRpc, Cred::Worker) => Some(format!("Bearer {}", self.w1)),
            (Port::WorkerRpc, Cred::Right) => {
                Some(ControlKey::from_token(&self.w1).sign(unix_now(), false, &r.body))
            }
            (_, Cred::Wrong) => Some(format!("Bearer {WRONG}")),
            (_, Cred::Revoked) => Some(format!("Bearer {}", self.revoked)),
            (Port::Rpc, Cred::Worker) => Some(format!("Bearer {}", self.other)),
            (Port::Rpc, Cred::Right) => Some(format!("Bearer {}", self.fuzzer)),
            (Port::Rest, Cred::Worker) => Some(format!("Bearer {}", self.fuzzer)),
            (Port::Rest, Cred::Right) => Some(format!("Bearer {}", self.admin)),
        };
        let mut req = self
            .http
            .request(r.method.clone(), url)
            .header("Content-Type", "application/json")
            .body(r.body.clone());
        if let Some(a) = auth {
            if let Ok(v) = reqwest::header::HeaderValue::from_bytes(a.as_bytes()) {
                req = req.header("Authorization", v);
            }
        }
        let resp = req.send().unwrap_or_else(|e| panic!("{r:?}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.bytes().unwrap_or_default();
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let code = answer["error"]["code"].as_i64();
        let internal = match (status, code) {
            (500.., _) => Some(format!("http {status}")),
            // Server error, database unavailable, internal error.
            (_, Some(c @ (-32000 | -32003 | -32603))) => Some(format!("rpc error {c}")),
            _ => None,
        }
        .map(|what| format!("{what}: {}", String::from_utf8_lossy(&body)));
        let refused = status >= 400 || code.is_some();
        if refused && !matches!(r.port, Port::Rest) {
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(
                status == 413 || !message.is_empty(),
                "a refusal without a reason: {r:?}: {answer}"
            );
        }
        Answer {
            status,
            refused,
            internal,
        }
    }

    /// Everything a request could change: the manager's tables as its API shows them, the
    /// worker's threads and its config file.
    fn state(&self) -> Value {
        let mut out = manager_state(&self.m);
        let threads: Vec<Value> = self
            .w
            .list()
            .into_iter()
            .map(|t| json!([t["index"], t["thread_state"]["state"], t["job_id"]]))
            .collect();
        out["threads"] = Value::Array(threads);
        out["config"] = Value::from(std::fs::read_to_string(&self.w.config).unwrap());
        out
    }

    /// After a legitimate change: the worker's threads parked again, so nothing runs on its own.
    fn settle(&self) {
        for t in self.w.list() {
            let i = t["index"].as_u64().unwrap().to_string();
            let _ = self.w.cli(&["pause", "--index", &i]);
        }
    }

    fn check_alive(&mut self, what: &str) {
        for (name, p) in [("manager", &mut self.m.proc), ("worker", &mut self.w.proc)] {
            assert!(
                p.wait_exit(Duration::ZERO).is_none(),
                "the {name} went down after {what}:\n{}",
                p.log_text()
            );
        }
    }
}

fn hostile_input(db: Option<String>, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start_with(dir.path(), db, free_port(), "[mock]\nauto_pledge = false\n");
    let store = dir.path().join("remote");
    std::fs::create_dir_all(&store).unwrap();
    let port = free_port();
    let cfg = wdpost_config(dir.path(), "w1", &m, port, 1, &store, "");
    let w = Worker::start_config(dir.path(), "w1", cfg, port);
    m.wait_for_workers(1);
    let w1 = std::fs::read_to_string(dir.path().join("w1.token"))
        .unwrap()
        .trim()
        .to_string();
    let revoked = m.worker_token("gone");
    assert!(m
        .cli(&["util", "worker", "token", "revoke", "gone"])
        .status
        .success());
    let mut c = Cluster {
        admin: m.token(),
        fuzzer: m.worker_token("fuzzer"),
        other: m.worker_token("other"),
        revoked,
        w1,
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        m,
        w,
    };
    c.settle();
    // The first ping after the pause carries it.
    std::thread::sleep(Duration::from_secs(2));

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = request();
    let started = Instant::now();
    let (mut sent, mut refused, mut by_port) = (0, 0, [0usize; 3]);
    let mut before = c.state();
    while sent < rounds {
        // A group of requests that carry no valid credential, compared as one.
        let mut group = Vec::new();
        let mut valid = None;
        while group.len() < 25 && sent + group.len() < rounds {
            let r = strategy.new_tree(&mut runner).unwrap().current();
            if r.cred == Cred::Right || (r.cred == Cred::Worker && matches!(r.port, Port::Rpc)) {
                valid = Some(r);
                break;
            }
            group.push(r);
        }
        for r in &group {
            let a = c.send(r);
            assert!(a.internal.is_none(), "{r:?}: {}", a.internal.unwrap());
            assert!(a.refused || a.status < 300, "{r:?}");
            refused += usize::from(a.refused);
            by_port[port_index(&r.port)] += 1;
        }
        sent += group.len();
        c.check_alive("a group of requests without credentials");
        let after = c.state();
        if after != before {
            // Find the request that did it, for the report.
            panic!(
                "a request without a valid credential changed something; the group:\n{}\nbefore: {before}\nafter: {after}",
                group.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join("\n")
            );
        }
        if let Some(r) = valid {
            let a = c.send(&r);
            assert!(a.internal.is_none(), "{r:?}: {}", a.internal.unwrap());
            sent += 1;
            by_port[port_index(&r.port)] += 1;
            c.check_alive("a request with a valid credential");
            if a.refused {
                refused += 1;
                let after = c.state();
                assert_eq!(after, before, "a refused request changed something: {r:?}");
            } else {
                c.settle();
                before = c.state();
            }
        }
    }
    for (name, p) in [("manager", &c.m.proc), ("worker", &c.w.proc)] {
        let log = p.log_text();
        assert!(!log.contains("panicked"), "the {name} panicked:\n{log}");
    }
    println!(
        "hostile input: {sent} generated requests ({} manager RPC, {} REST, {} worker RPC), {refused} refused, in {:.1?}; no 5xx, no internal error, no panic, nothing down, nothing changed by a refusal",
        by_port[0],
        by_port[1],
        by_port[2],
        started.elapsed()
    );
}

fn port_index(p: &Port) -> usize {
    match p {
        Port::Rpc => 0,
        Port::Rest => 1,
        Port::WorkerRpc => 2,
    }
}

#[test]
fn generated_requests_on_sqlite() {
    hostile_input(None, 10_000);
}

#[test]
fn generated_requests_on_mysql() {
    if let Some(url) = mysql_database("hostile") {
        hostile_input(Some(url), 3_000);
    }
}

/// The issue's own reproduction: rounds of 40 good pings sent at once with 3 bad ones (a
/// thread's age of 10^16 seconds, a location longer than its column). Every good ping is
/// written; a bad one is clamped or refused alone, with the reason.
fn bad_pings_fail_no_good_ping(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), db);
    let workers: Vec<(String, String)> = (0..43)
        .map(|i| {
            let name = format!("w{i}");
            (m.worker_token(&name), name)
        })
        .collect();
    let ping = |name: &str, elapsed: u64, location: String| {
        json!([{
            "Name": name, "Dest": "127.0.0.1:9",
            "Summary": {"Threads": 1, "Empty": 0, "Paused": 1, "Errors": 0},
            "Threads": [{
                "location": location, "plan": "sealer", "job_id": null, "index": 0,
                "thread_state": {"state": "Paused", "elapsed": elapsed},
                "job_state": "", "job_stage": null, "last_error": null
            }]
        }])
    };
    for round in 0..5 {
        let results: Vec<(usize, Result<Value, Value>)> = std::thread::scope(|s| {
            let calls: Vec<_> = workers
                .iter()
                .enumerate()
                .map(|(i, (token, name))| {
                    let params = match i {
                        0 | 1 => ping(name, 10u64.pow(16), "/data".into()),
                        2 => ping(name, 5, "/".repeat(2000)),
                        _ => ping(name, 5, "/data".into()),
                    };
                    let m = &m;
                    s.spawn(move || (i, m.rpc_with(Some(token), "Venus.WorkerPing", params)))
                })
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        });
        for (i, r) in results {
            match i {
                // Clamped: an age no timestamp can hold is kept as the longest one can.
                0 | 1 => assert!(r.is_ok(), "round {round}: {r:?}"),
                2 => {
                    let e = r.unwrap_err();
                    assert_eq!(e["code"], -32602, "{e}");
                    assert!(
                        e["message"]
                            .as_str()
                            .unwrap()
                            .contains("location has 2000 characters; at most 1024"),
                        "{e}"
                    );
                }
                _ => assert!(r.is_ok(), "round {round}: good ping {i} refused: {r:?}"),
            }
        }
    }
    let (_, rows) = m.rest(Method::GET, "/workers", None);
    assert_eq!(
        rows.as_array().unwrap().len(),
        42,
        "every ping but the refused one is written"
    );
}

#[test]
fn bad_pings_fail_no_good_ping_on_sqlite() {
    bad_pings_fail_no_good_ping(None);
}

#[test]
fn bad_pings_fail_no_good_ping_on_mysql() {
    if let Some(url) = mysql_database("badpings") {
        bad_pings_fail_no_good_ping(Some(url));
    }
}
