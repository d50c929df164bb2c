//! Both `/metrics` endpoints, scraped from a real manager and a real worker and read by a
//! Prometheus text-format parser: the worker's threads by state and its calls to the manager,
//! the manager's view of its workers, its JSON-RPC and database timings; label values escaped;
//! every metric the Grafana dashboard in `config-examples/` queries is served by one of them.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use damocles_tests::*;
use prometheus_parse::{Scrape, Value as PromValue};
use serde_json::json;

fn scrape(url: &str) -> (String, Scrape) {
    let text = reqwest::blocking::get(url).unwrap().text().unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = Scrape::parse(lines).unwrap_or_else(|e| panic!("{url}: {e}\n{text}"));
    (text, parsed)
}

/// The value of the sample `name` whose labels include `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .find(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => *v,
            PromValue::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            PromValue::Summary(_) => f64::NAN,
        })
}

/// The metric families a scrape's text declares with `# TYPE`.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Asserts the text format's grouping: each sample under its family's `# TYPE`, and a family's
/// samples together (a parser may take a family that comes back as a second one).
fn assert_grouped(text: &str) {
    let mut current = String::new();
    let mut done = BTreeSet::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let family = t.split_whitespace().next().unwrap().to_string();
            assert!(
                done.insert(family.clone()),
                "{family} declared twice:\n{text}"
            );
            current = family;
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            let ok = name == current
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(current.as_str()));
            assert!(
                ok,
                "{name} is outside its family's block (under {current}):\n{text}"
            );
        }
    }
}

#[test]
fn the_manager_and_the_worker_serve_metrics_a_prometheus_parser_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, None, free_port(), "[mock]\nauto_pledge = false\n");
    let w = Worker::start(d, "metrics-w", &m, 2, "");
    m.wait_for_workers(1);
    assert!(w.cli(&["pause", "--index", "0"]).status.success());
    // A method the manager does not serve is counted, under `other`, not under its name.
    let unknown = m.rpc_as("metrics-w", "Venus.NoSuchMethod\"\n", json!([]));
    assert!(unknown.is_err());

    // The worker: its threads by plan and state, and its calls to the manager.
    let worker_url = format!("http://127.0.0.1:{}/metrics", w.port);
    let (wtext, ws) = wait_for(
        Duration::from_secs(30),
        "the worker's pings counted",
        || {
            let (text, s) = scrape(&worker_url);
            let pings = value(
                &s,
                "damocles_jsonrpc_client_calls_total",
                &[("method", "Venus.WorkerPing"), ("outcome", "ok")],
            )?;
            (pings >= 1.0).then_some((text, s))
        },
    );
    let paused = value(
        &ws,
        "damocles_threads",
        &[("plan", "sealer"), ("state", "Paused")],
    );
    assert_eq!(paused, Some(1.0), "{wtext}");
    let all: f64 = ws
        .samples
        .iter()
        .filter(|x| x.metric == "damocles_threads")
        .filter_map(|x| match x.value {
            PromValue::Gauge(v) => Some(v),
            _ => None,
        })
        .sum();
    assert_eq!(all, 2.0, "{wtext}");
    for declared in [
        "damocles_worker_stage_duration_seconds",
        "damocles_worker_processor_restarts_total",
        "damocles_worker_params_generating",
    ] {
        assert!(families(&wtext).contains(declared), "{declared}: {wtext}");
    }

    // The manager: the worker's paused thread, as its ping said; its own timings.
    let manager_url = m.url("/metrics");
    let (mtext, ms) = wait_for(Duration::from_secs(30), "the pause in a ping", || {
        let (text, s) = scrape(&manager_url);
        let n = value(
            &s,
            "damocles_worker_threads",
            &[("worker", "metrics-w"), ("state", "paused")],
        )?;
        (n == 1.0).then_some((text, s))
    });
    let pings = value(
        &ms,
        "damocles_rpc_server_calls_total",
        &[("method", "Venus.WorkerPing"), ("outcome", "ok")],
    );
    assert!(pings.unwrap_or(0.0) >= 1.0, "{mtext}");
    let other = value(
        &ms,
        "damocles_rpc_server_calls_total",
        &[("method", "other"), ("outcome", "-32601")],
    );
    assert_eq!(other, Some(1.0), "{mtext}");
    assert!(!mtext.contains("NoSuchMethod"), "{mtext}");
    let timed = value(&ms, "damocles_db_call_duration_seconds", &[]);
    assert!(timed.unwrap_or(0.0) >= 1.0, "{mtext}");
    let ping_timed = value(
        &ms,
        "damocles_rpc_server_call_duration_seconds",
        &[("method", "Venus.WorkerPing")],
    );
    assert!(ping_timed.unwrap_or(0.0) >= 1.0, "{mtext}");

    assert_grouped(&wtext);
    assert_grouped(&mtext);

    // Every metric the dashboard queries is served by the manager or the worker.
    let served: BTreeSet<String> = families(&mtext).union(&families(&wtext)).cloned().collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config-examples/grafana-dashboard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in &exprs {
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("damocles_"));
        for name in names {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| served.contains(*f))
                .unwrap_or(name);
            assert!(served.contains(family), "{name} in {expr:?} is not served");
        }
    }
}
