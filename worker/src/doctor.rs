//! `damocles-worker doctor -c worker.toml`: checks a machine before its worker starts, in the
//! order an operator sets one up: the config, the disks, the Groth parameters, the manager, the
//! processors, the management port. One line per check; it fails when any check does. It
//! changes nothing but a probe file it writes and removes in each directory (and a mock manager
//! without configured stores records the attached stores' names, as at the worker's start).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use damocles_actors::doctor::{Problem, Report};
use damocles_actors::processor::EnvOverlay;
use damocles_actors::sealing::quota::sector_footprint;
use damocles_actors::thread::plan::PlanKind;
use damocles_actors::wire::jsonrpc::{CallError, Client, FORBIDDEN, UNAUTHENTICATED};
use damocles_actors::wire::processor::ready_line;
use damocles_actors::wire::venus_methods as m;

use crate::config::Config;
use crate::{daemon, params};

/// How long a processor may take to print its ready line here (beyond its `stable_wait`).
const READY_GRACE: Duration = Duration::from_secs(10);

pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let mut report = Report::default();
    let cfg = match Config::load(config_path) {
        Ok(cfg) => cfg,
        Err(e) => {
            report.check(
                "config",
                Err(Problem::new(
                    e,
                    "correct the file; config-examples/ has a commented one",
                )),
            );
            return report.finish().map_err(anyhow::Error::msg);
        }
    };
    report.check("config", Ok(describe(&cfg, config_path)));
    for (name, path, need) in directories(&cfg) {
        report.check(&name, check_dir(&path, need));
    }
    let (post, seal) = daemon::circuits(&cfg);
    for circuit in post.into_iter().chain(seal) {
        let name = format!("params {}", circuit.describe());
        report.check(&name, params::verify(circuit).map_err(problem_of_params));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    report.check("manager", rt.block_on(check_manager(&cfg, config_path)));
    for (name, ..) in cfg.attached_stores() {
        let outcome = rt.block_on(check_store(&cfg, config_path, &name));
        report.check(&format!("store {name} on the manager"), outcome);
    }
    let entries = daemon::processor_entries(&cfg, &EnvOverlay::default())?;
    for e in &entries {
        let spec = &e.spec;
        report.check(
            &format!("processor {}#{}", spec.stage, spec.index),
            check_processor(spec),
        );
    }
    report.check("management port", check_port(&cfg.rpc_listen()));
    report.finish().map_err(anyhow::Error::msg)
}

fn describe(cfg: &Config, path: &Path) -> String {
    let wdpost = cfg
        .sealing_thread
        .iter()
        .filter(|t| t.plan() == PlanKind::WdPost)
        .count();
    format!(
        "{} parses: {} sector threads, {wdpost} WindowPoSt threads, {} attached stores",
        path.display(),
        cfg.sealing_thread.len() - wdpost,
        cfg.attached.len()
    )
}

/// Each sector thread's location (room for one sector of its largest size) and each attached
/// store (room for a sealed sector and its cache), each once.
fn directories(cfg: &Config) -> Vec<(String, PathBuf, u64)> {
    let mut out: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut largest = 0;
    for t in &cfg.sealing_thread {
        if t.plan() == PlanKind::WdPost {
            continue;
        }
        let size = sizes_of(cfg, t).into_iter().max().unwrap_or(2048);
        largest = largest.max(size);
        let path = daemon::absolute(t.location.as_deref().unwrap_or_default());
        match out.iter_mut().find(|(_, p, _)| *p == path) {
            Some(seen) => seen.2 = seen.2.max(sector_footprint(size)),
            None => out.push((
                format!("location {}", path.display()),
                path,
                sector_footprint(size),
            )),
        }
    }
    for (name, path, _) in cfg.attached_stores() {
        let path = daemon::absolute(&path.display().to_string());
        // A persisted sector: the sealed replica (or the update) and a cache far smaller.
        let need = largest.max(2048) * 2;
        out.push((format!("store {name} ({})", path.display()), path, need));
    }
    out
}

