//! Benchmarks, each run side by side with its baseline in the same run (numbers in
//! BENCHMARKS.md). Build and run in release:
//!
//! ```sh
//! cargo build --release --bins --features damocles-manager/mysql,damocles-tests/bench-mysql
//! target/release/bench worker 64            # worker list, pause→paused (worker and REST), 64 threads
//! target/release/bench heartbeat 2000 8 mysql://root@127.0.0.1:3306/test      # every ping new
//! target/release/bench heartbeat 2000 8 mysql://root@127.0.0.1:3306/test 10   # 10% changed
//! target/release/bench claims 20000 32 mysql://root@127.0.0.1:3306/test skip_locked
//! target/release/bench idle 64 300          # an idle worker's memory and CPU, 5 minutes
//! target/release/bench galera 3000 32 3     # a three-node Galera cluster of its own
//! target/release/bench scale 100000 600 mysql://root@127.0.0.1:3306/test   # 10 minutes
//! target/release/bench metrics 8           # what recording metrics adds to a call
//! target/release/bench post 6               # needs the 2KiB WindowPoSt parameters
//! target/release/bench seal 3               # needs the 2KiB PoRep parameters
//! ```

// A benchmark that fails to set up panics: there is nothing else to report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use damocles_actors::wire::auth::{unix_now, ControlKey};
use damocles_tests::*;
use serde_json::{json, Value};

mod claims;
mod galera;
mod heartbeat;
mod idle;
mod metrics;
mod scale;
mod seal;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("worker") => worker(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(64)),
        Some("heartbeat") => heartbeat::heartbeat(
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(2000),
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(8),
            args.get(4).map_or("mysql://root@127.0.0.1:3306/test", String::as_str),
            args.get(5).and_then(|n| n.parse().ok()).unwrap_or(100),
        ),
        Some("claims") => claims::claims(
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20_000),
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(32),
            args.get(4).map_or("mysql://root@127.0.0.1:3306/test", String::as_str),
            args.get(5).map_or("skip_locked", String::as_str),
        ),
        Some("galera") => galera::galera(
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3000),
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(32),
            args.get(4).and_then(|n| n.parse().ok()).unwrap_or(3),
        ),
        Some("idle") => idle::idle(
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(64),
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(300),
        ),
        Some("scale") => scale::scale(
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000),
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(600),
            args.get(4).map_or("mysql://root@127.0.0.1:3306/test", String::as_str),
            args.get(5).and_then(|n| n.parse().ok()).unwrap_or(8),
        ),
        Some("metrics") => metrics::bench(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(8)),
        Some("post") => post(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(6)),
        Some("seal") => seal::seal(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3)),
        Some("snap") => snap(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(6)),
        _ => eprintln!("usage: bench worker [threads] | bench heartbeat [workers] [threads-per-worker] [mysql-url] [changed-percent] | bench claims [jobs] [claimers] [mysql-url] [skip_locked|conditional] | bench idle [threads] [seconds] | bench galera [jobs] [claimers] [nodes] | bench scale [workers] [seconds] [mysql-url] [threads-per-worker] | bench metrics [threads] | bench post [runs] | bench seal [runs] | bench snap [runs]"),
    }
}

/// The HTTP client the ping generators share: it drops an idle connection when a worker's
/// JSON-RPC client does, before the manager may close it.
fn pinger() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(damocles_actors::wire::jsonrpc::CLIENT_IDLE)
        .build()
        .unwrap()
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "n={} p50={:?} p99={:?} max={:?}",
        v.len(),
        p(0.5),
        p(0.99),
        v[v.len() - 1]
    )
}

