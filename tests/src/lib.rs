//! The harness of the integration tests: starts real `damocles-manager` and `damocles-worker`
//! processes on free loopback ports, in a temporary directory, and talks to them as a user
//! would (CLI, REST, JSON-RPC). Binaries come from the same target directory as the test
//! (`cargo build --workspace --bins` first; the README's test command does).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
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

/// Creates a fresh MySQL database for one test, when the MySQL URL is set. Under CI the URL
/// must be set: a MySQL test that silently skips there would prove nothing.
pub fn mysql_database(tag: &str) -> Option<String> {
    let Ok(base) = std::env::var(MYSQL_URL_ENV) else {
        assert!(
            std::env::var("CI").is_err(),
            "{MYSQL_URL_ENV} must be set under CI"
        );
        eprintln!("{MYSQL_URL_ENV} is not set: skipping the MySQL variant");
        return None;
    };
    let db = format!("damocles_{tag}_{}", std::process::id());
    let (server, _) = base
        .rsplit_once('/')
        .expect("mysql url like mysql://root@127.0.0.1:3306/test");
    let hostport = server.rsplit('@').next().unwrap_or("127.0.0.1:3306");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    let sql = format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};");
    let status = Command::new("mysql")
        .args(["-h", host, "-P", port, "-u", "root", "-e", &sql])
        .status()
        .expect("mysql client");
    assert!(status.success(), "create database {db}");
    Some(format!("{server}/{db}"))
}

