//! `bench seal [runs]`: real 2KiB CC sectors sealed through a worker (a sealer thread of a
//! `damocles-worker daemon` with a mock manager: the state machine, its saved records, the stage
//! limits and a processor child per stage, speaking line-JSON), beside the same stages called
//! back to back as bare library calls in one process (`damocles-worker bench-seal`). Needs the
//! 2KiB PoRep parameters.
//!
//! The worker's time of a sector is the time its thread spends in the states whose step is a
//! processor stage (add_pieces and tree_d, pc1 and pc2, c1 and c2), read from the worker's own
//! `state changed` log lines. The states between them wait on the chain (ticket, pre-commit,
//! seed) or copy the sector to its store: shown apart, they are not what the worker adds to the
//! proofs.

use std::time::{Duration, Instant};

use damocles_tests::*;

use super::bare_calls;

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

/// One sector as the worker's log tells it: each state it entered, with when (seconds).
struct Sector {
    name: String,
    changes: Vec<(f64, String)>,
}

/// Whether the log holds the sector from before its add_pieces to after its c2.
fn whole_seen(s: &Sector) -> bool {
    [STAGE_STATES[0], DONE]
        .iter()
        .all(|want| s.changes.iter().any(|(_, st)| st == want))
}

/// The sectors of a worker's log, from its `state changed ... sector=Some("<id>") prev=<a>
/// next=<b>` lines (their timestamps are RFC 3339, to the microsecond).
fn sectors_of(log: &str) -> Vec<Sector> {
    let mut out: Vec<Sector> = Vec::new();
    for line in log.lines().filter(|l| l.contains("state changed")) {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(|v| {
                    v.trim_matches(|c| c == '"' || c == ')')
                        .trim_start_matches("Some(\"")
                })
        };
        let (Some(at), Some(name), Some(next)) = (
            line.split_whitespace()
                .next()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
            field("sector="),
            field("next="),
        ) else {
            continue;
        };
        let at = at.timestamp_micros() as f64 / 1e6;
        if out.last().is_none_or(|s| s.name != name) {
            out.push(Sector {
                name: name.to_string(),
                changes: Vec::new(),
            });
        }
        if let Some(s) = out.last_mut() {
            s.changes.push((at, next.to_string()));
        }
    }
    out
}

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
    let started = Instant::now();
    let sectors = loop {
        let sectors = sectors_of(&w.proc.log_text());
        let done = sectors.iter().filter(|s| whole_seen(s)).count();
        if done >= runs {
            break sectors;
        }
        let list = w.list();
        assert_ne!(list[0]["thread_state"]["state"], "Paused", "{}", list[0]);
        assert!(
            started.elapsed() < Duration::from_secs(600 * runs as u64),
            "{done} of {runs} sectors sealed"
        );
        std::thread::sleep(Duration::from_secs(1));
    };

    let mut worker_times = Vec::new();
    for (n, s) in sectors
        .iter()
        .filter(|s| whole_seen(s))
        .take(runs)
        .enumerate()
    {
        // A state lasts from the change into it to the change out of it.
        let mut in_stages = 0.0;
        for pair in s.changes.windows(2) {
            if STAGE_STATES.contains(&pair[0].1.as_str()) {
                in_stages += pair[1].0 - pair[0].0;
            }
        }
        let at = |state: &str| {
            s.changes
                .iter()
                .find(|(_, st)| st == state)
                .map(|(t, _)| *t)
        };
        let whole = at(DONE).unwrap() - at(STAGE_STATES[0]).unwrap();
        println!(
            "worker sector {} ({}): {in_stages:.3} s in the stages' states, {whole:.3} s from add_pieces to c2 done ({:.3} s on the chain and the store)",
            n + 1,
            s.name,
            whole - in_stages
        );
        worker_times.push(Duration::from_secs_f64(in_stages));
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
