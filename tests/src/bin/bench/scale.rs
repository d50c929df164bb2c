//! `bench scale`: one manager and one MariaDB tracking `workers` workers × `threads` threads,
//! each pinging every 30 s as a farm's do, for `seconds`. It reports ping latency, lost pings
//! (any answer but success), the manager's peak RSS and its CPU, mariadbd's CPU, and how long
//! `util worker list` of every worker takes. The generator paces each worker to its own slot
//! in the 30 s, from 512 tasks on one thread, building each ping straight into a string.

use std::time::{Duration, Instant};

use damocles_tests::{mysql_database, mysql_exec, Manager, MYSQL_URL_ENV};
use serde_json::Value;

use super::heartbeat::ping_body;
use super::percentiles;

/// How often each worker pings (damocles' default).
const INTERVAL: Duration = Duration::from_secs(30);

/// Pings in flight at most: each of these tasks pings its workers one after another.
const GENERATORS: usize = 512;

/// Share of workers whose threads changed since their last ping, in percent.
const CHANGED: usize = 10;

pub(super) fn scale(workers: usize, seconds: u64, base_url: &str, threads: usize) {
    std::env::set_var(MYSQL_URL_ENV, base_url);
    let dir = tempfile::tempdir().unwrap();
    let db = mysql_database("bench_scale").unwrap();
    // Tokens for 100 000 workers would be 100 000 REST calls first; issue 9's bench showed
    // what they cost (nothing measurable), so the run goes without.
    let cfg = "[auth]\nworkers = \"optional\"\n";
    let m = Manager::start_with(
        dir.path(),
        Some(db.clone()),
        damocles_tests::free_port(),
        cfg,
    );
    let rpc = m.url("/rpc/v0");
    let rounds =
        (Duration::from_secs(seconds).as_secs_f64() / INTERVAL.as_secs_f64()).ceil() as usize;
    let slot = INTERVAL.as_secs_f64() / workers as f64;
    let watch = Sampler::start(m.proc.pid());
    let db_cpu = Cpu::of(mariadbd_pid());
    let own_cpu = Cpu::of(Some(std::process::id() as i32));
    let started = Instant::now();
    // One thread drives every ping: the generator takes as little of the two cores as it can,
    // so that the manager and the database have the rest.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (lat, failed) = rt.block_on(async {
        let client = super::pinger();
        let tasks: Vec<_> = (0..GENERATORS.min(workers))
            .map(|g| {
                let (client, rpc) = (client.clone(), rpc.clone());
                tokio::spawn(async move {
                    // Per ping: (round, latency, late by); how many failed, and the first
                    // few of them (a run that fails wholesale must not hold every reason).
                    let mut mine = Vec::new();
                    let mut failed = (0, Vec::new());
                    for round in 0..rounds {
                        for w in (g..workers).step_by(GENERATORS) {
                            let due = started
                                + INTERVAL * round as u32
                                + Duration::from_secs_f64(slot * w as f64);
                            let late = Instant::now().saturating_duration_since(due);
                            tokio::time::sleep_until(due.into()).await;
                            let t = Instant::now();
                            let body = ping_body(w, threads, CHANGED, round, started);
                            let answer = client
                                .post(&rpc)
                                .header("Content-Type", "application/json")
                                .body(body)
                                .send()
                                .await;
                            let why = match answer {
                                Ok(r) => match r.json::<Value>().await {
                                    Ok(v) if v["error"].is_null() => None,
                                    Ok(v) => Some(v["error"].to_string()),
                                    Err(e) => Some(format!("{e:?}")),
                                },
                                Err(e) => Some(format!("{e:?}")),
                            };
                            if let Some(why) = why {
                                failed.0 += 1;
                                if failed.1.len() < 5 {
                                    failed.1.push(format!("w{w} in round {round}: {why}"));
                                }
                            }
                            mine.push((round, t.elapsed(), late));
                        }
                    }
                    (mine, failed)
                })
            })
            .collect();
        let mut lat = Vec::with_capacity(workers * rounds);
        let mut failed = (0, Vec::new());
        for t in tasks {
            let (mine, (n, some)) = t.await.unwrap();
            lat.extend(mine);
            failed.0 += n;
            failed.1.extend(some);
        }
        (lat, failed)
    });
    let wall = started.elapsed();
    let (peak_rss, manager_cpu) = watch.stop();
    let db_cpu = db_cpu.map(|c| c.since());
    let own_cpu = own_cpu.map(|c| c.since()).unwrap_or_default();
    let first: Vec<Duration> = lat.iter().filter(|l| l.0 == 0).map(|l| l.1).collect();
    let steady: Vec<Duration> = lat.iter().filter(|l| l.0 > 0).map(|l| l.1).collect();
    let max_late = lat.iter().map(|l| l.2).max().unwrap_or_default();
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
    println!(
        "scale: {workers} workers x {threads} threads, a ping each every {INTERVAL:?} ({:.0} pings/s), {CHANGED}% of workers changed per round, {rounds} rounds in {wall:?}",
        workers as f64 / INTERVAL.as_secs_f64()
    );
    println!("  first round (every worker new): {}", percentiles(first));
    if !steady.is_empty() {
        println!("  later rounds: {}", percentiles(steady));
    }
    println!(
        "  pings failed: {} of {}; the generator was at most {max_late:?} behind its schedule",
        failed.0,
        lat.len()
    );
    for why in failed.1.iter().take(5) {
        println!("    failed: {why}");
    }
    println!(
        "  manager: peak RSS {} MB, CPU {:?} = {:.0}% of one core",
        peak_rss / 1024,
        manager_cpu,
        pct(manager_cpu)
    );
    if let Some(c) = db_cpu {
        println!("  mariadbd: CPU {c:?} = {:.0}% of one core", pct(c));
    }
    println!(
        "  load generator (this process): CPU {own_cpu:?} = {:.0}% of one core",
        pct(own_cpu)
    );
    // Every worker's row is there and was refreshed in the last round.
    let rows = mysql_exec(&db, "SELECT COUNT(*) FROM workers;");
    let stale = mysql_exec(
        &db,
        &format!(
            "SELECT COUNT(*) FROM workers WHERE last_ping_at < NOW() - INTERVAL {} SECOND;",
            INTERVAL.as_secs() * 2
        ),
    );
    println!(
        "  workers rows: {}, not pinged in the last 60 s: {}",
        rows.trim(),
        stale.trim()
    );
    for _ in 0..3 {
        let t = Instant::now();
        let out = m.cli(&["util", "worker", "list"]);
        let took = t.elapsed();
        assert!(out.status.success());
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        println!("  util worker list: {lines} lines in {took:?}");
    }
}