fn call(client: &reqwest::blocking::Client, url: &str, method: &str, params: Value) -> Value {
    let resp: Value = client
        .post(url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    resp["result"].clone()
}

fn worker(threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let w = Worker::start(
        dir.path(),
        "bench",
        &m,
        threads,
        "sealing.allowed_miners = [1]",
    );
    let url = format!("http://127.0.0.1:{}/", w.port);
    let client = reqwest::blocking::Client::new();
    for _ in 0..50 {
        call(&client, &url, "VenusWorker.WorkerList", json!([]));
    }
    let time = |method: &str, n: usize| {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                call(&client, &url, method, json!([]));
                t.elapsed()
            })
            .collect::<Vec<_>>()
    };
    println!(
        "baseline  WorkerVersion (HTTP + JSON-RPC, no actors): {}",
        percentiles(time("VenusWorker.WorkerVersion", 1000))
    );
    let list = time("VenusWorker.WorkerList", 1000);
    println!(
        "WorkerList with {threads} threads (asks every thread actor): {}",
        percentiles(list)
    );

    // Pause and resume change the worker: they are signed with the key derived from its token,
    // as the manager signs them.
    let key = ControlKey::from_token(&m.worker_token("bench"));
    let signed = |method: &str, params: Value| {
        let body = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
        )
        .unwrap();
        let auth = key.sign(unix_now(), false, &body);
        let resp: Value = client
            .post(&url)
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(resp["error"].is_null(), "{method}: {resp}");
    };
    let mut pause = Vec::new();
    for i in 0..threads {
        let t = Instant::now();
        signed("VenusWorker.WorkerPause", json!([i]));
        loop {
            let l = call(&client, &url, "VenusWorker.WorkerList", json!([]));
            if l[i]["thread_state"]["state"] == "Paused" {
                break;
            }
        }
        pause.push(t.elapsed());
        signed("VenusWorker.WorkerResume", json!([i, null]));
    }
    println!(
        "pause → paused seen in WorkerList, {threads} threads: {}",
        percentiles(pause)
    );
    rest_pause(&m, threads);
}

/// What an operator sees: `POST /workers/bench/threads/<i>/pause` on the manager (which signs
/// and forwards it), then `GET /workers/bench` (which asks the worker) until thread i shows
/// Paused; beside it, `GET /healthz` of the same manager, the floor of any REST call.
fn rest_pause(m: &Manager, threads: usize) {
    m.wait_for_workers(1);
    let healthz = m.url("/healthz");
    let client = reqwest::blocking::Client::new();
    let health: Vec<Duration> = (0..1000)
        .map(|_| {
            let t = Instant::now();
            assert!(client.get(&healthz).send().unwrap().status().is_success());
            t.elapsed()
        })
        .collect();
    println!("baseline  GET /healthz: {}", percentiles(health));
    let mut pause = Vec::new();
    let mut polls = 0;
    for round in 0..4 {
        for i in 0..threads {
            let t = Instant::now();
            let (status, body) = m.rest(
                reqwest::Method::POST,
                &format!("/workers/bench/threads/{i}/pause"),
                None,
            );
            assert_eq!(status, 200, "{body}");
            loop {
                polls += 1;
                let (_, w) = m.rest(reqwest::Method::GET, "/workers/bench", None);
                if w["threads"][i]["thread_state"]["state"] == "Paused" {
                    break;
                }
            }
            pause.push(t.elapsed());
            let (status, body) = m.rest(
                reqwest::Method::POST,
                &format!("/workers/bench/threads/{i}/resume"),
                Some("{}"),
            );
            assert_eq!(status, 200, "round {round}: {body}");
        }
    }
    println!(
        "REST pause → Paused in GET /workers/bench, {} pauses ({polls} GETs): {}",
        pause.len(),
        percentiles(pause)
    );
}

