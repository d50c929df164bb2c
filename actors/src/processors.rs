//! The processors of a worker by stage, and how a caller picks one: the child with the most free
//! capacity (`concurrent` per child), holding the child's `locks` while it runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::StageLimits;
use crate::processor::{default_timeout, Call, EnsureStarted, Processor};
use crate::wire::processor::Stage;

/// No `concurrent` set: effectively unlimited (damocles' selector assumes 64).
const UNLIMITED: usize = 64;

/// One processor child as callers pick it: its actor, capacity, locks and timeout.
#[derive(Clone)]
pub struct ProcessorHandle {
    /// The child's actor.
    pub addr: Addr<Processor>,
    /// The child's pid, kept current by the actor.
    pub pid: Arc<AtomicU32>,
    /// In-flight capacity of this child.
    slots: Arc<Semaphore>,
    /// The `ext_locks` a task on it holds.
    pub locks: Vec<String>,
    /// `[[processors.<stage>]] timeout`, if set.
    timeout: Option<Duration>,
}

impl ProcessorHandle {
    /// A handle on a started processor.
    pub fn new(
        addr: Addr<Processor>,
        pid: Arc<AtomicU32>,
        concurrent: Option<usize>,
        locks: Vec<String>,
        timeout: Option<Duration>,
    ) -> Self {
        ProcessorHandle {
            addr,
            pid,
            slots: Arc::new(Semaphore::new(concurrent.unwrap_or(UNLIMITED))),
            locks,
            timeout,
        }
    }
}

/// Every processor child of the worker, by stage.
#[derive(Clone, Default)]
pub struct Processors {
    by_stage: HashMap<Stage, Vec<ProcessorHandle>>,
}

impl Processors {
    /// The worker's processors, grouped by stage.
    pub fn new(by_stage: HashMap<Stage, Vec<ProcessorHandle>>) -> Self {
        Processors { by_stage }
    }

    /// Runs `task` on a child of `stage` (for a sector of `sector_size` bytes, which sets the
    /// default timeout). `on_start` is told the processor's display name (`ext(pid: N)`) once a
    /// child was chosen and the task is about to be sent. `hold` (the stage's slot) and the
    /// child's capacity stay taken until the child answers, even if the caller stops waiting:
    /// the child is still busy with the task.
    pub async fn call<H: Send + 'static>(
        &self,
        stage: Stage,
        sector_size: u64,
        task: Value,
        limits: &StageLimits,
        hold: H,
        on_start: impl FnOnce(String),
    ) -> Result<Value, String> {
        let handles = self
            .by_stage
            .get(&stage)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("no processor configured for stage {stage}"))?;
        let (handle, slot) = pick(handles).await;
        let locks = limits.acquire_locks(&handle.locks).await;
        // A processor whose child starts at its first task starts it now, to name its pid.
        let pid = handle
            .addr
            .send(EnsureStarted)
            .await
            .unwrap_or_else(|_| handle.pid.load(Ordering::Relaxed));
        on_start(format!("ext(pid: {pid})"));
        let timeout = handle
            .timeout
            .unwrap_or_else(|| default_timeout(stage, sector_size));
        let answer = handle.addr.send(Call { task, timeout });
        let started = std::time::Instant::now();
        let running = tokio::spawn(async move {
            let out = answer.await;
            drop((slot, locks, hold));
            let out = out.map_err(|e| format!("processor {stage} is gone: {e}"))?;
            let outcome = if out.is_ok() { "ok" } else { "failed" };
            crate::metrics::observe(
                "damocles_worker_stage_duration_seconds",
                &[("stage", stage.name()), ("outcome", outcome)],
                started.elapsed(),
            );
            out
        });
        running
            .await
            .map_err(|e| format!("processor call stopped: {e}"))?
    }
}

/// The child with the most free capacity; when all are full, waits for the first to free up.
async fn pick(handles: &[ProcessorHandle]) -> (&ProcessorHandle, OwnedSemaphorePermit) {
    loop {
        let best = handles
            .iter()
            .filter(|h| h.slots.available_permits() > 0)
            .max_by_key(|h| h.slots.available_permits());
        if let Some(h) = best {
            if let Ok(p) = h.slots.clone().try_acquire_owned() {
                return (h, p);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
