//! Bad requests to the manager's REST API and JSON-RPC: each refused with its reason, and
//! nothing changed.

use damocles_tests::{mysql_database, Manager, Worker};
use reqwest::Method;
use serde_json::{json, Value};

use super::{audit, IDLE};

fn bad_requests_are_refused_and_change_nothing(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), db);
    let w = Worker::start(dir.path(), "worker-b", &m, 2, IDLE);
    m.wait_for_workers(1);
    let before = audit(&m).len();
    let client = reqwest::blocking::Client::new();

    // No token, or a wrong one: 401 and nothing happens.
    for auth in [None, Some("Bearer nope")] {
        for (method, path) in [
            (Method::GET, "/workers"),
            (Method::POST, "/workers/worker-b/threads/0/pause"),
            (Method::DELETE, "/workers/worker-b"),
        ] {
            let mut req = client.request(method, m.url(path));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let resp = req.send().unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{path}");
            let body: Value = resp.json().unwrap();
            assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        }
    }
    assert!(w
        .list()
        .iter()
        .all(|t| t["thread_state"]["state"] != "Paused"));
    assert_eq!(audit(&m).len(), before);
    // Health and metrics are open.
    assert_eq!(
        client
            .get(m.url("/healthz"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let metrics = client
        .get(m.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("damocles_workers 1"), "{metrics}");

    let cases: Vec<(Method, &str, Option<&str>, u16, &str)> = vec![
        (
            Method::POST,
            "/workers/worker-b/threads/x/pause",
            None,
            400,
            "bad thread index \"x\"",
        ),
        (
            Method::POST,
            "/workers/worker-b/threads/-1/pause",
            None,
            400,
            "bad thread index",
        ),
        (
            Method::POST,
            "/workers/worker-b/threads/99/pause",
            None,
            404,
            "worker #99 not found",
        ),
        (
            Method::POST,
            "/workers/nobody/threads/0/pause",
            None,
            404,
            "unknown worker \"nobody\"",
        ),
        (Method::GET, "/workers/nobody", None, 404, "unknown worker"),
        (Method::DELETE, "/workers/nobody", None, 404, "not found"),
        (
            Method::POST,
            "/workers/worker-b/threads/0/resume",
            Some("{bad json"),
            400,
            "malformed body",
        ),
        (
            Method::POST,
            "/workers/worker-b/threads/0/resume",
            Some(r#"{"stat": "C1Done"}"#),
            400,
            "unknown field",
        ),
        (
            Method::POST,
            "/workers/worker-b/threads/0/resume",
            Some(r#"{"state": "Bogus"}"#),
            400,
            "valid states: Empty, Allocated",
        ),
        (
            Method::POST,
            "/workers/worker-b/threads/0/resume",
            Some(r#"{"state": "SnapEncoded"}"#),
            400,
            "not handled by the sealer plan",
        ),
        (Method::GET, "/nowhere", None, 404, "no such endpoint"),
    ];
    for (method, path, body, status, needle) in cases {
        let (got, resp) = m.rest(method.clone(), path, body);
        assert_eq!(got, status, "{method} {path} {body:?}: {resp}");
        let msg = resp["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{method} {path}: {msg:?} should contain {needle:?}"
        );
    }
    // Oversize bodies: 413.
    let big = format!("{{\"state\": \"{}\"}}", "x".repeat(200_000));
    let (got, _) = m.rest(
        Method::POST,
        "/workers/worker-b/threads/0/resume",
        Some(&big),
    );
    assert_eq!(got, 413);
    // Resuming a thread that is not paused changes nothing and says so.
    let (got, resp) = m.rest(Method::POST, "/workers/worker-b/threads/0/resume", None);
    assert_eq!((got, &resp["resumed"]), (200, &json!(false)), "{resp}");
    // Nothing changed on the worker.
    assert!(w
        .list()
        .iter()
        .all(|t| t["thread_state"]["state"] != "Paused" && t["job_id"].is_null()));
    // Bad worker-facing RPCs are JSON-RPC errors.
    let e = m.rpc_as("tester", "Venus.WorkerPing", json!([{"Name": "", "Dest": "x", "Summary": {"Threads": 0, "Empty": 0, "Paused": 0, "Errors": 0}}])).unwrap_err();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("worker name is required"),
        "{e}"
    );
    let e = m.rpc_as("tester", "Venus.Nope", json!([])).unwrap_err();
    assert_eq!(e["code"], -32601);
    let e = m.rpc("Venus.AssignTicket", json!([{"Miner": 10000, "Number": 1}]));
    assert_eq!(e.unwrap_err()["code"], 11003, "no token, no answer");
    let e = m.rpc_as("tester", "Venus.AllocateSector", json!([{}, "tester", 0]));
    let msg = e.unwrap_err()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("wrong param count (method 'Venus.AllocateSector'): 3 != 1"),
        "damocles' count, checked as go-jsonrpc does: {msg}"
    );
    let e = m
        .rpc_as(
            "tester",
            "Venus.AssignTicket",
            json!([{"Miner": 10000, "Number": 424242}]),
        )
        .unwrap_err();
    assert_eq!(
        e["code"], 11001,
        "unknown sectors make the worker abort: {e}"
    );
}

#[test]
fn bad_requests_are_refused_and_change_nothing_sqlite() {
    bad_requests_are_refused_and_change_nothing(None);
}

#[test]
fn bad_requests_are_refused_and_change_nothing_mysql() {
    if let Some(db) = mysql_database("badreq") {
        bad_requests_are_refused_and_change_nothing(Some(db));
    }
}