/// Runs `sql` (any number of statements) with the `mysql` client on the database of `url`, and
/// returns what it printed (tab-separated rows, no header).
pub fn mysql_exec(url: &str, sql: &str) -> String {
    use std::io::Write as _;
    let (server, db) = url.rsplit_once('/').expect("mysql url with a database");
    let hostport = server.rsplit('@').next().unwrap_or("127.0.0.1:3306");
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    let mut child = Command::new("mysql")
        .args(["-h", host, "-P", port, "-u", "root", "-N", "-B", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("mysql client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(sql.as_bytes())
        .expect("write sql");
    let out = child.wait_with_output().expect("mysql client");
    assert!(
        out.status.success(),
        "mysql failed on: {}",
        &sql[..sql.len().min(200)]
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `n` ready WindowPoSt jobs `fake-00000`... with a small input of no sectors: enough for the
/// claim path, which reads only the rows.
pub fn insert_fake_jobs(url: &str, n: usize) {
    let input = json!({"Sectors": [], "MinerId": 10000, "ProofType": "StackedDrgWindow2KiBV1_2", "Seed": vec![0u8; 32]}).to_string();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "('fake-{i:05}', 10000, {i}, '0', 'StackedDrgWindow2KiBV1_2', 0, 'ReadyToRun', 0, NOW(), NOW(), NOW(), '{input}')"
                )
            })
            .collect();
        mysql_exec(
            url,
            &format!(
                "INSERT INTO wdpost_jobs (id, miner_id, deadline_idx, partitions, proof_type, sectors, state, try_num, deadline_open_at, created_at, updated_at, input) VALUES {};",
                rows.join(",")
            ),
        );
    }
}

pub struct Manager {
    pub proc: Proc,
    pub port: u16,
    pub home: PathBuf,
    pub db_url: Option<String>,
}

impl Manager {
    pub fn start(dir: &Path, db_url: Option<String>) -> Manager {
        Self::start_on(dir, db_url, free_port())
    }

    pub fn start_on(dir: &Path, db_url: Option<String>, port: u16) -> Manager {
        Self::start_with(dir, db_url, port, "")
    }

    /// A manager whose `manager.toml` also holds `extra` (e.g. `[task]` and `[mock]` sections).
    pub fn start_with(dir: &Path, db_url: Option<String>, port: u16, extra: &str) -> Manager {
        let args = [
            "daemon",
            "run",
            "--mock",
            "--miner",
            "10000",
            "--sector-size",
            "2KiB",
        ];
        Self::start_cmd(dir, db_url, port, extra, &args)
    }

    /// A manager started with `args` (then `--listen` and, with a config, `-c`); its home is
    /// `<dir>/manager-home`, where a test may have put a `sector-manager.cfg`.
    pub fn start_cmd(
        dir: &Path,
        db_url: Option<String>,
        port: u16,
        extra: &str,
        args: &[&str],
    ) -> Manager {
        let home = dir.join("manager-home");
        std::fs::create_dir_all(&home).expect("home");
        let mut cmd = Command::new(bin("damocles-manager"));
        cmd.env("DAMOCLES_PATH", &home)
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        let mut toml = extra.to_string();
        if let Some(url) = &db_url {
            toml += &format!("\n[db]\nurl = \"{url}\"\nmax_connections = 8\n");
        }
        if !toml.is_empty() {
            let cfg = dir.join(format!("manager-{port}.toml"));
            std::fs::write(&cfg, toml).expect("config");
            cmd.arg("-c").arg(&cfg);
        }
        let proc = spawn(&mut cmd, dir.join(format!("manager-{port}.log")));
        let m = Manager {
            proc,
            port,
            home,
            db_url,
        };
        wait_for(Duration::from_secs(60), "the manager's /healthz", || {
            reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz"))
                .ok()
                .filter(|r| r.status().is_success())
        });
        m
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.home.join("token"))
            .expect("token")
            .trim()
            .to_string()
    }

    /// A REST call with the admin token: (status, JSON body).
    pub fn rest(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let mut req = client
            .request(method, self.url(path))
            .bearer_auth(self.token());
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().expect("rest call");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// A worker-facing JSON-RPC call without a token: Ok(result) or Err(error object).
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, Value> {
        self.rpc_with(None, method, params)
    }

    /// `damocles-manager <args>` against this manager.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("damocles-manager"))
            .env("DAMOCLES_PATH", &self.home)
            .env(
                "DAMOCLES_MANAGER_LISTEN",
                format!("127.0.0.1:{}", self.port),
            )
            .args(args)
            .output()
            .expect("manager cli")
    }

    /// A token for worker `name` in `<dir>/<name>.token`, made with `util worker token create`
    /// the first time, as an operator would.
    pub fn token_file(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.token"));
        if !path.exists() {
            let out = self.cli(&["util", "worker", "token", "create", name]);
            assert!(out.status.success(), "token create: {}", stderr(&out));
            std::fs::write(&path, stdout(&out).trim()).expect("token file");
        }
        path
    }

    /// Worker `name`'s token (made on first use), kept where the harness keeps test workers'
    /// token files, so a test worker's own token is reused.
    pub fn worker_token(&self, name: &str) -> String {
        let dir = self.home.parent().unwrap_or(&self.home).to_path_buf();
        let token = std::fs::read_to_string(self.token_file(&dir, name)).expect("token");
        token.trim().to_string()
    }

    /// A worker-facing JSON-RPC call with `name`'s token: Ok(result) or Err(error object).
    pub fn rpc_as(&self, name: &str, method: &str, params: Value) -> Result<Value, Value> {
        self.rpc_with(Some(&self.worker_token(name)), method, params)
    }

    /// A worker-facing JSON-RPC call with `token` (or none): Ok(result) or Err(error object).
    pub fn rpc_with(
        &self,
        token: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let mut req = reqwest::blocking::Client::new()
            .post(self.url("/rpc/v0"))
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp: Value = req.send().expect("rpc call").json().expect("rpc json");
        match resp.get("error") {
            Some(e) if !e.is_null() => Err(e.clone()),
            _ => Ok(resp["result"].clone()),
        }
    }

    /// Waits until `n` workers have pinged.
    pub fn wait_for_workers(&self, n: usize) {
        wait_for(Duration::from_secs(30), "the workers' first pings", || {
            let (_, body) = self.rest(reqwest::Method::GET, "/workers", None);
            (body.as_array()?.len() == n).then_some(())
        });
    }

    pub fn sectors(&self) -> Vec<Value> {
        let (status, body) = self.rest(reqwest::Method::GET, "/sectors", None);
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }
}

pub struct Worker {
    pub proc: Proc,
    pub port: u16,
    pub config: PathBuf,
    pub dir: PathBuf,
}

