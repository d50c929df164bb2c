//! `bench idle`: what an idle worker costs. A worker with `threads` sealer threads that never
//! get a sector (they ask the manager every `rpc_polling_interval`, as idle threads do) beside,
//! in the same run, one with a single thread: memory (the daemon and its processor children)
//! and CPU over `seconds`, after a minute to settle.

use std::time::{Duration, Instant};

use damocles_tests::{Manager, Worker};

use super::scale::{status_kib, Cpu};

pub(super) fn idle(threads: usize, seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let workers: Vec<(usize, Worker)> = [threads, 1]
        .into_iter()
        .map(|n| {
            let wdir = dir.path().join(format!("w{n}"));
            std::fs::create_dir_all(&wdir).unwrap();
            let name = format!("idle-{n}");
            (
                n,
                Worker::start(&wdir, &name, &m, n, "sealing.allowed_miners = [1]"),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(60));
    // The daemon and every child it has now: none by default, as a processor's child starts at
    // its stage's first task (`[processors] start`).
    let pids = |w: &Worker| -> Vec<i32> {
        let mut p = vec![w.proc.pid()];
        p.extend(w.children());
        p
    };
    let cpus: Vec<Vec<Cpu>> = workers
        .iter()
        .map(|(_, w)| {
            pids(w)
                .into_iter()
                .filter_map(|p| Cpu::of(Some(p)))
                .collect()
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = started.elapsed();
    for ((n, w), cpu) in workers.iter().zip(&cpus) {
        let rss: Vec<u64> = pids(w)
            .iter()
            .map(|p| status_kib(*p, "VmRSS:").unwrap_or(0))
            .collect();
        let used: Duration = cpu.iter().map(Cpu::since).sum();
        let what = if *n == 1 { "baseline  " } else { "" };
        println!(
            "{what}idle worker, {n} sealer threads, over {wall:?}: daemon {} MB RSS, {} children {} MB RSS in all ({} MB together); CPU {used:?} = {:.2}% of one core",
            rss[0] / 1024,
            rss.len() - 1,
            rss[1..].iter().sum::<u64>() / 1024,
            rss.iter().sum::<u64>() / 1024,
            100.0 * used.as_secs_f64() / wall.as_secs_f64()
        );
    }
}
