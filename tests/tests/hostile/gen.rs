//! The requests proptest makes for the hostile-input tests: damocles' golden calls mutated,
//! random calls of every method, broken envelopes, random REST routes, each with a credential.

use proptest::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

pub(crate) const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Field names of damocles' structs and our queries: random objects use them, so that
/// generated values reach the decoders' fields and not only their "unknown field" path.
pub(crate) const FIELDS: &[&str] = &[
    "Name",
    "Dest",
    "Version",
    "Summary",
    "Threads",
    "Empty",
    "Paused",
    "Errors",
    "ID",
    "Miner",
    "Number",
    "ProofType",
    "Ticket",
    "Epoch",
    "CommR",
    "CommD",
    "Proof",
    "Worker",
    "Instance",
    "Location",
    "StateChange",
    "Prev",
    "Next",
    "Event",
    "Failure",
    "Level",
    "Desc",
    "Id",
    "Proofs",
    "Faults",
    "AllowedMiners",
    "AllowedProofTypes",
    "index",
    "thread_state",
    "state",
    "elapsed",
    "count",
    "fill",
    "once_per_worker",
    "pc1",
    "c2",
    "window_post",
];

/// Worker names a request may name in its parameters.
pub(crate) const NAMES: &[&str] = &["fuzzer", "nobody", "..", "a\"b", "%00", "w%2F1", "ünï", "-"];

/// Worker names a REST path may name: never a worker that exists. The real worker's admin
/// routes would legitimately remove or drain it (and its next ping would change the tables);
/// the fuzzer's may hold an address a generated ping gave, which the manager would then call.
/// Random names have no digits, dots or colons: the manager calls a name that parses as an
/// address.
pub(crate) const REST_NAMES: &[&str] = &["nobody", "..", "a\"b", "%00", "w%2F1", "ünï", "-"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cred {
    None,
    Garbage,
    Wrong,
    Revoked,
    /// A worker's token (on REST, where the admin's is needed).
    Worker,
    /// The right one for the port: the fuzzer worker's token on `/rpc/v0`, the admin token on
    /// REST, the manager's signature on the worker's port.
    Right,
}

#[derive(Debug, Clone)]
pub(crate) enum Port {
    Rpc,
    Rest,
    WorkerRpc,
}

#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) port: Port,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) cred: Cred,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            0i64,
            -1,
            1,
            1023,
            1024,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN
        ])
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
        (0usize..70_000).prop_map(|n| Value::from("x".repeat(n))),
        prop::sample::select(FIELDS).prop_map(Value::from),
        prop::sample::select(NAMES).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(FIELDS).prop_map(String::from),
                    "[A-Za-z]{1,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every node of `v`, as paths of indexes and keys.
pub(crate) fn paths(v: &Value, here: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = here.clone();
                p.push(i.to_string());
                paths(x, p, out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                let mut p = here.clone();
                p.push(k.clone());
                paths(x, p, out);
            }
        }
        _ => {}
    }
}

pub(crate) fn node<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?),
        Value::Object(o) => o.get_mut(k),
        _ => None,
    })
}

/// `params` with each edit applied: the node it picks replaced by the new value, removed from
/// its array or object, or given a new sibling.
pub(crate) fn mutate(mut params: Value, edits: &[(usize, u8, Value)]) -> Value {
    for (pick, how, new) in edits {
        let mut all = Vec::new();
        paths(&params, Vec::new(), &mut all);
        let path = &all[pick % all.len()];
        match (how % 3, path.split_last()) {
            (0, _) | (_, None) => {
                if let Some(n) = node(&mut params, path) {
                    *n = new.clone();
                }
            }
            (1, Some((last, parent))) => match node(&mut params, parent) {
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                }
                Some(Value::Object(o)) => {
                    o.remove(last);
                }
                _ => {}
            },
            (_, Some((_, parent))) => match node(&mut params, parent) {
                Some(Value::Array(a)) => a.push(new.clone()),
                Some(Value::Object(o)) => {
                    o.insert(format!("Extra{}", o.len()), new.clone());
                }
                _ => {}
            },
        }
    }
    params
}

pub(crate) fn golden(file: &str) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(format!("{}/golden/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        // Addresses stay on this machine, whatever a generated call makes of them.
        .replace("10.0.0.5", "127.0.0.1");
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_string(),
                c["params"].clone(),
            )
        })
        .collect()
}

pub(crate) fn cred() -> impl Strategy<Value = Cred> {
    prop::sample::select(vec![
        Cred::None,
        Cred::Garbage,
        Cred::Wrong,
        Cred::Revoked,
        Cred::Worker,
        Cred::Right,
        Cred::Right,
    ])
}

