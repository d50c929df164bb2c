//! What a kind of thread says to the runner: the step its state leads to, what a step's result
//! means, what it keeps on disk, what operators see. Everything else (pause, resume, timers,
//! activity, restarts) is the runner's.

use std::fmt;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use super::activity::{Activity, ActivityCell};
use crate::by_name;

/// A step, a save or a side call in flight; it owns what it needs.
pub type StepFuture<T> = LocalBoxFuture<'static, T>;

/// The kinds of thread a worker runs (`[[sealing_thread]] plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PlanKind {
    /// Seals new sectors (CC, or deals) from `Empty` to `Finished`.
    #[default]
    Sealer,
    /// Encodes deals into proven CC sectors (snap-up).
    SnapUp,
    /// Seals a proven sector again from its ticket and pieces, after its files were lost.
    Rebuild,
    /// Regenerates a piece of a sealed sector and delivers it (unseal).
    Unseal,
    /// Claims and proves WindowPoSt jobs.
    WdPost,
}

impl PlanKind {
    /// Every plan a worker can run.
    pub const ALL: &'static [PlanKind] = &[
        PlanKind::Sealer,
        PlanKind::SnapUp,
        PlanKind::Rebuild,
        PlanKind::Unseal,
        PlanKind::WdPost,
    ];

    /// The name in config files and in `worker list`.
    pub fn name(self) -> &'static str {
        match self {
            PlanKind::Sealer => "sealer",
            PlanKind::SnapUp => "snapup",
            PlanKind::Rebuild => "rebuild",
            PlanKind::Unseal => "unseal",
            PlanKind::WdPost => "wdpost",
        }
    }
}

by_name!(PlanKind, "plan");

/// What the thread does once a step's result is taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run the step of the (new) state now.
    Now,
    /// Run a step again after `delay`; `shown` is the reason `worker list` shows meanwhile.
    After {
        /// How long to wait.
        delay: Duration,
        /// Shown as the thread's activity while it waits (none: idle).
        shown: Option<String>,
    },
    /// Park the thread with this error until an operator resumes it.
    Park(String),
}

/// What happens to the thread's `last_error`.
#[derive(Debug, Clone, PartialEq)]
pub enum LastError {
    /// Stays as it is.
    Keep,
    /// The trouble is over.
    Clear,
    /// Something went wrong that operators should see.
    Set(String),
}

/// The runner's orders after a step (or a side tick) ended.
pub struct Settled {
    /// What next.
    pub next: Next,
    /// Write the plan's record before going on (see [`Plan::save`]).
    pub save: bool,
    /// The change to `last_error`.
    pub error: LastError,
    /// Cancel the step in flight: the work it does is not the thread's any more.
    pub abandon_step: bool,
    /// Started once the record is saved and left to run (a report to the manager).
    pub then: Option<StepFuture<()>>,
}

impl Settled {
    /// Go on with `next`; nothing saved, `last_error` kept.
    pub fn next(next: Next) -> Self {
        Settled {
            next,
            save: false,
            error: LastError::Keep,
            abandon_step: false,
            then: None,
        }
    }

    /// The same, with the record saved first.
    pub fn saved(self) -> Self {
        Settled { save: true, ..self }
    }

    /// The same, with `last_error` changed.
    pub fn error(self, error: LastError) -> Self {
        Settled { error, ..self }
    }
}

/// What operators see of the plan's work in `worker list`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanView {
    /// Where the thread keeps its files (`-` when it has none).
    pub location: String,
    /// The sector or job it holds.
    pub job_id: Option<String>,
    /// The state of that work (empty when none).
    pub job_state: String,
    /// What it does next.
    pub job_stage: Option<String>,
}

/// One kind of thread. The runner calls `step` for the current state, hands its result to
/// `settle`, and does what that says.
pub trait Plan: Clone + Unpin + Sized + 'static {
    /// What a step (or a side tick) produced.
    type Done: 'static;
    /// A state operators may resume into (`resume --state`).
    type State: Copy + fmt::Display + 'static;

    /// Which plan this is.
    fn kind(&self) -> PlanKind;

    /// The plan as the thread starts (and restarts) with it: with what survived a restart
    /// loaded, off the actor's thread. An error parks the thread with it.
    fn start(&self) -> StepFuture<Result<Self, String>> {
        let me = self.clone();
        Box::pin(async move { Ok(me) })
    }

    /// The actor is being restarted after it stopped: forget what only lived in memory. Returns
    /// the error to show, if any.
    fn restarted(&mut self) -> Option<String> {
        None
    }

    /// An operator resumed the parked thread: start afresh (retry counters).
    fn resumed(&mut self) {}

    /// The step the current state leads to.
    fn step(&self, activity: ActivityCell) -> StepFuture<Self::Done>;

    /// Takes a step's (or a tick's) result and says what next.
    fn settle(&mut self, done: Self::Done) -> Settled;

    /// Writes the plan's durable record (off the actor's thread); none when it keeps none.
    fn save(&self) -> Option<StepFuture<Result<(), String>>> {
        None
    }

    /// Whether a pause must wait until the held work is handed back (a WindowPoSt job).
    fn holds_work(&self) -> bool {
        false
    }

    /// Whether a pause may cancel the step in flight while the thread does `activity`; a step
    /// that is cancelled runs again from the start on resume.
    fn cancellable(&self, activity: &Activity) -> bool;

    /// Checks a `resume --state` argument; the error lists the valid states.
    fn parse_state(&self, state: &str) -> Result<Self::State, String>;

    /// The plan as it is after an operator sets `state` (saved before it counts).
    fn with_state(&self, state: Self::State) -> Result<Self, String>;

    /// What `worker list` shows of the plan's work.
    fn view(&self) -> PlanView;

    /// How often [`Plan::tick`] runs (heartbeats); none when the plan has no side work.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Side work beside the steps (a held job's heartbeat); its result, if any, is settled.
    fn tick(&self) -> Option<StepFuture<Option<Self::Done>>> {
        None
    }
}