/// The manager's peak RSS (KiB) and CPU time while it runs.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
    cpu: Option<Cpu>,
}

impl Sampler {
    fn start(pid: i32) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "VmRSS:").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(250));
            }
            peak.max(status_kib(pid, "VmHWM:").unwrap_or(0))
        });
        Sampler {
            stop,
            handle,
            cpu: Cpu::of(Some(pid)),
        }
    }

    fn stop(self) -> (u64, Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = self.handle.join().unwrap();
        (peak, self.cpu.map(|c| c.since()).unwrap_or_default())
    }
}

pub(super) fn status_kib(pid: i32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's user + system CPU time from a starting point.
pub(super) struct Cpu {
    pid: i32,
    at_start: Duration,
}

impl Cpu {
    pub(super) fn of(pid: Option<i32>) -> Option<Cpu> {
        let pid = pid?;
        Some(Cpu {
            pid,
            at_start: cpu_time(pid)?,
        })
    }

    pub(super) fn since(&self) -> Duration {
        cpu_time(self.pid)
            .unwrap_or_default()
            .saturating_sub(self.at_start)
    }
}

/// utime + stime of `/proc/<pid>/stat`, in clock ticks of 10 ms (Linux's USER_HZ = 100).
fn cpu_time(pid: i32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces, in parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The local mariadbd, when the database runs on this machine.
fn mariadbd_pid() -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "mariadbd").then_some(pid)
    })
}
