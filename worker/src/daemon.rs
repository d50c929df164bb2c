//! `damocles-worker daemon`: reads the config, checks the manager knows our stores, starts
//! parameter generation in the background, the `WorkerSupervisor` (processors and threads) and
//! the management API, and shuts everything down on SIGTERM/SIGINT.

use std::collections::HashMap;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use anyhow::{anyhow, Context as _};
use damocles_actors::limits::StageLimits;
use damocles_actors::processor::ProcessorSpec;
use damocles_actors::sealing::steps::{AttachedStore, ParamsStatus, SealingParams, ThreadEnv};
use damocles_actors::sealing::store::Location;
use damocles_actors::supervisor::{
    PingSpec, ProcessorEntry, Shutdown, ThreadFactory, WorkerSupervisor,
};
use damocles_actors::wire::jsonrpc::{CallError, Client};
use damocles_actors::wire::venus::{seal_proof, StoreBasicInfo};
use filecoin_proofs_api::RegisteredSealProof;
use serde_json::json;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{Config, ProcessorSection, DEFAULT_PING_INTERVAL, DEFAULT_STABLE_WAIT};
use crate::{manager_addr, mgmt_server, params, stages};

const SEALER_STAGES: &[&str] = &["add_pieces", "tree_d", "pc1", "pc2", "c1", "c2"];

pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config_path)?;
    info!(file = %config_path.display(), config = ?cfg, "effective config");
    let system = actix::System::new();
    system.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let url = manager_addr::to_url(&cfg.sector_manager.rpc_client.addr).map_err(|e| anyhow!(e))?;
    let manager = Client::new(url.clone(), Duration::from_secs(60));
    let local_ip = manager_addr::host_port(&url)
        .and_then(|hp| local_ip_towards(&hp))
        .unwrap_or_else(|| "127.0.0.1".into());
    let name = cfg.worker.name.clone().unwrap_or_else(|| local_ip.clone());
    let listener = TcpListener::bind(cfg.rpc_listen())
        .with_context(|| format!("bind the management API on {}", cfg.rpc_listen()))?;
    let port = listener.local_addr()?.port();
    info!(worker = %name, manager = %url, listen = %listener.local_addr()?, "starting worker");

    let attached = check_stores(&cfg, &manager).await?;
    let params = start_params_generation(&cfg);
    let limits = Arc::new(StageLimits::new(
        &cfg.processors.limitation.concurrent,
        &cfg.processors
            .limitation
            .staggered
            .iter()
            .map(|(k, v)| (k.clone(), **v))
            .collect(),
        &cfg.processors.ext_locks,
    ));

    let mut factories: Vec<ThreadFactory> = Vec::new();
    for (i, t) in cfg.sealing_thread.iter().enumerate() {
        if t.plan.as_deref() == Some("wdpost") {
            warn!(
                thread = i,
                "plan wdpost is not served by this worker version yet; the thread is not started"
            );
            continue;
        }
        let s = cfg.sealing_for(t);
        let location = Location::new(absolute(t.location.as_deref().unwrap_or_default()));
        let sealing = SealingParams {
            allowed_miners: s.allowed_miners.clone(),
            allowed_proof_types: s
                .allowed_sizes
                .as_ref()
                .map(|v| v.iter().filter_map(|b| seal_proof::for_size(*b)).collect()),
            max_retries: s.max_retries,
            seal_interval: s.seal_interval,
            recover_interval: s.recover_interval,
            rpc_polling_interval: s.rpc_polling_interval,
        };
        let (manager, limits, attached, params, instance) = (
            manager.clone(),
            limits.clone(),
            attached.clone(),
            params.clone(),
            name.clone(),
        );
        factories.push(Box::new(move |processors| {
            Arc::new(ThreadEnv {
                instance: instance.clone(),
                location: location.clone(),
                manager: manager.clone(),
                processors,
                limits: limits.clone(),
                attached: attached.clone(),
                sealing: sealing.clone(),
                params: params.clone(),
            })
        }));
    }
    let entries = if factories.is_empty() {
        Vec::new()
    } else {
        processor_entries(&cfg)?
    };
    let ping = PingSpec {
        manager: manager.clone(),
        name: name.clone(),
        dest: format!("{local_ip}:{port}"),
        version: mgmt_server::version(),
        interval: cfg.worker.ping_interval.unwrap_or(DEFAULT_PING_INTERVAL),
    };
    let supervisor = WorkerSupervisor::new(entries, factories, Some(ping)).start();
    let server = mgmt_server::serve(listener, supervisor.clone())?;
    let handle = server.handle();
    actix_rt::spawn(server);
    wait_for_signal().await;
    shutdown(&supervisor).await;
    handle.stop(true).await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
}

async fn shutdown(supervisor: &Addr<WorkerSupervisor>) {
    // Threads keep their saved records; processor children are killed with their groups.
    if tokio::time::timeout(Duration::from_secs(10), supervisor.send(Shutdown))
        .await
        .is_err()
    {
        warn!("processors did not stop within 10s");
    }
    info!("worker stopped");
}

