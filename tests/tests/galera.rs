//! Several managers on a multi-master cluster: three MariaDB Galera nodes, a manager on each,
//! 32 claimers spread over them and a worker that lists two managers. Two nodes claiming the
//! same row conflict at commit (error 1213); the managers retry that themselves, so a claimer
//! never sees it. Beside them, sector allocations through every manager take numbers from one
//! counter row. Killing one node with -9 loses no job, no ping and no sector: its manager's
//! claimers, allocators and worker go on through the others.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

const JOBS: usize = 3_000;
const CLAIMERS: usize = 32;
const ALLOCATORS: usize = 6;

/// Seconds since the worker's last ping, as manager `m` reads it.
fn ping_age(m: &Manager, name: &str) -> Option<i64> {
    let (status, workers) = m.rest(Method::GET, "/workers", None);
    assert_eq!(status, 200, "{workers}");
    workers.as_array()?.iter().find(|w| w["name"] == name)?["last_ping_age_secs"].as_i64()
}

/// The sector numbers an allocator was answered, and its failures with the manager of each.
type Allocated = (Vec<u64>, Vec<(usize, String)>);

/// Sector allocations through manager `a % 3`, moving to the next one on a failure, until
/// `stop`.
fn allocate_until(urls: &[String], token: &str, a: usize, stop: &AtomicBool) -> Allocated {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (mut got, mut errors) = (Vec::new(), Vec::new());
    let mut at = a % urls.len();
    while !stop.load(Ordering::SeqCst) {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": "Venus.AllocateSector", "params": [{}]});
        let number = http
            .post(&urls[at])
            .bearer_auth(token)
            .json(&body)
            .send()
            .and_then(|r| r.json::<Value>())
            .map_err(|e| format!("{e:?}"))
            .and_then(|v| v["result"]["ID"]["Number"].as_u64().ok_or(v.to_string()));
        match number {
            Ok(n) => got.push(n),
            Err(e) => {
                errors.push((at, e));
                assert!(errors.len() < 10_000, "no manager answers");
                at = (at + 1) % urls.len();
            }
        }
    }
    (got, errors)
}

