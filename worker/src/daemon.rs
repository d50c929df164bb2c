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
use damocles_actors::processor::{EnvOverlay, ProcessorSpec};
use damocles_actors::sealing;
use damocles_actors::sealing::env::{AttachedStore, ParamsStatus, SealingParams, ThreadEnv};
use damocles_actors::sealing::quota::DiskQuota;
use damocles_actors::sealing::store::Location;
use damocles_actors::supervisor::{
    PingSpec, ProcessorEntry, Shutdown, ThreadFactory, WorkerSupervisor,
};
use damocles_actors::thread::plan::PlanKind;
use damocles_actors::wdpost::slot::HEARTBEAT_INTERVAL;
use damocles_actors::wdpost::steps::PostEnv;
use damocles_actors::wire::auth::{ControlKey, THREAD_HEADER};
use damocles_actors::wire::jsonrpc::{CallError, Client, SERVICE_UNAVAILABLE};
use damocles_actors::wire::processor::Stage;
use damocles_actors::wire::seal_proof;
use damocles_actors::wire::venus::AcquireDealsSpec;
use damocles_actors::wire::venus_methods as m;
use damocles_actors::wire::venus_post::AllocatePoStSpec;
use damocles_proof_types as proof_types;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{Config, ProcessorSection, DEFAULT_PING_INTERVAL, DEFAULT_STABLE_WAIT};
use crate::live_limits::LiveLimits;
use crate::{manager_addr, mgmt_server, params};

pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(config_path)?;
    info!(file = %config_path.display(), config = ?cfg, "effective config");
    let system = actix::System::new();
    system.block_on(serve(cfg, config_path.to_path_buf()))
}

async fn serve(cfg: Config, config_path: std::path::PathBuf) -> anyhow::Result<()> {
    let urls = cfg.manager_urls().map_err(|e| anyhow!(e))?;
    let url = urls[0].clone();
    let token = cfg.token(&config_path)?;
    let manager = Client::with_fallbacks(urls.clone(), Duration::from_secs(60))
        .with_headers(cfg.manager_headers(&token));
    if token.is_none() {
        warn!("no token for the manager ([sector_manager] rpc_client.token_file or an Authorization header in rpc_client.headers): a manager with [auth] workers = \"required\" refuses every call, and this worker's management port takes changes only from its own machine");
    }
    let local_ip = manager_addr::host_port(&url)
        .and_then(|hp| local_ip_towards(&hp))
        .unwrap_or_else(|| "127.0.0.1".into());
    let name = cfg.worker.name.clone().unwrap_or_else(|| local_ip.clone());
    let listener = TcpListener::bind(cfg.rpc_listen())
        .with_context(|| format!("bind the management API on {}", cfg.rpc_listen()))?;
    let port = listener.local_addr()?.port();
    info!(worker = %name, managers = ?urls, listen = %listener.local_addr()?, "starting worker");

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

    let (quota_bytes, ignore_space) = cfg.disk_quota();
    let quota = Arc::new(DiskQuota::new(
        quota_bytes,
        ignore_space,
        cfg.sealing_thread
            .iter()
            .filter(|t| t.plan() != PlanKind::WdPost)
            .filter_map(|t| t.location.as_deref())
            .map(absolute)
            .collect(),
    ));
    let live = Arc::new(LiveLimits::new(config_path, limits.clone(), quota.clone()));
    live.clone().watch();

    let mut factories: Vec<ThreadFactory> = Vec::new();
    for (index, t) in cfg.sealing_thread.iter().enumerate() {
        let s = cfg.sealing_for(t);
        let (manager, limits, attached, instance) = (
            manager
                .clone()
                .with_header(THREAD_HEADER, index.to_string()),
            limits.clone(),
            attached.clone(),
            name.clone(),
        );
        if t.plan() == PlanKind::WdPost {
            let spec = AllocatePoStSpec {
                allowed_miners: s.allowed_miners.clone(),
                allowed_proof_types: s.allowed_sizes.as_ref().map(|sizes| {
                    sizes
                        .iter()
                        .filter_map(|b| proof_types::window_post_for_size(*b).ok())
                        .filter_map(|p| proof_types::window_post_name(p).ok())
                        .map(String::from)
                        .collect()
                }),
            };
            let params = params.post.clone();
            factories.push(ThreadFactory::WdPost(Box::new(move |processors| {
                Arc::new(PostEnv {
                    instance: instance.clone(),
                    manager: manager.clone(),
                    processors,
                    limits: limits.clone(),
                    attached: attached.clone(),
                    spec: spec.clone(),
                    recover_interval: s.recover_interval,
                    heartbeat_interval: HEARTBEAT_INTERVAL,
                    max_retries: s.max_retries,
                    params: params.clone(),
                })
            })));
            continue;
        }
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
            enable_deals: s.enable_deals,
            deals: AcquireDealsSpec {
                max_deals: s.max_deals,
                min_used_space: s.min_deal_space,
            },
        };
        let table = sealing::table_of(t.plan()).context("a sector plan has a table")?;
        let (params, quota) = (params.seal.clone(), quota.clone());
        factories.push(ThreadFactory::Sector(
            table,
            Box::new(move |processors| {
                Arc::new(ThreadEnv {
                    instance: instance.clone(),
                    location: location.clone(),
                    manager: manager.clone(),
                    processors,
                    limits: limits.clone(),
                    attached: attached.clone(),
                    sealing: sealing.clone(),
                    params: params.clone(),
                    quota: quota.clone(),
                })
            }),
        ));
    }
    let env_overlay = EnvOverlay::default();
    let entries = processor_entries(&cfg, &env_overlay)?;
    let ping = PingSpec {
        manager: manager.clone(),
        name: name.clone(),
        dest: format!("{local_ip}:{port}"),
        version: mgmt_server::version(),
        interval: cfg.worker.ping_interval.unwrap_or(DEFAULT_PING_INTERVAL),
    };
    let supervisor = WorkerSupervisor::new(entries, factories, Some(ping)).start();
    let guard = mgmt_server::Guard {
        control: token.as_deref().map(ControlKey::from_token),
        open_reads: cfg.worker.rpc_server.open_reads.unwrap_or(true),
    };
    let server = mgmt_server::serve(listener, supervisor.clone(), live, env_overlay, guard)?;
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
pub(crate) fn local_ip_towards(host_port: &str) -> Option<String> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect(host_port).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