/// The local address the OS would use to reach the manager (no packet is sent).
fn local_ip_towards(host_port: &str) -> Option<String> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect(host_port).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

/// `p` made absolute against the working directory, without `.` components.
fn absolute(p: &str) -> std::path::PathBuf {
    let path = Path::new(p);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Every attached store must be known to the manager (damocles refuses to start otherwise).
/// Waits, logging every try, for a manager that is not up yet.
async fn check_stores(cfg: &Config, manager: &Client) -> anyhow::Result<Vec<AttachedStore>> {
    let mut out = Vec::new();
    for (name, path, readonly) in cfg.attached_stores() {
        let path = absolute(&path.display().to_string());
        std::fs::create_dir_all(&path)
            .with_context(|| format!("create attached store {}", path.display()))?;
        let info = loop {
            match manager
                .call::<Option<StoreBasicInfo>>("Venus.StoreBasicInfo", json!([name]))
                .await
            {
                Ok(info) => break info,
                Err(e @ CallError::Transport { .. }) => {
                    warn!(error = %e, "manager not reachable yet; retrying in 2s");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    return Err(anyhow!(
                        "check attached store {name:?} with the manager: {e}"
                    ))
                }
            }
        };
        if info.is_none() {
            return Err(anyhow!(
                "store basic info of instance {name:?} not found in damocles-manager: add it to the manager's persist stores or fix [[attached]] name"
            ));
        }
        out.push(AttachedStore {
            name,
            path,
            readonly,
        });
    }
    Ok(out)
}

/// Generates missing small-sector parameters in the background; threads wait on the channel
/// only when they reach C2.
fn start_params_generation(cfg: &Config) -> watch::Receiver<ParamsStatus> {
    let mut sizes: Vec<u64> = cfg
        .sealing_thread
        .iter()
        .filter(|t| t.plan.as_deref() != Some("wdpost"))
        .flat_map(|t| {
            cfg.sealing_for(t)
                .allowed_sizes
                .unwrap_or_else(|| vec![2048])
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let circuits: Vec<params::Circuit> = sizes
        .into_iter()
        .filter_map(seal_proof::for_size)
        .filter_map(|code| stages::seal_proof(code).ok())
        .filter(|p: &RegisteredSealProof| u64::from(p.sector_size()) <= 8 << 20)
        .map(params::Circuit::Seal)
        .collect();
    let (tx, rx) = watch::channel(ParamsStatus::Generating(
        "checking the parameter cache".into(),
    ));
    std::thread::spawn(move || {
        for c in circuits {
            match params::present(c) {
                Ok(true) => continue,
                Ok(false) => {
                    let _ = tx.send(ParamsStatus::Generating(format!(
                        "generating {}",
                        c.params_path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    )));
                }
                Err(e) => {
                    let _ = tx.send(ParamsStatus::Failed(format!("{e:#}")));
                    return;
                }
            }
            if let Err(e) = params::ensure(c) {
                error!(error = %format!("{e:#}"), "parameter generation failed");
                let _ = tx.send(ParamsStatus::Failed(format!("{e:#}")));
                return;
            }
        }
        info!("Groth parameters ready");
        let _ = tx.send(ParamsStatus::Ready);
    });
    rx
}

/// One processor per `[[processors.<stage>]]` entry; a stage without entries gets one child of
/// this same executable.
fn processor_entries(cfg: &Config) -> anyhow::Result<Vec<ProcessorEntry>> {
    let exe = std::env::current_exe().context("find the worker's own executable")?;
    let configured: HashMap<&str, &Vec<ProcessorSection>> =
        cfg.processor_entries().into_iter().collect();
    let default = vec![ProcessorSection::default()];
    let mut out = Vec::new();
    for stage in SEALER_STAGES {
        let entries = configured.get(stage).copied().unwrap_or(&default);
        for (index, e) in entries.iter().enumerate() {
            let mut envs = e.envs.clone().unwrap_or_default();
            if let Some(n) = e.numa_preferred {
                envs.insert("VENUS_WORKER_NUMA_PREFERRED".into(), n.to_string());
            }
            out.push(ProcessorEntry {
                spec: ProcessorSpec {
                    stage: stage.to_string(),
                    index,
                    bin: e.bin.clone().map(Into::into).unwrap_or_else(|| exe.clone()),
                    args: e
                        .args
                        .clone()
                        .unwrap_or_else(|| vec!["processor".into(), stage.to_string()]),
                    envs,
                    inherit_envs: e.inherit_envs.unwrap_or(true),
                    stable_wait: e.stable_wait.unwrap_or(DEFAULT_STABLE_WAIT),
                    auto_restart: e.auto_restart.unwrap_or(true),
                    cpuset: e.cgroup.as_ref().and_then(|c| c.cpuset.clone()),
                    cgroup_root: "/sys/fs/cgroup".into(),
                },
                concurrent: e.concurrent,
                locks: e.locks.clone().unwrap_or_default(),
            });
        }
    }
    Ok(out)
}
