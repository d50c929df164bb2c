//! `WorkerSupervisor`: starts every actor of a worker (processors, then sealing threads and
//! WindowPoSt slots), keeps them running (actix restarts a stopped child; the child backs off and
//! logs it), answers the management API by asking the threads, and pings the manager every
//! `ping_interval`.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use tracing::{info, warn};

use crate::processor::{self, Processor, ProcessorSpec};
use crate::processors::{ProcessorHandle, Processors};
use crate::sealing::env::ThreadEnv;
use crate::sealing::sector_plan::SectorPlan;
use crate::sealing::table::Table;
use crate::thread::control::{Control, GetInfo, ThreadHandle};
use crate::thread::plan::Plan;
use crate::thread::runner::ThreadRunner;
use crate::wdpost::slot::WdPostPlan;
use crate::wdpost::steps::PostEnv;
use crate::wire::jsonrpc::Client;
use crate::wire::processor::Stage;
use crate::wire::venus::{WorkerInfo, WorkerInfoSummary};
use crate::wire::venus_methods::WorkerPing;
use crate::wire::worker_api::{ThreadInfo, ThreadState};

/// One `[[processors.<stage>]]` entry, resolved.
pub struct ProcessorEntry {
    /// How to start it.
    pub spec: ProcessorSpec,
    /// How many tasks it takes at once (none: one).
    pub concurrent: Option<usize>,
    /// The `ext_locks` each task holds.
    pub locks: Vec<String>,
}

/// How and where to ping the manager.
#[derive(Clone)]
pub struct PingSpec {
    /// The manager, with the worker's token.
    pub manager: Client,
    /// The worker's name.
    pub name: String,
    /// Its management address, as the manager reaches it.
    pub dest: String,
    /// Its version.
    pub version: String,
    /// How often.
    pub interval: Duration,
}

/// Builds one thread's environment once the processors exist.
pub enum ThreadFactory {
    /// A sector thread of a plan's table (sealer, snap-up), and its environment.
    Sector(&'static Table, Box<dyn Fn(Processors) -> Arc<ThreadEnv>>),
    /// A WindowPoSt slot's environment.
    WdPost(Box<dyn Fn(Processors) -> Arc<PostEnv>>),
}

/// The actor at the root of a worker: its processors, threads and pings.
pub struct WorkerSupervisor {
    processor_entries: Vec<ProcessorEntry>,
    thread_factories: Vec<ThreadFactory>,
    ping: Option<PingSpec>,
    processors: Vec<Addr<Processor>>,
    threads: Vec<ThreadHandle>,
}

impl WorkerSupervisor {
    /// A supervisor for these processors and threads, pinging as `ping` says.
    pub fn new(
        processor_entries: Vec<ProcessorEntry>,
        thread_factories: Vec<ThreadFactory>,
        ping: Option<PingSpec>,
    ) -> Self {
        WorkerSupervisor {
            processor_entries,
            thread_factories,
            ping,
            processors: Vec::new(),
            threads: Vec::new(),
        }
    }

    fn thread(&self, index: usize) -> Result<&ThreadHandle, ControlError> {
        self.threads.get(index).ok_or(ControlError::NotFound(index))
    }
}

impl Actor for WorkerSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let mut by_stage: HashMap<Stage, Vec<ProcessorHandle>> = HashMap::new();
        for entry in self.processor_entries.drain(..) {
            let pid = Arc::new(AtomicU32::new(0));
            let spec = entry.spec;
            let stage = spec.stage;
            let timeout = spec.timeout;
            let pid2 = pid.clone();
            let addr = Supervisor::start(move |_| Processor::new(spec, pid2));
            self.processors.push(addr.clone());
            by_stage
                .entry(stage)
                .or_default()
                .push(ProcessorHandle::new(
                    addr,
                    pid,
                    entry.concurrent,
                    entry.locks,
                    timeout,
                ));
        }
        let processors = Processors::new(by_stage);
        for (index, factory) in self.thread_factories.iter().enumerate() {
            let handle = match factory {
                ThreadFactory::Sector(table, f) => {
                    let plan = SectorPlan::new(table, f(processors.clone()));
                    let kind = plan.kind();
                    let addr = Supervisor::start(move |_| ThreadRunner::new(index, plan));
                    ThreadHandle::of(&addr, kind)
                }
                ThreadFactory::WdPost(f) => {
                    let plan = WdPostPlan::new(f(processors.clone()));
                    let kind = plan.kind();
                    let addr = Supervisor::start(move |_| ThreadRunner::new(index, plan));
                    ThreadHandle::of(&addr, kind)
                }
            };
            self.threads.push(handle);
        }
        info!(
            threads = self.threads.len(),
            processors = self.processors.len(),
            "worker supervisor started"
        );
        if let Some(ping) = self.ping.clone() {
            ctx.run_later(Duration::from_millis(500), |_, ctx| {
                ctx.notify(PingNow);
            });
            ctx.run_interval(ping.interval, |_, ctx| ctx.notify(PingNow));
        }
    }
}