fn sizes_of(cfg: &Config, t: &crate::config::ThreadSection) -> Vec<u64> {
    cfg.sealing_for(t)
        .allowed_sizes
        .unwrap_or_else(|| vec![2048])
}

/// The directory exists, takes a file, and has `need` bytes free.
fn check_dir(path: &Path, need: u64) -> Result<String, Problem> {
    if !path.is_dir() {
        let what = if path.exists() {
            "is not a directory".to_string()
        } else {
            "does not exist (is its disk mounted?)".to_string()
        };
        return Err(Problem::new(
            what,
            format!(
                "mount its disk, or `mkdir -p {}` and give it to the worker's user",
                path.display()
            ),
        ));
    }
    let probe = path.join(format!(".damocles-doctor-{}", std::process::id()));
    let wrote = std::fs::write(&probe, b"probe");
    let _ = std::fs::remove_file(&probe);
    if let Err(e) = wrote {
        return Err(Problem::new(
            format!("cannot write into it: {e}"),
            format!(
                "`chown` {} to the user the worker runs as, or mount it read-write",
                path.display()
            ),
        ));
    }
    let free = nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .map_err(|e| {
            Problem::new(
                format!("cannot read its free space: {e}"),
                "check the mount",
            )
        })?;
    if free < need {
        return Err(Problem::new(
            format!("{} free, a sector needs {}", bytesize(free), bytesize(need)),
            "free space on that disk, or point the thread at a larger one",
        ));
    }
    Ok(format!(
        "writable, {} free (a sector needs {})",
        bytesize(free),
        bytesize(need)
    ))
}