/// `[worker]` and `[sector_manager]` of a test worker: named `name`, its API on `port`, pinging
/// every second, with the token in `token_file` if any.
fn worker_section(name: &str, manager_port: u16, port: u16, token_file: Option<&Path>) -> String {
    let token = token_file
        .map(|p| format!("rpc_client.token_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    format!(
        r#"[worker]
name = "{name}"
rpc_server.host = "127.0.0.1"
rpc_server.port = {port}
ping_interval = "1s"

[sector_manager]
rpc_client.addr = "/ip4/127.0.0.1/tcp/{manager_port}"
{token}
"#
    )
}

/// A worker config for manager `m`, with a token it made: `sealers` sealer threads under `dir`,
/// one attached store. `thread_extra` goes into every thread (e.g. `sealing.allowed_miners = [1]`
/// for threads that never get a sector).
pub fn worker_config(
    dir: &Path,
    name: &str,
    m: &Manager,
    port: u16,
    sealers: usize,
    thread_extra: &str,
) -> PathBuf {
    let token = m.token_file(dir, name);
    worker_config_at(dir, name, m.port, Some(&token), port, sealers, thread_extra)
}

/// A worker config for a manager on `manager_port` (no need for one to run), with the token in
/// `token_file` if any.
pub fn worker_config_at(
    dir: &Path,
    name: &str,
    manager_port: u16,
    token_file: Option<&Path>,
    port: u16,
    sealers: usize,
    thread_extra: &str,
) -> PathBuf {
    let mut cfg = worker_section(name, manager_port, port, token_file);
    cfg += &format!(
        r#"[sealing]
allowed_miners = [10000]
allowed_sizes = ["2KiB"]
max_retries = 2
seal_interval = "1s"
recover_interval = "1s"
rpc_polling_interval = "1s"

[[attached]]
name = "remote"
location = "{remote}"

[processors.limitation.concurrent]
c2 = 1
"#,
        remote = dir.join("remote").display()
    );
    for i in 0..sealers {
        cfg += &format!(
            "\n[[sealing_thread]]\nlocation = \"{}\"\n{thread_extra}\n",
            dir.join(format!("{name}-store{i}")).display()
        );
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).expect("worker config");
    path
}

/// A worker config with `slots` WindowPoSt slots and no sealer, whose attached store `remote`
/// is `store`; `extra` is appended (e.g. a `[[processors.window_post]]` entry).
pub fn wdpost_config(
    dir: &Path,
    name: &str,
    m: &Manager,
    port: u16,
    slots: usize,
    store: &Path,
    extra: &str,
) -> PathBuf {
    let token = m.token_file(dir, name);
    let mut cfg = worker_section(name, m.port, port, Some(&token));
    cfg += &format!(
        r#"[sealing]
allowed_miners = [10000]
allowed_sizes = ["2KiB"]
recover_interval = "1s"

[[attached]]
name = "remote"
location = "{store}"

[processors.limitation.concurrent]
window_post = 1
{extra}
"#,
        store = store.display()
    );
    for _ in 0..slots {
        cfg += "\n[[sealing_thread]]\nplan = \"wdpost\"\n";
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).expect("worker config");
    path
}

impl Worker {
    pub fn start(
        dir: &Path,
        name: &str,
        m: &Manager,
        sealers: usize,
        thread_extra: &str,
    ) -> Worker {
        let port = free_port();
        let config = worker_config(dir, name, m, port, sealers, thread_extra);
        Self::start_config(dir, name, config, port)
    }

    /// A worker from a config file already written, whose management API is on `port`.
    pub fn start_config(dir: &Path, name: &str, config: PathBuf, port: u16) -> Worker {
        let mut cmd = Command::new(bin("damocles-worker"));
        cmd.arg("daemon").arg("-c").arg(&config).current_dir(dir);
        let proc = spawn(&mut cmd, dir.join(format!("{name}.log")));
        let w = Worker {
            proc,
            port,
            config,
            dir: dir.to_path_buf(),
        };
        wait_for(
            Duration::from_secs(60),
            "the worker's management API",
            || {
                let out = w.cli(&["list"]);
                out.status.success().then_some(())
            },
        );
        w
    }

    /// `damocles-worker worker -c <config> <args>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("damocles-worker"))
            .arg("worker")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("worker cli")
    }

    pub fn list(&self) -> Vec<Value> {
        let out = self.cli(&["list", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("list json")
    }

    pub fn list_lines(&self) -> String {
        String::from_utf8_lossy(&self.cli(&["list"]).stdout).to_string()
    }

    /// Pids of processes whose parent is this worker (its processor children).
    pub fn children(&self) -> Vec<i32> {
        children_of(self.proc.pid())
    }
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

/// Everything the manager's API shows, for before/after comparisons.
pub fn manager_state(m: &Manager) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/workers",
        "/sectors",
        "/wdpost/jobs?all=true&detail=true",
        "/tokens",
        "/audit?limit=10000",
        "/sched/log?since_secs=100000",
    ] {
        let (status, body) = m.rest(reqwest::Method::GET, path, None);
        assert_eq!(status, 200, "{path}: {body}");
        out.insert(path.into(), body);
    }
    // Ages move with the clock, not with calls.
    for (list, ages) in [
        (
            "/workers",
            &["last_ping_age_secs", "last_ping_age_ns", "last_ping_at"][..],
        ),
        (
            "/wdpost/jobs?all=true&detail=true",
            &["elapsed_secs", "heartbeat_age_secs"][..],
        ),
    ] {
        for row in out[list].as_array_mut().into_iter().flatten() {
            for age in ages {
                if let Some(r) = row.as_object_mut() {
                    r.remove(*age);
                }
            }
        }
    }
    Value::Object(out)
}

/// A MariaDB server of a test's own (its data in a temporary directory, on a free port), which
/// the test may kill and start again: for faults of the database itself.
pub struct OwnMariaDb {
    dir: PathBuf,
    pub port: u16,
    server: Option<std::process::Child>,
}

impl OwnMariaDb {
    /// None where MariaDB is not installed (never under CI, where it must be).
    pub fn start(dir: &Path) -> Option<OwnMariaDb> {
        let installed = Path::new("/usr/sbin/mariadbd").exists();
        if !installed {
            assert!(
                std::env::var("CI").is_err(),
                "MariaDB must be installed under CI"
            );
            eprintln!("MariaDB is not installed: skipping");
            return None;
        }
        std::fs::create_dir_all(dir).expect("db dir");
        let root = nix::unistd::Uid::effective().is_root();
        let user = if root { "mysql" } else { "" };
        if root {
            let _ = Command::new("chown")
                .args(["-R", "mysql:", &dir.display().to_string()])
                .status();
            // mysqld must reach its directory through the test's temporary one.
            let _ = Command::new("chmod")
                .args(["755", &dir.parent().unwrap_or(dir).display().to_string()])
                .status();
        }
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if root {
            install.arg(format!("--user={user}"));
        }
        let out = install.output().expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = OwnMariaDb {
            dir: dir.to_path_buf(),
            port: free_port(),
            server: None,
        };
        db.restart();
        let sock = dir.join("mysqld.sock");
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", sock.display()))
            .args(["-uroot", "-e"])
            .arg(
                "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; \
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
                 CREATE DATABASE IF NOT EXISTS test;",
            )
            .output()
            .expect("mariadb client");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(db)
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/test", self.port)
    }

    /// Starts the server (again) on the same data and port, and waits until it answers.
    pub fn restart(&mut self) {
        let mut cmd = Command::new("/usr/sbin/mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!(
                "--socket={}",
                self.dir.join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mysqld.pid").display()
            ))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ]);
        if nix::unistd::Uid::effective().is_root() {
            cmd.arg("--user=mysql");
        }
        let log = std::fs::File::create(self.dir.join("mariadbd.log")).expect("log");
        let child = cmd
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("mariadbd");
        self.server = Some(child);
        let sock = self.dir.join("mysqld.sock");
        wait_for(
            Duration::from_secs(60),
            "MariaDB to accept connections",
            || {
                let ok = Command::new("mariadb")
                    .arg("--no-defaults")
                    .arg(format!("--socket={}", sock.display()))
                    .args(["-uroot", "-e", "SELECT 1"])
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                ok.then_some(())
            },
        );
    }

    /// kill -9 of the server: a crash or a pulled plug, as far as the manager can tell.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnMariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}