/// A JSON-RPC body for one of `calls`: the real call mutated, its method with random
/// parameters, a random method, a broken envelope, or bytes that are not JSON.
pub(crate) fn rpc_body(calls: Vec<(String, Value)>) -> impl Strategy<Value = Vec<u8>> {
    let names: Vec<String> = calls.iter().map(|(m, _)| m.clone()).collect();
    let envelope = |method: Value, params: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            .to_string()
            .into_bytes()
    };
    prop_oneof![
        4 => (
            prop::sample::select(calls),
            prop::collection::vec((any::<usize>(), any::<u8>(), json_value()), 1..4)
        )
            .prop_map(move |((m, p), edits)| envelope(Value::from(m), mutate(p, &edits))),
        2 => (
            prop::sample::select(names),
            prop::collection::vec(json_value(), 0..5)
        )
            .prop_map(move |(m, p)| envelope(Value::from(m), Value::Array(p))),
        1 => ("\\PC{0,30}", json_value()).prop_map(move |(m, p)| envelope(Value::from(m), p)),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A REST call: a route with random names, indexes, query and body, or a random path.
pub(crate) fn rest_req() -> impl Strategy<Value = (Method, String, Vec<u8>)> {
    let name = prop_oneof![
        prop::sample::select(REST_NAMES).prop_map(String::from),
        "[a-z%_~-]{1,300}"
    ];
    let idx = prop_oneof![
        (0u64..4).prop_map(|i| i.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        "[a-z%]{1,8}"
    ];
    let query = prop::collection::vec(
        (
            prop::sample::select(vec![
                "all",
                "detail",
                "limit",
                "since_secs",
                "worker",
                "really_do_it",
                "x",
            ]),
            prop_oneof![
                any::<i64>().prop_map(|i| i.to_string()),
                Just("9300000000000000000".to_string()),
                Just("true".to_string()),
                "[a-z%0-9]{0,12}"
            ],
        ),
        0..3,
    )
    .prop_map(|q| {
        q.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    let body = prop_oneof![
        Just(Vec::new()),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        any::<u32>().prop_map(|n| json!({ "count": n }).to_string().into_bytes()),
        "\\PC{0,12}".prop_map(|s| json!({ "state": s }).to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    let route = prop::sample::select(vec![
        (Method::GET, "/healthz"),
        (Method::GET, "/metrics"),
        (Method::GET, "/workers"),
        (Method::GET, "/workers/{name}"),
        (Method::DELETE, "/workers/{name}"),
        (Method::GET, "/workers/{name}/limits"),
        (Method::POST, "/workers/{name}/limits"),
        (Method::POST, "/workers/{name}/drain"),
        (Method::POST, "/workers/{name}/undrain"),
        (Method::POST, "/workers/{name}/threads/{idx}/pause"),
        (Method::POST, "/workers/{name}/threads/{idx}/resume"),
        (Method::POST, "/workers/{name}/token"),
        (Method::DELETE, "/workers/{name}/token"),
        (Method::GET, "/tokens"),
        (Method::GET, "/audit"),
        (Method::GET, "/sched/log"),
        (Method::POST, "/sealer/sectors/pledge"),
        (Method::GET, "/sectors"),
        (Method::GET, "/sectors/{name}/{idx}"),
        (Method::GET, "/sectors/{name}/{idx}/export"),
        (Method::POST, "/sectors/{name}/{idx}/abort"),
        (Method::POST, "/sectors/{name}/{idx}/restore"),
        (Method::POST, "/sectors/import"),
        (Method::GET, "/proving/faults"),
        (Method::GET, "/proving/missed"),
        (Method::GET, "/mock/deals"),
        (Method::POST, "/mock/deals"),
        (Method::GET, "/piecestore/{name}"),
        (Method::POST, "/sealer/snap/{name}/fetch"),
        (Method::GET, "/sealer/snap/{name}/candidates"),
        (Method::GET, "/wdpost/jobs"),
        (Method::DELETE, "/wdpost/jobs"),
        (Method::DELETE, "/wdpost/jobs/{name}"),
        (Method::POST, "/wdpost/jobs/{name}/reset"),
        (Method::PUT, "/workers"),
        (Method::GET, "/{name}"),
    ]);
    (route, name, idx, query, body).prop_map(|((method, route), name, idx, query, body)| {
        let mut path = route.replace("{name}", &name).replace("{idx}", &idx);
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        (method, path, body)
    })
}

pub(crate) fn request() -> impl Strategy<Value = Req> {
    let mut worker_calls = golden("venus_worker.json");
    worker_calls.push(("VenusWorker.WorkerLimits".into(), json!([])));
    worker_calls.push(("VenusWorker.WorkerSetLimits".into(), json!([{"pc1": 1}])));
    prop_oneof![
        5 => (rpc_body(golden("venus.json")), cred()).prop_map(|(body, cred)| Req {
            port: Port::Rpc,
            method: Method::POST,
            path: "/rpc/v0".into(),
            cred,
            body,
        }),
        3 => (rest_req(), cred()).prop_map(|((method, path, body), cred)| Req {
            port: Port::Rest,
            method,
            path,
            cred,
            body,
        }),
        2 => (rpc_body(worker_calls), cred()).prop_map(|(body, cred)| Req {
            port: Port::WorkerRpc,
            method: Method::POST,
            path: "/".into(),
            cred,
            body,
        }),
    ]
}
