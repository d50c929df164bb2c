//! `bench idle`: what an idle worker costs. A worker with `threads` sealer threads that never
//! get a sector beside, in the same run, one with a single thread: memory (the daemon and its
//! processor children) and CPU over `seconds`, after a minute to settle. Each pair runs twice:
//! with the worker's default intervals (a ping every 30 s, an idle thread asking for a sector
//! every `recover_interval`, 60 s), as an operator runs it, and with the tests' intervals of
//! one second, which make every thread ask every second.

use std::time::{Duration, Instant};

use damocles_tests::{free_port, worker_config, Manager, Worker};

use super::scale::{status_kib, Cpu};

pub(super) fn idle(threads: usize, seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let mut workers: Vec<(&str, usize, Worker)> = Vec::new();
    for intervals in ["default", "1s"] {
        for n in [threads, 1] {
            let name = format!("idle-{intervals}-{n}");
            let wdir = dir.path().join(&name);
            std::fs::create_dir_all(&wdir).unwrap();
            let port = free_port();
            let config = worker_config(&wdir, &name, &m, port, n, "sealing.allowed_miners = [1]");
            if intervals == "default" {
                let text = std::fs::read_to_string(&config).unwrap();
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.contains("_interval = "))
                    .collect();
                std::fs::write(&config, kept.join("\n")).unwrap();
            }
            workers.push((
                intervals,
                n,
                Worker::start_config(&wdir, &name, config, port),
            ));
        }
    }
    std::thread::sleep(Duration::from_secs(60));
    // A worker makes the Groth parameters it lacks as it starts (minutes, both cores, 5 GB):
    // that is not an idle worker.
    if workers.iter().any(|(_, _, w)| {
        w.proc
            .log_text()
            .contains("generating missing Groth parameters")
    }) {
        panic!(
            "the 2KiB parameters are missing, and the workers are making them: run \
             `damocles-worker params --sector-size 2KiB` first"
        );
    }
    // The daemon and every child it has now: none by default, as a processor's child starts at
    // its stage's first task (`[processors] start`).
    let pids = |w: &Worker| -> Vec<i32> {
        let mut p = vec![w.proc.pid()];
        p.extend(w.children());
        p
    };
    let cpus: Vec<Vec<Cpu>> = workers
        .iter()
        .map(|(_, _, w)| {
            pids(w)
                .into_iter()
                .filter_map(|p| Cpu::of(Some(p)))
                .collect()
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = started.elapsed();
    for ((intervals, n, w), cpu) in workers.iter().zip(&cpus) {
        let rss: Vec<u64> = pids(w)
            .iter()
            .map(|p| status_kib(*p, "VmRSS:").unwrap_or(0))
            .collect();
        let used: Duration = cpu.iter().map(Cpu::since).sum();
        let what = if *n == 1 { "baseline  " } else { "" };
        println!(
            "{what}idle worker, {n} sealer threads, {intervals} intervals, over {wall:?}: daemon {} MB RSS, {} children {} MB RSS in all ({} MB together); CPU {used:?} = {:.2}% of one core",
            rss[0] / 1024,
            rss.len() - 1,
            rss[1..].iter().sum::<u64>() / 1024,
            rss.iter().sum::<u64>() / 1024,
            100.0 * used.as_secs_f64() / wall.as_secs_f64()
        );
    }
}
