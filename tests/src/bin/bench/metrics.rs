//! `bench metrics [threads]`: what the metrics registry adds to a ping. Each JSON-RPC call the
//! manager answers records two samples (its duration and its outcome, both labelled by method),
//! on every HTTP worker thread at once; the baseline is the same loop recording nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use damocles_actors::metrics;

const CALLS: u32 = 1_000_000;

/// Runs `f` CALLS times on each of `threads` threads at once; the wall time.
fn on_threads(threads: usize, f: fn(u32)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(move || {
                for i in 0..CALLS {
                    f(i);
                }
            });
        }
    });
    start.elapsed()
}

fn record(i: u32) {
    let method = [("method", "Venus.WorkerPing")];
    metrics::observe(
        "damocles_rpc_server_call_duration_seconds",
        &method,
        Duration::from_micros(u64::from(i % 5000)),
    );
    metrics::inc(
        "damocles_rpc_server_calls_total",
        &[("method", "Venus.WorkerPing"), ("outcome", "ok")],
    );
}

fn nothing(i: u32) {
    black_box(Duration::from_micros(u64::from(black_box(i) % 5000)));
}

pub fn bench(threads: usize) {
    for t in [1, threads] {
        let base = on_threads(t, nothing);
        let rec = on_threads(t, record);
        let calls = f64::from(CALLS) * t as f64;
        let per = |d: Duration| d.as_secs_f64() * 1e9 / calls;
        let ns = per(rec) - per(base);
        println!(
            "{t} thread(s), {CALLS} calls each: recording {:.0} ns a call (wall, all threads), \
             baseline {:.1} ns; per call {:.0} ns = {:.2}% of the 143 µs a ping took the manager in the fastest scale run",
            per(rec),
            per(base),
            ns,
            ns / 143_000.0 * 100.0
        );
    }
}
