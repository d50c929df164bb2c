//! A real `damocles-worker` on a free port, and the config files it starts from.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::{bin, children_of, free_port, spawn, Manager, Proc};

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

/// `damocles-worker worker -c <config> <args>`.
fn cli_of(config: &Path, args: &[&str]) -> Output {
    Command::new(bin("damocles-worker"))
        .arg("worker")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("worker cli")
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
        let mut w = Worker {
            proc,
            port,
            config,
            dir: dir.to_path_buf(),
        };
        let config = w.config.clone();
        w.proc.wait_up(
            Duration::from_secs(60),
            "the worker's management API",
            || cli_of(&config, &["list"]).status.success().then_some(()),
        );
        w
    }

    /// `damocles-worker worker -c <config> <args>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_of(&self.config, args)
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

/// `[[processors.<stage>]]` running the real processor behind `fixtures/slow_processor.py`: it
/// holds each request `secs` seconds before the real work, or with `hold_answer` each answer
/// after it (the work's files are written, its answer is not in).
pub fn slow_processor(stage: &str, secs: u32, hold_answer: bool) -> String {
    let answer = if hold_answer {
        ", SLOW_ANSWER = \"1\""
    } else {
        ""
    };
    format!(
        "\n[[processors.{stage}]]\nbin = \"{}\"\nargs = [\"{}\", \"processor\", \"{stage}\"]\nenvs = {{ SLOW_SECS = \"{secs}\"{answer} }}\n",
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/slow_processor.py"),
        crate::bin("damocles-worker").display()
    )
}

/// Adds `text` to the end of a config file.
pub fn append_config(config: &Path, text: &str) {
    let mut cfg = std::fs::read_to_string(config).expect("config");
    cfg.push_str(text);
    std::fs::write(config, cfg).expect("config");
}
