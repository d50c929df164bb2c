//! `WdPostPlan`: one `[[sealing_thread]]` with plan `wdpost`. Claims a WindowPoSt job from the
//! manager, heartbeats it every few seconds while it holds it, proves it in a `window_post`
//! processor and hands the proof (or the error) back; then asks for the next one.
//!
//! The job lives only in memory: a slot that dies stops heartbeating, and the manager gives the
//! job to another worker after its heartbeat timeout. A job the manager says is no longer ours
//! (timed out, reset, removed) is dropped at once, even mid-proof. Pause takes effect between
//! jobs: a held job is proved and handed back first.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::state::{SlotEvent, SlotState};
use super::steps::{self, JobCallError, PostEnv};
use crate::thread::activity::{Activity, ActivityCell};
use crate::thread::plan::{LastError, Next, Plan, PlanKind, PlanView, Settled, StepFuture};
use crate::wire::processor::WindowPoStOutput;
use crate::wire::venus_post::AllocatedPoStJob;

/// How often a held job is heartbeated (damocles: every 3 s).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

/// A WindowPoSt slot: the worker as it sees it, and the job it holds.
#[derive(Clone)]
pub struct WdPostPlan {
    env: Arc<PostEnv>,
    state: SlotState,
}

/// What a slot's step (or heartbeat) produced.
#[derive(Debug)]
pub enum SlotDone {
    /// The claim's answer.
    Claimed(Result<Option<AllocatedPoStJob>, String>),
    /// The proof of the held job, or why there is none.
    Proved(Result<WindowPoStOutput, String>),
    /// The manager's answer to the result.
    Finished(Result<(), JobCallError>),
    /// A heartbeat of job `id` was refused: it is not ours any more.
    Lost {
        /// The job the heartbeat was about.
        id: String,
        /// The manager's reason.
        reason: String,
    },
}

impl WdPostPlan {
    /// An empty slot.
    pub fn new(env: Arc<PostEnv>) -> Self {
        WdPostPlan {
            env,
            state: SlotState::Empty,
        }
    }

    fn job_id(&self) -> Option<String> {
        self.state.job().map(|j| j.id.clone())
    }

    fn advance(&mut self, event: SlotEvent) {
        let prev = self.state.name();
        let job = self.job_id();
        match std::mem::take(&mut self.state).apply(event) {
            Ok(next) => {
                self.state = next;
                info!(job = ?job, prev, next = self.state.name(), "WindowPoSt slot state changed");
            }
            // A bug in the table: start over rather than hold a job in an unknown state.
            Err(e) => warn!(error = %e, "WindowPoSt slot reset"),
        }
    }

    /// Forgets the held job (the manager refused it, or cannot be reached to take it back).
    fn drop_job(&mut self, reason: String) -> Settled {
        let job = self.job_id();
        warn!(job = ?job, reason = %reason, "WindowPoSt job dropped");
        self.advance(SlotEvent::Dropped);
        Settled {
            abandon_step: true,
            ..Settled::next(Next::Now).error(LastError::Set(format!(
                "temporary: job {} dropped: {reason}",
                job.unwrap_or_default()
            )))
        }
    }

    /// Waits `recover_interval` before asking for a job again, showing why if something failed.
    fn wait(&self, shown: Option<String>) -> Settled {
        Settled::next(Next::After {
            delay: self.env.recover_interval,
            shown,
        })
    }
}

impl Plan for WdPostPlan {
    type Done = SlotDone;
    type State = &'static str;

    fn kind(&self) -> PlanKind {
        PlanKind::WdPost
    }

    fn restarted(&mut self) -> Option<String> {
        // The held job is lost with the actor's memory; the manager retries it elsewhere.
        self.state = SlotState::Empty;
        Some("critical: the WindowPoSt slot was restarted".into())
    }

    fn step(&self, activity: ActivityCell) -> StepFuture<SlotDone> {
        let env = self.env.clone();
        match self.state.clone() {
            SlotState::Empty => {
                Box::pin(async move { SlotDone::Claimed(steps::claim(&env).await) })
            }
            SlotState::Allocated(job) => {
                Box::pin(async move { SlotDone::Proved(steps::prove(&env, &job, &activity).await) })
            }
            SlotState::Generated(job, result) => {
                Box::pin(
                    async move { SlotDone::Finished(steps::finish(&env, &job.id, &result).await) },
                )
            }
        }
    }

    fn settle(&mut self, done: SlotDone) -> Settled {
        match done {
            SlotDone::Claimed(Ok(Some(job))) => {
                info!(job = %job.id, sectors = job.input.sectors.len(), "WindowPoSt job claimed");
                self.advance(SlotEvent::Claimed(job));
                Settled::next(Next::Now).error(LastError::Clear)
            }
            SlotDone::Claimed(Ok(None)) => self.wait(None),
            SlotDone::Claimed(Err(e)) => {
                warn!(error = %e, "no WindowPoSt job");
                self.wait(Some(e))
            }
            SlotDone::Proved(res) => {
                if let Err(e) = &res {
                    warn!(error = %e, "WindowPoSt failed");
                }
                self.advance(SlotEvent::Generated(res));
                Settled::next(Next::Now)
            }
            SlotDone::Finished(Ok(())) => {
                let job = self.job_id();
                self.advance(SlotEvent::Finished);
                info!(job = ?job, "WindowPoSt job handed back");
                Settled::next(Next::Now)
            }
            SlotDone::Finished(Err(JobCallError::NotOwned(e) | JobCallError::Unreachable(e))) => {
                self.drop_job(e)
            }
            // Only if it is still the job we hold.
            SlotDone::Lost { id, reason } if self.job_id().as_deref() == Some(&id) => {
                self.drop_job(reason)
            }
            SlotDone::Lost { .. } => Settled::next(Next::Now),
        }
    }

    fn holds_work(&self) -> bool {
        self.state.job().is_some()
    }

    fn cancellable(&self, _: &Activity) -> bool {
        // A claim may be landing, or a job is held: pause once it is handed back.
        false
    }

    fn parse_state(&self, _: &str) -> Result<&'static str, String> {
        Err("this thread is a wdpost slot, which has no states to resume into; resume it without a state".into())
    }

    fn with_state(&self, _: &'static str) -> Result<Self, String> {
        Err("a wdpost slot has no states to resume into".into())
    }

    fn view(&self) -> PlanView {
        PlanView {
            location: "-".into(),
            // The job as operators know it: the manager's id without the attempt it gave this
            // claim (`<id>@<attempt>`), which only travels back to the manager.
            job_id: self
                .state
                .job()
                .and_then(|j| j.id.split('@').next().map(String::from)),
            job_state: match self.state {
                SlotState::Empty => String::new(),
                _ => self.state.name().to_string(),
            },
            job_stage: self.state.stage().map(String::from),
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.env.heartbeat_interval)
    }

    fn tick(&self) -> Option<StepFuture<Option<SlotDone>>> {
        let id = self.job_id()?;
        let env = self.env.clone();
        Some(Box::pin(async move {
            match steps::heartbeat(&env, &id).await {
                Ok(()) => None,
                Err(JobCallError::NotOwned(reason)) => Some(SlotDone::Lost { id, reason }),
                Err(e) => {
                    warn!(job = %id, error = ?e, "WindowPoSt heartbeat failed");
                    None
                }
            }
        }))
    }
}