fn bytesize(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn problem_of_params(e: params::Unverified) -> Problem {
    Problem::new(e.what, e.fix)
}

fn manager_client(cfg: &Config, config_path: &Path) -> Result<(Client, bool), Problem> {
    let urls = cfg.manager_urls().map_err(|e| {
        Problem::new(
            format!("[sector_manager] rpc_client.addr: {e}"),
            "name the manager as host:port or its URL",
        )
    })?;
    let token = cfg.token(config_path).map_err(|e| {
        Problem::new(
            e,
            "create one with `damocles-manager util worker token create <name>` and write it there",
        )
    })?;
    let client = Client::with_fallbacks(urls, Duration::from_secs(10))
        .with_headers(cfg.manager_headers(&token));
    Ok((client, token.is_some()))
}

/// The manager answers a call made with this worker's credentials under this worker's name: a
/// heartbeat of no WindowPoSt job, which changes nothing.
async fn check_manager(cfg: &Config, config_path: &Path) -> Result<String, Problem> {
    let (client, has_token) = manager_client(cfg, config_path)?;
    let urls = cfg.manager_urls().unwrap_or_default();
    let name = cfg.worker.name.clone().unwrap_or_else(|| {
        urls.first()
            .and_then(|u| crate::manager_addr::host_port(u))
            .and_then(|hp| daemon::local_ip_towards(&hp))
            .unwrap_or_else(|| "127.0.0.1".into())
    });
    let urls = urls.join(", ");
    match client
        .call::<m::WdPoStHeartbeatJobs>((Vec::new(), name.clone()))
        .await
    {
        Ok(()) if has_token => Ok(format!(
            "{urls} answers, and takes this worker's token as worker {name:?}"
        )),
        Ok(()) => Ok(format!(
            "{urls} answers worker {name:?} without a token (its [auth] workers = \"optional\")"
        )),
        Err(CallError::Rpc(e)) if e.code == FORBIDDEN => Err(Problem::new(
            format!("{urls} refused: {}", e.message),
            format!(
                "create the token for this worker's name: `damocles-manager util worker token \
                 create {name}`, or set [worker] name to the token's worker"
            ),
        )),
        Err(CallError::Rpc(e)) if e.code == UNAUTHENTICATED => Err(Problem::new(
            format!("{urls} refused the credentials: {}", e.message),
            if has_token {
                "the token was revoked or belongs to another manager: create a new one with \
                 `damocles-manager util worker token create <name>` and put it in \
                 [sector_manager] rpc_client.token_file"
            } else {
                "create a token with `damocles-manager util worker token create <name>` and \
                 name its file in [sector_manager] rpc_client.token_file"
            },
        )),
        Err(e @ CallError::Transport { .. }) => Err(Problem::new(
            e,
            "start the manager, or correct [sector_manager] rpc_client.addr (and any firewall between)",
        )),
        Err(e) => Err(Problem::new(
            e,
            "check that the address is a damocles manager's JSON-RPC endpoint",
        )),
    }
}

/// The manager knows the attached store by its name (the daemon refuses to start otherwise).
async fn check_store(cfg: &Config, config_path: &Path, name: &str) -> Result<String, Problem> {
    let (client, _) = manager_client(cfg, config_path)?;
    match client.call::<m::StoreBasicInfo>((name.to_string(),)).await {
        Ok(Some(_)) => Ok("known to the manager".into()),
        Ok(None) => Err(Problem::new(
            format!("the manager has no persist store named {name:?}"),
            "add it to the manager's [[persist_store]], or correct [[attached]] name",
        )),
        Err(e) => Err(Problem::new(e, "see the manager check above")),
    }
}

/// The processor starts and prints its ready line within its `stable_wait`; it is then stopped.
fn check_processor(spec: &damocles_actors::processor::ProcessorSpec) -> Result<String, Problem> {
    let mut cmd = Command::new(&spec.bin);
    cmd.args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !spec.inherit_envs {
        cmd.env_clear();
    }
    cmd.envs(&spec.envs);
    let shown = format!("{} {}", spec.bin.display(), spec.args.join(" "));
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        Problem::new(
            format!("cannot start `{shown}`: {e}"),
            "correct its bin in [[processors.<stage>]], or install it",
        )
    })?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
    }
    let wait = spec.stable_wait + READY_GRACE;
    let first = rx.recv_timeout(wait);
    let _ = child.kill();
    let _ = child.wait();
    let want = ready_line(spec.stage);
    match first {
        Ok(line) if line.trim() == want => Ok(format!(
            "`{shown}` ready in {} ms",
            start.elapsed().as_millis()
        )),
        Ok(line) if line.is_empty() => Err(Problem::new(
            format!("`{shown}` exited without printing {want:?}"),
            "run it by hand to see its error",
        )),
        Ok(line) => Err(Problem::new(
            format!("`{shown}` printed {:?}, not {want:?}", line.trim()),
            "its first line must be the ready line: point bin at a damocles processor",
        )),
        Err(_) => Err(Problem::new(
            format!("`{shown}` printed nothing within {wait:?}"),
            "run it by hand to see why it hangs, or raise its stable_wait",
        )),
    }
}

/// Nothing listens on the management API's address yet.
fn check_port(listen: &str) -> Result<String, Problem> {
    damocles_actors::doctor::address_free(
        listen,
        "stop what holds it (a worker already running? `damocles-worker worker list`), or \
         choose another [worker.rpc_server] port",
    )
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn a_missing_or_full_directory_fails_with_its_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = check_dir(dir.path(), 2048).expect("a fresh directory passes");
        assert!(ok.starts_with("writable"), "{ok}");
        let full = check_dir(dir.path(), u64::MAX).expect_err("no disk has u64::MAX free");
        assert!(full.what.contains("a sector needs"), "{full:?}");
        let missing = check_dir(&dir.path().join("absent"), 1).expect_err("missing");
        assert!(missing.fix.contains("mkdir -p"), "{missing:?}");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        let not_dir = check_dir(&file, 1).expect_err("a file");
        assert_eq!(not_dir.what, "is not a directory");
    }

    #[test]
    fn a_taken_port_fails() {
        let held = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr").to_string();
        let e = check_port(&addr).expect_err("held");
        assert!(e.fix.contains("worker list"), "{e:?}");
        drop(held);
        check_port(&addr).expect("free again");
    }

    #[test]
    fn sizes_are_shown_readably() {
        assert_eq!(bytesize(512), "512 B");
        assert_eq!(bytesize(2048), "2.0 KiB");
        assert_eq!(bytesize(3 << 30), "3.0 GiB");
    }
}
