//! The REST API's OpenAPI document (`/openapi.json`) against a real manager and worker: every
//! operation it documents is served (without credentials a guarded one answers 401, as the
//! document says, and a public one answers at all, where an unknown route gets the server's
//! "no such endpoint"), and every GET's answer, on a cluster with a worker, a deal, a sector,
//! WindowPoSt jobs and audit rows, validates against the schema the document gives for its
//! status. (That the document has exactly the routes the server registers is a unit test of
//! the manager, over the one table both come from.)

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use damocles_tests::*;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

const WORKER: &str = "openapi-w";

/// The document's schema for the answer of `op` with `status` (its own code, else `default`),
/// when that answer is JSON; its `$ref`s resolve against the document's components.
fn answer_schema(doc: &Value, op: &Value, status: u16) -> Option<Value> {
    let responses = &op["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))?;
    let mut schema = response["content"]["application/json"]["schema"].clone();
    let obj = schema.as_object_mut()?;
    obj.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    obj.insert("components".into(), doc["components"].clone());
    Some(schema)
}

/// `path` with each `{param}` replaced by a value of this cluster.
fn concrete(path: &str, values: &[(&str, String)]) -> String {
    let mut out = path.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    assert!(!out.contains('{'), "no value for a parameter of {path}");
    out
}

#[test]
fn every_documented_operation_is_served_and_every_answer_matches_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = mysql_database("openapi");
    let m = Manager::start_with(d, db.clone(), free_port(), "[mock]\nauto_pledge = false\n");
    let w = Worker::start(d, WORKER, &m, 1, "");
    m.wait_for_workers(1);

    // Something in every list: a deal, a sector being sealed, an audit row, WindowPoSt jobs.
    let deal = Client::new()
        .post(m.url("/mock/deals"))
        .bearer_auth(m.token())
        .body(vec![7u8; 600])
        .send()
        .unwrap();
    assert_eq!(deal.status(), 200);
    let deal: Value = deal.json().unwrap();
    let cid = deal["piece_cid"].as_str().unwrap().to_string();
    let (status, body) = m.rest(
        Method::POST,
        "/sealer/sectors/pledge",
        Some(r#"{"count": 1}"#),
    );
    assert_eq!(status, 200, "{body}");
    let sector = wait_for(
        std::time::Duration::from_secs(60),
        "the pledged sector",
        || m.sectors().first().cloned(),
    );
    let number = sector["sector_number"].as_i64().unwrap().to_string();
    let (status, _) = m.rest(Method::POST, &format!("/workers/{WORKER}/drain"), None);
    assert_eq!(status, 200);
    if let Some(url) = &db {
        insert_fake_jobs(url, 2);
    }

    let doc: Value = reqwest::blocking::get(m.url("/openapi.json"))
        .unwrap()
        .json()
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let values = [
        ("name", WORKER.to_string()),
        ("idx", "0".to_string()),
        ("miner", "10000".to_string()),
        ("number", number),
        ("cid", cid),
        ("id", "fake-00000".to_string()),
    ];
    let client = Client::new();
    let not_served = |resp: reqwest::blocking::Response| -> bool {
        resp.status() == 404 && resp.text().unwrap_or_default().contains("no such endpoint")
    };
    // The probe tells a route the server lacks from one it has.
    assert!(not_served(client.patch(m.url("/workers")).send().unwrap()));
    assert!(not_served(
        client.get(m.url("/no/such/route")).send().unwrap()
    ));

    let mut operations = 0;
    let mut validated = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = m.url(&concrete(path, &values));
        for (method, op) in item.as_object().unwrap() {
            let Ok(verb) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            operations += 1;
            // Without credentials: a guarded operation is refused (and changes nothing), a
            // public one is served.
            let public = op["security"] == json!([{}]);
            let resp = client.request(verb.clone(), &url).send().unwrap();
            let status = resp.status().as_u16();
            if public {
                assert!(
                    !not_served(resp),
                    "{method} {path} is documented but not served"
                );
            } else {
                assert_eq!(
                    status,
                    401,
                    "{method} {path} without a token: {}",
                    resp.text().unwrap_or_default()
                );
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path}: 401 undocumented"
                );
            }
            if verb != Method::GET {
                continue;
            }
            // With the admin token: the answer is what the document says for its status.
            let resp = client.get(&url).bearer_auth(m.token()).send().unwrap();
            let status = resp.status().as_u16();
            let Some(schema) = answer_schema(&doc, op, status) else {
                continue;
            };
            let body: Value = resp
                .json()
                .unwrap_or_else(|e| panic!("GET {path} ({status}) did not answer JSON: {e}"));
            let validator = jsonschema::validator_for(&schema)
                .unwrap_or_else(|e| panic!("GET {path}: the document's schema: {e}"));
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "GET {path} ({status}) does not match its documented schema:\n{}\n{body:#}",
                errors.join("\n")
            );
            validated.push((path.clone(), status, body));
        }
    }
    assert!(operations >= 40, "only {operations} operations documented");
    let ok = |p: &str| {
        validated
            .iter()
            .find(|(path, status, _)| path == p && *status == 200)
            .map(|(_, _, body)| body.clone())
            .unwrap_or_else(|| panic!("GET {p} was not answered 200 and validated"))
    };
    // The lists that matter were not empty when they were validated.
    assert_eq!(ok("/workers").as_array().unwrap().len(), 1);
    assert!(!ok("/workers/{name}")["threads"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(!ok("/sectors").as_array().unwrap().is_empty());
    assert!(!ok("/mock/deals").as_array().unwrap().is_empty());
    assert!(!ok("/audit").as_array().unwrap().is_empty());
    assert!(ok("/workers/{name}/limits")["limits"].is_object());
    ok("/sectors/{miner}/{number}");
    if db.is_some() {
        assert_eq!(ok("/wdpost/jobs").as_array().unwrap().len(), 2);
    }
    drop(w);
}
