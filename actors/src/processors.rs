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
use crate::processor::{Call, Processor};

/// No `concurrent` set: effectively unlimited (damocles' selector assumes 64).
const UNLIMITED: usize = 64;

#[derive(Clone)]
pub struct ProcessorHandle {
    pub addr: Addr<Processor>,
    /// The child's pid, kept current by the actor.
    pub pid: Arc<AtomicU32>,
    /// In-flight capacity of this child.
    slots: Arc<Semaphore>,
    pub locks: Vec<String>,
}

impl ProcessorHandle {
    pub fn new(
        addr: Addr<Processor>,
        pid: Arc<AtomicU32>,
        concurrent: Option<usize>,
        locks: Vec<String>,
    ) -> Self {
        ProcessorHandle {
            addr,
            pid,
            slots: Arc::new(Semaphore::new(concurrent.unwrap_or(UNLIMITED))),
            locks,
        }
    }
}

#[derive(Clone, Default)]
pub struct Processors {
    by_stage: HashMap<String, Vec<ProcessorHandle>>,
}

impl Processors {
    pub fn new(by_stage: HashMap<String, Vec<ProcessorHandle>>) -> Self {
        Processors { by_stage }
    }

    /// Runs `task` on a child of `stage`. `on_start` is told the processor's display name
    /// (`ext(pid: N)`) once a child was chosen and the task is about to be sent.
    pub async fn call(
        &self,
        stage: &str,
        task: Value,
        limits: &StageLimits,
        on_start: impl FnOnce(String),
    ) -> Result<Value, String> {
        let handles = self
            .by_stage
            .get(stage)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("no processor configured for stage {stage}"))?;
        let (handle, _slot) = pick(handles).await;
        let _locks = limits.acquire_locks(&handle.locks).await;
        on_start(format!("ext(pid: {})", handle.pid.load(Ordering::Relaxed)));
        handle
            .addr
            .send(Call(task))
            .await
            .map_err(|e| format!("processor {stage} is gone: {e}"))?
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