#[test]
fn managers_on_a_galera_cluster_share_the_queue_through_conflicts_and_a_dead_node() {
    let dir = tempfile::tempdir().unwrap();
    // The node folders sit right in the temporary folder: MariaDB's socket paths must be short.
    let Some(mut nodes) = galera_cluster(dir.path(), 3) else {
        return;
    };
    // The claimers never heartbeat: keep the keeper from re-queueing their jobs meanwhile.
    let extra = "[task]\nheartbeat_timeout = \"1h\"\n";
    let db_urls: Vec<String> = nodes.iter().map(OwnMariaDb::url).collect();
    let managers = Manager::one_on_each(dir.path(), &db_urls, extra);
    insert_fake_jobs(&nodes[0].url(), JOBS);

    // Tokens made on one node, seen on the others once replicated: well before they are used.
    let tokens: Vec<String> = (0..CLAIMERS)
        .map(|c| managers[0].worker_token(&format!("claimer-{c}")))
        .collect();
    let sealer_tokens: Vec<String> = (0..ALLOCATORS)
        .map(|a| managers[0].worker_token(&format!("sealer-{a}")))
        .collect();

    // A worker whose first manager is the one on the node that dies, its second another.
    let wdir = dir.path().join("w");
    std::fs::create_dir_all(&wdir).unwrap();
    let token = managers[0].token_file(&wdir, "walker");
    let port = free_port();
    let config = worker_config_at(
        &wdir,
        "walker",
        managers[2].port,
        Some(&token),
        port,
        1,
        "sealing.allowed_miners = [1]\n",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let one = format!(
        "rpc_client.addr = \"/ip4/127.0.0.1/tcp/{}\"",
        managers[2].port
    );
    let both = format!(
        "rpc_client.addr = [\"/ip4/127.0.0.1/tcp/{}\", \"http://127.0.0.1:{}\"]",
        managers[2].port, managers[0].port
    );
    assert!(text.contains(&one), "{text}");
    std::fs::write(&config, text.replace(&one, &both)).unwrap();
    let worker = Worker::start_config(&wdir, "walker", config, port);
    wait_for(Duration::from_secs(30), "the worker's first ping", || {
        ping_age(&managers[0], "walker")
    });

    let urls: Arc<Vec<String>> = Arc::new(managers.iter().map(|m| m.url("/rpc/v0")).collect());
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..CLAIMERS)
        .map(|c| {
            let (urls, claimed, errors, count) =
                (urls.clone(), claimed.clone(), errors.clone(), count.clone());
            let token = tokens[c].clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                // Each claimer starts on a manager of its own and moves on when it fails.
                let mut at = c % urls.len();
                for n in 0.. {
                    let body = json!({"jsonrpc": "2.0", "id": n, "method": "Venus.WdPoStAllocateJobs",
                        "params": [{"AllowedMiners": null, "AllowedProofTypes": null}, 1, format!("claimer-{c}")]});
                    let resp: Result<Vec<Value>, String> = http
                        .post(&urls[at])
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .and_then(|r| r.json::<Value>())
                        .map_err(|e| format!("{e:?}"))
                        .and_then(|v| v["result"].as_array().cloned().ok_or(v.to_string()));
                    match resp {
                        // Rows others hold are skipped, and they claim them: empty means all
                        // taken.
                        Ok(got) if got.is_empty() => return,
                        Ok(got) => {
                            count.fetch_add(got.len(), Ordering::SeqCst);
                            let mut ids = claimed.lock().unwrap();
                            ids.extend(got.iter().map(|j| (j["Id"].as_str().unwrap().to_string(), c)));
                        }
                        Err(e) => {
                            let mut errors = errors.lock().unwrap();
                            errors.push((at, e));
                            assert!(errors.len() < 10_000, "no manager answers");
                            at = (at + 1) % urls.len();
                        }
                    }
                }
            })
        })
        .collect();

    // Beside the claimers, two threads per manager take new sectors, whose numbers come from
    // one counter row that every node writes.
    let stop = Arc::new(AtomicBool::new(false));
    let allocators: Vec<_> = (0..ALLOCATORS)
        .map(|a| {
            let (urls, stop) = (urls.clone(), stop.clone());
            let token = sealer_tokens[a].clone();
            std::thread::spawn(move || allocate_until(&urls, &token, a, &stop))
        })
        .collect();

    // A third of the way in, the third node dies.
    wait_for(
        Duration::from_secs(120),
        "a third of the jobs claimed",
        || (count.load(Ordering::SeqCst) >= JOBS / 3).then_some(()),
    );
    nodes[2].kill();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let allocated: Vec<Allocated> = allocators.into_iter().map(|t| t.join().unwrap()).collect();

    let ids = claimed.lock().unwrap().clone();
    let unique: HashSet<&String> = ids.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), ids.len(), "a job was claimed twice");
    // Only the dead node's manager failed a claim; a conflict never reached a claimer.
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.iter().all(|(m, _)| *m == 2),
        "errors from live managers: {errors:?}"
    );
    // Every job was claimed once; a claim the dead node committed and never answered is held
    // by a claimer that did not hear of it (one per claimer at most), and no job is lost.
    let url = nodes[0].url();
    let counts = mysql_exec(
        &url,
        "SELECT COUNT(*) FROM wdpost_jobs WHERE state <> 'Running' OR try_num <> 1;",
    );
    assert_eq!(counts.trim(), "0", "jobs not claimed exactly once");
    assert!(
        ids.len() + CLAIMERS >= JOBS,
        "{} of {JOBS} claims answered",
        ids.len()
    );
    assert_held_by_claimers(&url, &ids);
    let conflicts: usize = managers[..2]
        .iter()
        .map(|m| m.proc.log_text().matches("claim conflicted").count())
        .sum();
    eprintln!("{conflicts} certification conflicts retried inside the managers");

    // Every sector answered is recorded once, as its asker's; only the dead node's manager
    // failed an allocation.
    let mut numbers: Vec<u64> = Vec::new();
    for (a, (got, errors)) in allocated.iter().enumerate() {
        assert!(!got.is_empty(), "allocator {a} got no sector");
        assert!(
            errors.iter().all(|(m, _)| *m == 2),
            "allocator {a}: errors from live managers: {errors:?}"
        );
        let listed = got.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let recorded = mysql_exec(
            &url,
            &format!(
                "SELECT COUNT(*) FROM sectors WHERE owner = 'sealer-{a}' AND sector_number IN ({listed});"
            ),
        );
        assert_eq!(
            recorded.trim(),
            got.len().to_string(),
            "sealer-{a}'s sectors"
        );
        numbers.extend(got);
    }
    let all = numbers.len();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), all, "a sector number was handed out twice");
    eprintln!("{all} sectors allocated through the three managers");

    // The worker moved to its second manager and keeps pinging through it.
    wait_for(Duration::from_secs(30), "the worker's move", || {
        worker
            .proc
            .log_text()
            .contains("using the next one")
            .then_some(())
    });
    let before = ping_age(&managers[0], "walker");
    std::thread::sleep(Duration::from_secs(3));
    let age = ping_age(&managers[1], "walker").unwrap();
    assert!(
        age <= 2,
        "last ping {age} s ago (before the wait: {before:?})"
    );
    drop(worker);
}
