//! The harness of the integration tests: starts real `damocles-manager` and `damocles-worker`
//! processes on free loopback ports, in a temporary directory, and talks to them as a user
//! would (CLI, REST, JSON-RPC). Binaries come from the same target directory as the test
//! (`cargo build --workspace --bins` first; the README's test command does).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod browser;
mod manager;
mod mysql;
mod worker;

pub use browser::Browser;
pub use manager::{manager_state, window_left, Manager};
pub use mysql::{
    assert_held_by_claimers, galera_cluster, insert_fake_jobs, mysql_database, mysql_exec,
    OwnMariaDb,
};
pub use worker::{
    append_config, slow_processor, wdpost_config, worker_config, worker_config_at, Worker,
};

/// The environment variable that points the MySQL variants of the tests at a server.
pub const MYSQL_URL_ENV: &str = "DAMOCLES_TEST_MYSQL_URL";

pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // A test runs from target/<profile>/deps, a bench binary from target/<profile>.
    let here = exe.parent().expect("target dir");
    let dir = if here.ends_with("deps") {
        here.parent().expect("target dir")
    } else {
        here
    };
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `f` every 200ms until it returns Some, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `f` every 200ms until it returns Some; None once `timeout` has passed.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for `f` while the process runs; if it exits first or the time runs
    /// out, fails with the end of its log, which says why.
    pub fn wait_up<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let child = &mut self.child;
        let outcome = poll(timeout, || match f() {
            Some(v) => Some(Ok(v)),
            None => child.try_wait().ok().flatten().map(Err),
        });
        let why = match outcome {
            Some(Ok(v)) => return v,
            Some(Err(status)) => format!("it exited ({status})"),
            None => format!("timed out after {timeout:?}"),
        };
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "{why} waiting for {what}; the end of {}:\n{}",
            self.log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = cmd
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn");
    Proc { child, log }
}

pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // pid (comm) state ppid ...
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie (state Z) has exited.
    !stat.is_empty()
        && stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().starts_with('Z'))
            != Some(true)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A processor child of the worker binary (`damocles-worker processor <stage>`), spoken to over
/// the line-JSON protocol: real proofs for tests that play a worker themselves.
pub struct ProcessorChild {
    proc: Child,
    out: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    next: u64,
}

impl ProcessorChild {
    pub fn start(stage: &str) -> ProcessorChild {
        use std::io::BufRead;
        let mut proc = Command::new(bin("damocles-worker"))
            .args(["processor", stage])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("processor child");
        let mut out = std::io::BufReader::new(proc.stdout.take().expect("stdout")).lines();
        let ready = out.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(ready, format!("{stage} processor ready"));
        ProcessorChild { proc, out, next: 1 }
    }

    /// Runs one task; panics with the child's error if it fails.
    pub fn call(&mut self, task: Value) -> Value {
        use std::io::Write;
        self.next += 1;
        let stdin = self.proc.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{}", json!({"id": self.next, "task": task})).expect("write task");
        let line = self.out.next().and_then(Result::ok).unwrap_or_default();
        let resp: Value = serde_json::from_str(&line).expect("processor response");
        assert!(resp["err_msg"].is_null(), "{resp}");
        resp["output"].clone()
    }

    /// Runs one task in a fresh child of `stage`.
    pub fn once(stage: &str, task: Value) -> Value {
        Self::start(stage).call(task)
    }
}

impl Drop for ProcessorChild {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// `python3 tests/fixtures/strict_peer.py`: a strict go-jsonrpc-like front for the manager at
/// `upstream` (its `/rpc/v0` URL), listening on `port`, logging every call to `log`.
pub fn strict_peer(dir: &Path, port: u16, upstream: &str, log: &Path) -> Proc {
    strict_peer_with(dir, port, upstream, log, &[])
}

/// `strict_peer` with extra arguments (`deals`: it answers AcquireDeals with a deal).
pub fn strict_peer_with(dir: &Path, port: u16, upstream: &str, log: &Path, extra: &[&str]) -> Proc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/strict_peer.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(port.to_string())
        .arg(upstream)
        .arg(log)
        .args(extra);
    let p = spawn(&mut cmd, dir.join(format!("strict-peer-{port}.log")));
    wait_for(Duration::from_secs(20), "the strict peer to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    p
}