/// A worker-facing call with a token (or none); the result must not be an error.
fn call_as(
    client: &reqwest::blocking::Client,
    url: &str,
    token: Option<&str>,
    method: &str,
    params: Value,
) -> Value {
    let mut req = client
        .post(url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp: Value = req.send().unwrap().json().unwrap();
    assert!(resp["error"].is_null(), "{method}: {resp}");
    resp["result"].clone()
}

/// Tokens for `names`, made through the manager's REST API as `util worker token create` does.
fn tokens(m: &Manager, names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            let (status, body) =
                m.rest(reqwest::Method::POST, &format!("/workers/{n}/token"), None);
            assert_eq!(status, 201, "{body}");
            body["token"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Two managers on their own databases: one with `[auth] workers = "required"` (callers send
/// their tokens), one with "optional" (callers send none). Their difference is what
/// authentication costs.
fn managers(
    dir: &std::path::Path,
    base_url: &str,
    tag: &str,
    extra: &str,
) -> [(Manager, String); 2] {
    std::env::set_var(MYSQL_URL_ENV, base_url);
    ["required", "optional"].map(|mode| {
        let db = mysql_database(&format!("{tag}_{mode}")).unwrap();
        let cfg = format!("{extra}\n[auth]\nworkers = \"{mode}\"\n");
        let m = Manager::start_with(&dir.join(mode), Some(db.clone()), free_port(), &cfg);
        (m, db)
    })
}

/// Runs two paths `passes` times each, taking turns A B B A A B … so that neither always runs
/// on a warmer or a busier machine. `run(path, pass)` gives (calls, time, latencies). Returns
/// both tallies and, per pass, the rate of path 0 over the rate of path 1.
fn side_by_side(
    names: [&str; 2],
    passes: usize,
    mut run: impl FnMut(usize, usize) -> (usize, Duration, Vec<Duration>),
) -> ([Tally; 2], Vec<f64>) {
    let mut tallies = names.map(Tally::new);
    let mut ratios = Vec::new();
    for pass in 0..passes {
        let order = if pass.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        };
        let mut rate = [0f64; 2];
        for which in order {
            let (n, t, l) = run(which, pass);
            rate[which] = n as f64 / t.as_secs_f64();
            tallies[which].add(n, t, l);
        }
        ratios.push(rate[0] / rate[1]);
    }
    (tallies, ratios)
}

/// What authentication costs: the rates of all passes together, the median of the per-pass
/// ratios (each pass runs both paths back to back), and the CPU time the token check itself
/// takes (a SHA-256 of the token and a lookup among 2 000), against the CPU time a call gets.
fn report_cost(what: &str, tallies: &[Tally; 2], mut ratios: Vec<f64>) {
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let spread = format!(
        "{:.1}%..{:.1}%",
        100.0 * (1.0 - ratios[ratios.len() - 1]),
        100.0 * (1.0 - ratios[0])
    );
    let toks: Vec<String> = (0..2000).map(|i| format!("{i:064x}")).collect();
    let map: std::collections::HashMap<[u8; 32], usize> = toks
        .iter()
        .enumerate()
        .map(|(i, t)| (damocles_actors::wire::auth::token_hash(t), i))
        .collect();
    let n = 200_000;
    let started = Instant::now();
    let mut found = 0;
    for i in 0..n {
        let h = damocles_actors::wire::auth::token_hash(&toks[i % toks.len()]);
        found += map.get(&h).copied().unwrap_or(0) % 2;
    }
    let check = started.elapsed() / n as u32;
    assert!(found > 0);
    // Two cores serve `rate` calls a second: each call gets 2 s / rate of CPU.
    let budget = Duration::from_secs_f64(2.0 / tallies[1].rate());
    println!(
        "authentication costs {:.1}% of the {what} rate overall; per pass median {:.1}% (range {spread}); the token check takes {check:?} of CPU, {:.2}% of the {budget:?} a {what} gets",
        100.0 * (1.0 - tallies[0].rate() / tallies[1].rate()),
        100.0 * (1.0 - median),
        100.0 * check.as_secs_f64() / budget.as_secs_f64(),
    );
}

/// `(what, calls, time, latencies)` summed over the passes of one path.
struct Tally {
    name: String,
    calls: usize,
    time: Duration,
    lat: Vec<Duration>,
}

impl Tally {
    fn new(name: &str) -> Tally {
        Tally {
            name: name.into(),
            calls: 0,
            time: Duration::ZERO,
            lat: Vec::new(),
        }
    }

    fn add(&mut self, calls: usize, time: Duration, lat: Vec<Duration>) {
        self.calls += calls;
        self.time += time;
        self.lat.extend(lat);
    }

    fn rate(&self) -> f64 {
        self.calls as f64 / self.time.as_secs_f64()
    }
}

/// Seals one real 2KiB CC sector with the worker's own processors (no C2) in `p(..)`: its
/// PC2 output (CommR, CommD).
fn seal_cc(p: &dyn Fn(&str) -> String) -> Value {
    std::fs::create_dir_all(p("cache")).unwrap();
    let prover_id = damocles_actors::wire::venus::prover_id(10000);
    let pieces = ProcessorChild::start("add_pieces")
        .call(json!({"seal_proof": 5, "staged_file": p("staged")}))["pieces"]
        .clone();
    let pc1 = ProcessorChild::start("pc1").call(json!({"seal_proof": 5, "cache_dir": p("cache"), "staged_file": p("staged"),
        "sealed_file": p("sealed"), "prover_id": prover_id, "sector_number": 1, "ticket": vec![7u8; 32], "pieces": pieces}));
    ProcessorChild::start("pc2").call(
        json!({"seal_proof": 5, "pc1_out": pc1, "staged_file": p("staged"),
        "cache_dir": p("cache"), "sealed_file": p("sealed")}),
    )
}

/// `task` of `stage`, `runs` times: in one warm processor child (the line-JSON protocol and JSON
/// encoding included, as a worker's thread uses it), then as bare library calls in one process
/// (`damocles-worker bench-stage`). Prints both; returns the child's last output.
fn child_and_bare(
    stage: &str,
    what: &str,
    task: &Value,
    runs: usize,
    dir: &std::path::Path,
) -> Value {
    let mut warm = ProcessorChild::start(stage);
    let mut child_times = Vec::new();
    let mut out = Value::Null;
    for _ in 0..runs {
        let t = Instant::now();
        out = warm.call(task.clone());
        child_times.push(t.elapsed());
    }
    drop(warm);
    let file = dir.join(format!("{stage}.json"));
    std::fs::write(&file, task.to_string()).unwrap();
    let bare = bare_calls(&[
        "bench-stage",
        stage,
        &file.display().to_string(),
        &runs.to_string(),
    ]);
    let bare_times: Vec<Duration> = bare
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect();
    let show = |name: &str, v: &[Duration]| {
        println!(
            "{name}: 1st {:?}; 2nd and later {}",
            v[0],
            percentiles(v[1..].to_vec())
        );
    };
    show(
        &format!("warm {stage} processor child ({what})"),
        &child_times,
    );
    show(
        &format!("bare {stage} library call in one process"),
        &bare_times,
    );
    let p50 = |v: &[Duration]| {
        let mut v = v[1..].to_vec();
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    println!(
        "{stage}: child / bare (p50 of 2nd and later) = {:.3}",
        p50(&child_times) / p50(&bare_times)
    );
    out
}

/// `damocles-worker <args>` (one of its hidden bench commands): its output.
fn bare_calls(args: &[&str]) -> String {
    let out = std::process::Command::new(bin("damocles-worker"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// WindowPoSt of one real 2KiB sector, `runs` times: in one warm `window_post` processor child,
/// next to the bare library call in one process.
fn post(runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let pc2 = seal_cc(&p);
    let task = json!({"miner_id": 10000, "proof_type": "StackedDrgWindow2KiBV1_2",
        "replicas": [{"sector_id": 1, "comm_r": pc2["comm_r"], "cache_dir": p("cache"), "sealed_file": p("sealed")}],
        "seed": vec![3u8; 32]});
    let out = child_and_bare("window_post", "2KiB, 1 sector", &task, runs, dir.path());
    assert_eq!(out["proofs"].as_array().map(Vec::len), Some(1));
}

/// Snap-up of one real 2KiB CC sector, `runs` times each: `snap_encode` of a sector's worth of
/// data into it, then `snap_prove` of that update, each in a warm processor child next to the
/// bare library call in one process.
fn snap(runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let pc2 = seal_cc(&p);
    // The data to encode: the worker's add_pieces of the sector's size.
    let pieces = ProcessorChild::start("add_pieces")
        .call(json!({"seal_proof": 5, "staged_file": p("data")}))["pieces"]
        .clone();
    let encode = json!({"seal_proof": 5, "sector_key": p("sealed"), "sector_key_cache": p("cache"),
        "staged_file": p("data"), "update_file": p("update"), "update_cache": p("update-cache"),
        "pieces": pieces});
    let out = child_and_bare("snap_encode", "2KiB", &encode, runs, dir.path());
    let prove = json!({"seal_proof": 5, "comm_r_old": pc2["comm_r"], "comm_r_new": out["comm_r_new"],
        "comm_d_new": out["comm_d_new"], "sector_key": p("sealed"), "sector_key_cache": p("cache"),
        "update_file": p("update"), "update_cache": p("update-cache")});
    let proof = child_and_bare("snap_prove", "2KiB", &prove, runs, dir.path());
    assert!(proof["proof"].as_str().is_some_and(|s| !s.is_empty()));
}
