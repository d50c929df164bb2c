//! What a thread is doing inside a step (waiting for a stage limit, running a processor), written
//! by the running step and read by the thread when `worker list` asks.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use crate::wire::worker_api::ThreadState;

/// What the thread is doing inside a step, for `worker list`.
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    /// Between steps, or in a step that only talks to the manager.
    Idle,
    /// Held back: by a stage limit, missing parameters, a quota.
    Waiting {
        /// When the wait began.
        since: Instant,
        /// Why, as operators read it.
        reason: String,
    },
    /// A processor is at work on the step.
    Running {
        /// When the processor took the task.
        since: Instant,
        /// Which processor (`pc1#0`).
        proc: Option<String>,
    },
}

impl Activity {
    /// What `worker list` shows for a thread doing this, paused since `paused_at` if it is.
    pub fn thread_state(self, paused_at: Option<Instant>) -> ThreadState {
        match (paused_at, self) {
            (Some(at), _) => ThreadState::Paused {
                elapsed: at.elapsed().as_secs(),
            },
            (None, Activity::Running { since, proc }) => ThreadState::Running {
                elapsed: since.elapsed().as_secs(),
                proc,
            },
            (None, Activity::Waiting { since, reason }) => ThreadState::Waiting {
                elapsed: since.elapsed().as_secs(),
                reason: Some(reason),
            },
            (None, Activity::Idle) => ThreadState::Idle,
        }
    }

    /// Waiting from now on, for `reason`.
    pub fn waiting(reason: impl Into<String>) -> Self {
        Activity::Waiting {
            since: Instant::now(),
            reason: reason.into(),
        }
    }
}

/// Shared between a thread and its running step: the step writes, the thread reads.
pub type ActivityCell = Arc<Mutex<Activity>>;

/// A new cell, idle.
pub fn idle_cell() -> ActivityCell {
    Arc::new(Mutex::new(Activity::Idle))
}

/// Sets what the thread is doing.
pub fn set_activity(cell: &ActivityCell, a: Activity) {
    if let Ok(mut g) = cell.lock() {
        *g = a;
    }
}

/// What the thread is doing now.
pub fn activity(cell: &ActivityCell) -> Activity {
    cell.lock().map(|a| a.clone()).unwrap_or(Activity::Idle)
}
