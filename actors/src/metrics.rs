//! The process's own Prometheus metrics (counters, gauges, histograms by label), shared by the
//! worker and the manager, and the text format both `/metrics` endpoints answer in. Every metric
//! is declared once in `METRICS` (name, kind, help), so the exposition always carries `# HELP`
//! and `# TYPE`, and a name not declared there is a bug caught by the tests.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into `BUCKETS` (`_seconds`).
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The content type both `/metrics` endpoints answer with (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Every metric this registry keeps: name, kind, help.
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "damocles_jsonrpc_client_calls_total",
        Kind::Counter,
        "JSON-RPC calls this process made (a worker to its manager, a manager to its workers), by method and outcome (ok, refused, unreachable, bad_answer).",
    ),
    (
        "damocles_jsonrpc_client_call_duration_seconds",
        Kind::Histogram,
        "How long this process's JSON-RPC calls took, by method, failover included.",
    ),
    (
        "damocles_worker_stage_duration_seconds",
        Kind::Histogram,
        "How long processor tasks took, by stage and outcome (ok, failed), from the task's hand-over to its child (a restarting child's queue included) to its answer.",
    ),
    (
        "damocles_worker_processor_restarts_total",
        Kind::Counter,
        "Processor children restarted after they died or were killed, by stage.",
    ),
    (
        "damocles_worker_params_generating",
        Kind::Gauge,
        "1 while this worker generates the Groth parameters of a circuit.",
    ),
    (
        "damocles_worker_params_generation_seconds",
        Kind::Gauge,
        "How long the last generation of a circuit's Groth parameters took on this machine.",
    ),
    (
        "damocles_rpc_server_calls_total",
        Kind::Counter,
        "JSON-RPC calls the manager answered, by method and outcome (ok, or the error's code).",
    ),
    (
        "damocles_rpc_server_call_duration_seconds",
        Kind::Histogram,
        "How long the manager took to answer JSON-RPC calls, by method (WdPoStAllocateJobs is the claim, WdPoStFinishJob the finish, WorkerPing includes the wait for its batch).",
    ),
    (
        "damocles_db_call_duration_seconds",
        Kind::Histogram,
        "How long the manager's database calls took, the wait for a connection included.",
    ),
    (
        "damocles_db_errors_total",
        Kind::Counter,
        "The manager's failed database calls, by kind (unavailable, invalid, query).",
    ),
];

/// Histogram bounds, in seconds: from a fast query to a 2KiB-to-32GiB sealing step.
pub const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default, Clone)]
struct Hist {
    /// Observations at or under each bound of `BUCKETS`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    values: BTreeMap<(&'static str, Labels), f64>,
    hists: BTreeMap<(&'static str, Labels), Hist>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> (&'static str, Labels) {
    debug_assert!(
        METRICS.iter().any(|(n, _, _)| *n == name),
        "metric {name} is not declared in METRICS"
    );
    (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
    )
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    // A panic elsewhere while holding the lock leaves numbers that are still numbers.
    let mut r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut r)
}

/// Adds one to a counter.
pub fn inc(name: &'static str, labels: &[(&'static str, &str)]) {
    let k = key(name, labels);
    with(|r| *r.values.entry(k).or_insert(0.0) += 1.0);
}

/// Sets a gauge.
pub fn set(name: &'static str, labels: &[(&'static str, &str)], v: f64) {
    let k = key(name, labels);
    with(|r| {
        r.values.insert(k, v);
    });
}

/// Records one observation of a histogram.
pub fn observe(name: &'static str, labels: &[(&'static str, &str)], took: Duration) {
    let k = key(name, labels);
    let secs = took.as_secs_f64();
    with(|r| {
        let h = r.hists.entry(k).or_insert_with(|| Hist {
            counts: vec![0; BUCKETS.len()],
            ..Hist::default()
        });
        for (c, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if secs <= *bound {
                *c += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    });
}

/// A Prometheus label value: backslash, double quote and newline escaped, as the text format
/// requires (a worker's name is whatever its operator chose).
pub fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels_text(labels: &[(&'static str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// `# HELP` and `# TYPE` of a metric.
pub fn header(name: &str, kind: Kind, help: &str) -> String {
    format!("# HELP {name} {help}\n# TYPE {name} {}\n", kind.name())
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Every metric recorded so far, in the text format. A declared metric with no sample yet
/// still gets its `# HELP` and `# TYPE`.
pub fn render() -> String {
    with(|r| {
        let mut out = String::new();
        for (name, kind, help) in METRICS {
            out += &header(name, *kind, help);
            if *kind == Kind::Histogram {
                for ((n, labels), h) in r.hists.iter().filter(|((n, _), _)| n == name) {
                    for (c, bound) in h.counts.iter().zip(BUCKETS) {
                        let l = labels_text(labels, Some(("le", number(*bound))));
                        out += &format!("{n}_bucket{l} {c}\n");
                    }
                    let inf = labels_text(labels, Some(("le", "+Inf".into())));
                    out += &format!("{n}_bucket{inf} {}\n", h.count);
                    let l = labels_text(labels, None);
                    out += &format!("{n}_sum{l} {}\n{n}_count{l} {}\n", number(h.sum), h.count);
                }
            } else {
                for ((n, labels), v) in r.values.iter().filter(|((n, _), _)| n == name) {
                    out += &format!("{n}{} {}\n", labels_text(labels, None), number(*v));
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_for_the_text_format() {
        assert_eq!(label("plain-1"), "plain-1");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn counters_gauges_and_histograms_render_in_the_text_format() {
        inc("damocles_db_errors_total", &[("kind", "un\"available")]);
        inc("damocles_db_errors_total", &[("kind", "un\"available")]);
        set(
            "damocles_worker_params_generating",
            &[("circuit", "c")],
            1.0,
        );
        observe(
            "damocles_worker_stage_duration_seconds",
            &[("stage", "pc1"), ("outcome", "ok")],
            Duration::from_millis(300),
        );
        let text = render();
        assert!(text.contains("# TYPE damocles_db_errors_total counter\n"));
        assert!(text.contains("damocles_db_errors_total{kind=\"un\\\"available\"} 2\n"));
        assert!(text.contains("damocles_worker_params_generating{circuit=\"c\"} 1\n"));
        let h = "damocles_worker_stage_duration_seconds";
        assert!(text.contains(&format!(
            "{h}_bucket{{stage=\"pc1\",outcome=\"ok\",le=\"0.1\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "{h}_bucket{{stage=\"pc1\",outcome=\"ok\",le=\"0.5\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "{h}_bucket{{stage=\"pc1\",outcome=\"ok\",le=\"+Inf\"}} 1\n"
        )));
        assert!(text.contains(&format!("{h}_count{{stage=\"pc1\",outcome=\"ok\"}} 1\n")));
        // Every declared metric is described, with a name Prometheus takes.
        for (name, kind, _) in METRICS {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            let unit_ok = match kind {
                Kind::Counter => name.ends_with("_total"),
                Kind::Histogram => name.ends_with("_seconds"),
                Kind::Gauge => !name.ends_with("_total"),
            };
            assert!(unit_ok, "{name} does not follow the naming conventions");
        }
    }
}