/// Why a control call was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// No thread has that index.
    #[error("worker #{0} not found")]
    NotFound(usize),
    /// The thread refused (a state it cannot take).
    #[error("{0}")]
    Refused(String),
    /// The thread's actor did not answer.
    #[error("thread actor unavailable: {0}")]
    Unavailable(String),
}

/// Every thread's info, in index order.
#[derive(Message)]
#[rtype(result = "Vec<ThreadInfo>")]
pub struct ListThreads;

impl Handler<ListThreads> for WorkerSupervisor {
    type Result = ResponseFuture<Vec<ThreadInfo>>;
    fn handle(&mut self, _: ListThreads, _ctx: &mut Self::Context) -> Self::Result {
        let asks: Vec<_> = self.threads.iter().map(|t| t.info.send(GetInfo)).collect();
        let plans: Vec<_> = self.threads.iter().map(|t| t.plan).collect();
        Box::pin(async move {
            join_all(asks)
                .await
                .into_iter()
                .zip(plans)
                .enumerate()
                .map(|(index, (r, plan))| {
                    r.unwrap_or_else(|e| ThreadInfo {
                        location: "-".into(),
                        plan: plan.to_string(),
                        job_id: None,
                        index,
                        thread_state: ThreadState::Idle,
                        job_state: String::new(),
                        job_stage: None,
                        last_error: Some(format!("critical: thread actor unavailable: {e}")),
                        pausing: false,
                    })
                })
                .collect()
        })
    }
}

/// An operator's order to thread `index`.
#[derive(Message)]
#[rtype(result = "Result<bool, ControlError>")]
pub struct ControlThread {
    /// The thread's place in the config file.
    pub index: usize,
    /// Pause or resume.
    pub control: Control,
}

impl Handler<ControlThread> for WorkerSupervisor {
    type Result = ResponseFuture<Result<bool, ControlError>>;
    fn handle(&mut self, msg: ControlThread, _ctx: &mut Self::Context) -> Self::Result {
        let thread = self.thread(msg.index).cloned();
        Box::pin(async move {
            thread?
                .control
                .send(msg.control)
                .await
                .map_err(|e| ControlError::Unavailable(e.to_string()))?
                .map_err(ControlError::Refused)
        })
    }
}

/// Kill every processor child (worker shutdown). Threads keep their saved records.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for WorkerSupervisor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        let stops: Vec<_> = self
            .processors
            .iter()
            .map(|p| p.send(processor::Shutdown))
            .collect();
        Box::pin(async move {
            join_all(stops).await;
        })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct PingNow;

impl Handler<PingNow> for WorkerSupervisor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: PingNow, ctx: &mut Self::Context) -> Self::Result {
        let Some(ping) = self.ping.clone() else {
            return Box::pin(async {});
        };
        let list = ctx.address().send(ListThreads);
        Box::pin(async move {
            let Ok(threads) = list.await else { return };
            let info = WorkerInfo {
                name: ping.name.clone(),
                dest: ping.dest.clone(),
                version: ping.version.clone(),
                summary: summarize(&threads),
                threads: Some(threads),
            };
            if let Err(e) = ping.manager.call::<WorkerPing>((info,)).await {
                warn!(error = %e, "ping to the manager failed");
            }
        })
    }
}

/// The ping's counters (damocles: Idle threads are counted nowhere but in `Threads`).
pub fn summarize(threads: &[ThreadInfo]) -> WorkerInfoSummary {
    let mut s = WorkerInfoSummary {
        threads: threads.len() as u64,
        ..Default::default()
    };
    for t in threads {
        s.empty += u64::from(t.job_id.is_none());
        s.errors += u64::from(t.last_error.is_some());
        match t.thread_state {
            ThreadState::Paused { .. } => s.paused += 1,
            ThreadState::Running { .. } => s.running += 1,
            ThreadState::Waiting { .. } => s.waiting += 1,
            ThreadState::Idle => {}
        }
    }
    s
}
