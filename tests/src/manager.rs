//! A real `damocles-manager` on a free port: start, stop, its CLI, REST and JSON-RPC.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{bin, free_port, spawn, stderr, stdout, wait_for, Proc};

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

    /// A manager on each database of `urls` (the nodes of a cluster), each in `<dir>/m<i>` with
    /// `extra` in its `manager.toml`.
    pub fn one_on_each(dir: &Path, urls: &[String], extra: &str) -> Vec<Manager> {
        urls.iter()
            .enumerate()
            .map(|(i, url)| {
                let home = dir.join(format!("m{i}"));
                Self::start_with(&home, Some(url.clone()), free_port(), extra)
            })
            .collect()
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
        // The url joins a `[db]` table `extra` has, or starts one.
        let mut toml = extra.to_string();
        if let Some(url) = &db_url {
            let db = format!("[db]\nurl = \"{url}\"\nmax_connections = 8\n");
            toml = match toml.split_once("[db]\n") {
                Some((before, after)) => format!("{before}{db}{after}"),
                None => format!("{toml}\n{db}"),
            };
        }
        if !toml.is_empty() {
            let cfg = dir.join(format!("manager-{port}.toml"));
            std::fs::write(&cfg, toml).expect("config");
            cmd.arg("-c").arg(&cfg);
        }
        let proc = spawn(&mut cmd, dir.join(format!("manager-{port}.log")));
        let mut m = Manager {
            proc,
            port,
            home,
            db_url,
        };
        m.proc
            .wait_up(Duration::from_secs(60), "the manager's /healthz", || {
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

/// Seconds until a WindowPoSt job's challenge window closes, from its REST view (the
/// manager's clock is this machine's, to the second).
pub fn window_left(job: &Value) -> i64 {
    let close = job["deadline_close_at"]
        .as_str()
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").ok())
        .expect("a job with deadline_close_at");
    (close - chrono::Utc::now().naive_utc()).num_seconds()
}

/// Everything the manager's API shows, for before/after comparisons.
pub fn manager_state(m: &Manager) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/workers",
        "/sectors",
        "/mock/deals",
        "/wdpost/jobs?all=true&detail=true",
        "/proving/faults",
        "/proving/missed",
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