/// `p` made absolute against the working directory, without `.` components.
pub(crate) fn absolute(p: &str) -> std::path::PathBuf {
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
            match manager.call::<m::StoreBasicInfo>((name.clone(),)).await {
                Ok(info) => break info,
                Err(e @ CallError::Transport { .. }) => {
                    warn!(error = %e, "manager not reachable yet; retrying in 2s");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                // Its database is down or busy: that passes, and the worker waits for it.
                Err(CallError::Rpc(e)) if e.code == SERVICE_UNAVAILABLE => {
                    warn!(error = %e, "manager cannot take calls yet; retrying in 2s");
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

/// Where each kind of thread learns that its Groth parameters are ready.
struct ParamsWatch {
    /// C2 of the sealer threads.
    seal: watch::Receiver<ParamsStatus>,
    /// The WindowPoSt slots.
    post: watch::Receiver<ParamsStatus>,
}

/// The circuits the configured threads prove, each once, smallest sector size first: the
/// WindowPoSt slots', and the sector threads' (a snap-up's update circuit before PoRep: it is
/// quicker to generate).
pub(crate) fn circuits(cfg: &Config) -> (Vec<params::Circuit>, Vec<params::Circuit>) {
    let sizes = |wdpost: bool| -> Vec<u64> {
        let mut v: Vec<u64> = cfg
            .sealing_thread
            .iter()
            .filter(|t| (t.plan() == PlanKind::WdPost) == wdpost)
            .flat_map(|t| {
                cfg.sealing_for(t)
                    .allowed_sizes
                    .unwrap_or_else(|| vec![2048])
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let post = sizes(true)
        .into_iter()
        .filter_map(|b| proof_types::window_post_for_size(b).ok())
        .map(params::Circuit::WindowPost)
        .collect();
    let seal = sizes(false)
        .into_iter()
        .filter_map(seal_proof::for_size)
        .filter_map(|code| params::circuits_of_seal(code).ok())
        .flat_map(|[_, update, seal]| [update, seal])
        .collect();
    (post, seal)
}

/// Generates missing small-sector parameters in the background, WindowPoSt first (seconds),
/// then snap-up's update and PoRep (minutes); threads wait on the channels only when they need them.
fn start_params_generation(cfg: &Config) -> ParamsWatch {
    let (mut post, mut seal) = circuits(cfg);
    // Larger sizes' files are the operator's to provide; a thread that needs one names it.
    let generated = |c: &params::Circuit| c.sector_size() <= 8 << 20;
    post.retain(generated);
    seal.retain(generated);
    let checking = || {
        watch::channel(ParamsStatus::Generating(
            "checking the parameter cache".into(),
        ))
    };
    let (post_tx, post_rx) = checking();
    let (seal_tx, seal_rx) = checking();
    std::thread::spawn(move || {
        if generate(post, &post_tx) {
            generate(seal, &seal_tx);
        } else {
            let _ = seal_tx.send(ParamsStatus::Failed(
                "WindowPoSt parameter generation failed first; see the log".into(),
            ));
        }
    });
    ParamsWatch {
        seal: seal_rx,
        post: post_rx,
    }
}

/// Makes sure each circuit's parameters exist, telling `tx` what happens; false on failure.
fn generate(circuits: Vec<params::Circuit>, tx: &watch::Sender<ParamsStatus>) -> bool {
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
                return false;
            }
        }
        if let Err(e) = params::ensure(c) {
            error!(error = %format!("{e:#}"), "parameter generation failed");
            let _ = tx.send(ParamsStatus::Failed(format!("{e:#}")));
            return false;
        }
    }
    info!("Groth parameters ready");
    let _ = tx.send(ParamsStatus::Ready);
    true
}

/// One processor per `[[processors.<stage>]]` entry; a stage without entries gets one child of
/// this same executable.
pub(crate) fn processor_entries(
    cfg: &Config,
    env_overlay: &EnvOverlay,
) -> anyhow::Result<Vec<ProcessorEntry>> {
    let exe = std::env::current_exe().context("find the worker's own executable")?;
    let configured: HashMap<Stage, &Vec<ProcessorSection>> =
        cfg.processor_entries().into_iter().collect();
    let default = vec![ProcessorSection::default()];
    let mut stages: Vec<Stage> = Vec::new();
    for t in &cfg.sealing_thread {
        match sealing::table_of(t.plan()) {
            Some(table) => stages.extend(table.stages),
            None => stages.push(Stage::WindowPost),
        }
    }
    stages.sort_unstable();
    stages.dedup();
    let mut out = Vec::new();
    for stage in stages {
        let entries = configured.get(&stage).copied().unwrap_or(&default);
        for (index, e) in entries.iter().enumerate() {
            let mut envs = e.envs.clone().unwrap_or_default();
            if let Some(n) = e.numa_preferred {
                envs.insert("VENUS_WORKER_NUMA_PREFERRED".into(), n.to_string());
            }
            out.push(ProcessorEntry {
                spec: ProcessorSpec {
                    stage,
                    index,
                    bin: e.bin.clone().map(Into::into).unwrap_or_else(|| exe.clone()),
                    args: e
                        .args
                        .clone()
                        .unwrap_or_else(|| vec!["processor".into(), stage.to_string()]),
                    envs,
                    inherit_envs: e.inherit_envs.unwrap_or(true),
                    stable_wait: e.stable_wait.unwrap_or(DEFAULT_STABLE_WAIT),
                    timeout: e.timeout,
                    max_line: damocles_actors::processor::MAX_LINE,
                    auto_restart: e.auto_restart.unwrap_or(true),
                    start: cfg.processors.start,
                    cpuset: e.cgroup.as_ref().and_then(|c| c.cpuset.clone()),
                    cgroup_root: "/sys/fs/cgroup".into(),
                    env_overlay: env_overlay.clone(),
                },
                concurrent: e.concurrent,
                locks: e.locks.clone().unwrap_or_default(),
            });
        }
    }
    Ok(out)
}
