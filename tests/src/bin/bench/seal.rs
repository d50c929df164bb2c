//! `bench seal [runs]`: real 2KiB CC sectors sealed through a worker (a sealer thread of a
//! `damocles-worker daemon` with a mock manager: the state machine, its saved records, the stage
//! limits and a processor child per stage, speaking line-JSON), beside the same stages called
//! back to back as bare library calls in one process (`damocles-worker bench-seal`). Needs the
//! 2KiB PoRep parameters.
//!
//! The worker's time of a sector is the time its thread spends in the states whose step is a
//! processor stage (add_pieces and tree_d, pc1 and pc2, c1 and c2), read from the thread's
//! `job_state` polled every 20 ms. The states between them wait on the chain (ticket,
//! pre-commit, seed) or copy the sector to its store: shown apart, they are not what the
//! worker adds to the proofs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use damocles_tests::*;
use serde_json::json;

use super::{bare_calls, call};

/// The states whose step runs a processor stage, in pipeline order.
const STAGE_STATES: [&str; 6] = [
    "DealsAcquired",
    "PieceAdded",
    "TicketAssigned",
    "PC1Done",
    "SeedAssigned",
    "C1Done",
];

/// The first state after c2.
const DONE: &str = "C2Done";

pub fn seal(runs: usize) {
    assert!(
        runs >= 2,
        "the first run loads parameters: give 2 runs or more"
    );
    let dir = tempfile::tempdir().unwrap();

    // Bare library calls, back to back in one process.
    let bare_dir = dir.path().join("bare").display().to_string();
    let bare_out = bare_calls(&["bench-seal", &bare_dir, &runs.to_string()]);
    let bare_times: Vec<Duration> = bare_out
        .lines()
        .filter_map(|l| l.split(' ').nth(2)?.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect();
    assert_eq!(bare_times.len(), runs, "{bare_out}");
    print!("{bare_out}");

    // Through a worker: one sealer thread, sectors one after another.
    let m = Manager::start(dir.path(), None);
    let w = Worker::start(dir.path(), "seal", &m, 1, "");
    let url = format!("http://127.0.0.1:{}/", w.port);
    let client = reqwest::blocking::Client::new();
    // Per sector: when the thread entered each state.
    let mut seen: Vec<(String, HashMap<String, Instant>)> = Vec::new();
    let started = Instant::now();
    loop {
        let list = call(&client, &url, "VenusWorker.WorkerList", json!([]));
        let t = &list[0];
        let now = Instant::now();
        if let (Some(job), Some(state)) = (t["job_id"].as_str(), t["job_state"].as_str()) {
            if seen.last().is_none_or(|(j, _)| j != job) {
                seen.push((job.to_string(), HashMap::new()));
            }
            if let Some((_, states)) = seen.last_mut() {
                states.entry(state.to_string()).or_insert(now);
            }
        }
        assert_ne!(t["thread_state"]["state"], "Paused", "{t}");
        let done = seen
            .iter()
            .filter(|(_, s)| s.contains_key(DONE) && s.contains_key(STAGE_STATES[0]))
            .count();
        if done >= runs {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600 * runs as u64),
            "{done} of {runs} sectors sealed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut worker_times = Vec::new();
    for (n, (job, s)) in seen
        .iter()
        .filter(|(_, s)| s.contains_key(DONE) && s.contains_key(STAGE_STATES[0]))
        .take(runs)
        .enumerate()
    {
        // A state's time runs to the next state entered, whichever it is.
        let mut entered: Vec<(&String, &Instant)> = s.iter().collect();
        entered.sort_by_key(|(_, at)| **at);
        let mut in_stages = Duration::ZERO;
        for pair in entered.windows(2) {
            if STAGE_STATES.contains(&pair[0].0.as_str()) {
                in_stages += *pair[1].1 - *pair[0].1;
            }
        }
        let whole = s[DONE] - s[STAGE_STATES[0]];
        println!(
            "worker sector {} ({job}): {:.3} s in the stages' states, {:.3} s from add_pieces to c2 done ({:.3} s on the chain and the store)",
            n + 1,
            in_stages.as_secs_f64(),
            whole.as_secs_f64(),
            (whole - in_stages).as_secs_f64()
        );
        worker_times.push(in_stages);
    }
    let mean = |v: &[Duration]| {
        v[1..].iter().map(Duration::as_secs_f64).sum::<f64>() / (v.len() - 1) as f64
    };
    let (worker_mean, bare_mean) = (mean(&worker_times), mean(&bare_times));
    println!(
        "2KiB sector add_pieces → c2, mean of runs 2..{runs}: through the worker {worker_mean:.3} s, bare calls {bare_mean:.3} s; worker / bare = {:.3}",
        worker_mean / bare_mean
    );
}
