//! `WdPostSlot`: one `[[sealing_thread]]` with plan `wdpost`. Claims a WindowPoSt job from the
//! manager, heartbeats it every few seconds while it holds it, proves it in a `window_post`
//! processor and hands the proof (or the error) back; then asks for the next one.
//!
//! The job lives only in memory: a slot that dies stops heartbeating, and the manager gives the
//! job to another worker after its heartbeat timeout. A job the manager says is no longer ours
//! (timed out, reset, removed) is dropped at once, even mid-proof. Pause takes effect between
//! jobs: a held job is proved and handed back first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::sealing::steps::{set_activity, Activity, ActivityCell};
use crate::thread_control::{GetInfo, Pause, Resume};
use crate::wdpost::plan::{SlotEvent, SlotState};
use crate::wdpost::steps::{self, JobCallError, PostEnv};
use crate::wire::venus::AllocatedPoStJob;
use crate::wire::worker_api::ThreadInfo;

pub struct WdPostSlot {
    index: usize,
    env: Arc<PostEnv>,
    state: SlotState,
    paused_at: Option<Instant>,
    /// Set by a pause that arrived while a step was in flight; honoured when it ends.
    pause_requested: bool,
    last_error: Option<String>,
    /// The step in flight (claim, prove, finish); cancelled when the job is dropped.
    step: Option<SpawnHandle>,
    /// The wait before asking for a job again; cancelled by pause.
    timer: Option<SpawnHandle>,
    /// The heartbeat timer, running while a job is held.
    heartbeat: Option<SpawnHandle>,
    /// Written by the running step (waiting for parameters or a limit, running a processor).
    activity: ActivityCell,
}

impl WdPostSlot {
    pub fn new(index: usize, env: Arc<PostEnv>) -> Self {
        WdPostSlot {
            index,
            env,
            state: SlotState::Empty,
            paused_at: None,
            pause_requested: false,
            last_error: None,
            step: None,
            timer: None,
            heartbeat: None,
            activity: Arc::new(Mutex::new(Activity::Idle)),
        }
    }

    fn activity(&self) -> Activity {
        self.activity
            .lock()
            .map(|a| a.clone())
            .unwrap_or(Activity::Idle)
    }

    /// Starts the step of the current state unless paused or already busy.
    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.paused_at.is_some() || self.step.is_some() || self.timer.is_some() {
            return;
        }
        // A held job is proved and handed back before a pause takes effect.
        if self.pause_requested && self.state.job().is_none() {
            return self.pause_now();
        }
        let env = self.env.clone();
        let activity = self.activity.clone();
        let handle = match self.state.clone() {
            SlotState::Empty => ctx.spawn(
                async move { steps::claim(&env).await }
                    .into_actor(self)
                    .map(|res, act, ctx| {
                        act.step = None;
                        act.claimed(res, ctx);
                    }),
            ),
            SlotState::Allocated(job) => ctx.spawn(
                async move { steps::prove(&env, &job, &activity).await }
                    .into_actor(self)
                    .map(|res, act, ctx| {
                        act.step = None;
                        set_activity(&act.activity, Activity::Idle);
                        if let Err(e) = &res {
                            warn!(thread = act.index, error = %e, "WindowPoSt failed");
                        }
                        act.advance(SlotEvent::Generated(res), ctx);
                    }),
            ),
            SlotState::Generated(job, result) => ctx.spawn(
                async move { steps::finish(&env, &job.id, &result).await }
                    .into_actor(self)
                    .map(|res, act, ctx| {
                        act.step = None;
                        match res {
                            Ok(()) => act.advance(SlotEvent::Finished, ctx),
                            Err(JobCallError::NotOwned(e) | JobCallError::Unreachable(e)) => {
                                act.drop_job(e, ctx)
                            }
                        }
                    }),
            ),
        };
        self.step = Some(handle);
    }

    fn claimed(&mut self, res: Result<Option<AllocatedPoStJob>, String>, ctx: &mut Context<Self>) {
        match res {
            Ok(Some(job)) => {
                info!(thread = self.index, job = %job.id, sectors = job.input.sectors.len(), "WindowPoSt job claimed");
                self.last_error = None;
                self.start_heartbeat(ctx);
                self.advance(SlotEvent::Claimed(job), ctx);
            }
            Ok(None) => self.wait(None, ctx),
            Err(e) => {
                warn!(thread = self.index, error = %e, "no WindowPoSt job");
                self.wait(Some(e), ctx);
            }
        }
    }

    /// Waits `recover_interval` before asking for a job again, showing why if something failed.
    fn wait(&mut self, reason: Option<String>, ctx: &mut Context<Self>) {
        if let Some(r) = reason {
            set_activity(
                &self.activity,
                Activity::Waiting {
                    since: Instant::now(),
                    reason: r,
                },
            );
        }
        if self.pause_requested {
            return self.pause_now();
        }
        let handle = ctx.run_later(self.env.recover_interval, |act, ctx| {
            act.timer = None;
            act.kick(ctx);
        });
        self.timer = Some(handle);
    }

    fn advance(&mut self, event: SlotEvent, ctx: &mut Context<Self>) {
        let prev = self.state.name();
        let done = matches!(event, SlotEvent::Finished);
        let job = self.state.job().map(|j| j.id.clone());
        match std::mem::take(&mut self.state).apply(event) {
            Ok(next) => {
                self.state = next;
                info!(thread = self.index, job = ?job, prev, next = self.state.name(), "WindowPoSt slot state changed");
            }
            // A bug in the table: start over rather than hold a job in an unknown state.
            Err(e) => warn!(thread = self.index, error = %e, "WindowPoSt slot reset"),
        }
        if self.state.job().is_none() {
            self.stop_heartbeat(ctx);
        }
        if done {
            info!(thread = self.index, job = ?job, "WindowPoSt job handed back");
        }
        self.kick(ctx);
    }

    /// Forgets the held job (the manager refused it, or cannot be reached to take it back).
    fn drop_job(&mut self, reason: String, ctx: &mut Context<Self>) {
        let job = self.state.job().map(|j| j.id.clone());
        warn!(thread = self.index, job = ?job, reason = %reason, "WindowPoSt job dropped");
        if let Some(h) = self.step.take() {
            ctx.cancel_future(h);
        }
        set_activity(&self.activity, Activity::Idle);
        self.last_error = Some(format!(
            "temporary: job {} dropped: {reason}",
            job.unwrap_or_default()
        ));
        self.advance(SlotEvent::Dropped, ctx);
    }

    fn start_heartbeat(&mut self, ctx: &mut Context<Self>) {
        self.stop_heartbeat(ctx);
        let handle = ctx.run_interval(self.env.heartbeat_interval, |act, ctx| {
            let Some(id) = act.state.job().map(|j| j.id.clone()) else {
                return;
            };
            let env = act.env.clone();
            let job = id.clone();
            ctx.spawn(
                async move { steps::heartbeat(&env, &job).await }
                    .into_actor(act)
                    .map(move |res, act, ctx| match res {
                        Ok(()) => {}
                        // Only if it is still the job we hold.
                        Err(JobCallError::NotOwned(e))
                            if act.state.job().is_some_and(|j| j.id == id) =>
                        {
                            act.drop_job(e, ctx)
                        }
                        Err(e) => warn!(thread = act.index, job = %id, error = ?e, "WindowPoSt heartbeat failed"),
                    }),
            );
        });
        self.heartbeat = Some(handle);
    }

    fn stop_heartbeat(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.heartbeat.take() {
            ctx.cancel_future(h);
        }
    }

    fn pause_now(&mut self) {
        self.pause_requested = false;
        self.paused_at = Some(Instant::now());
        set_activity(&self.activity, Activity::Idle);
        info!(thread = self.index, "paused");
    }

    fn info(&self) -> ThreadInfo {
        ThreadInfo {
            location: "-".into(),
            plan: "wdpost".into(),
            // The job as operators know it: the manager's id without the attempt it gave this
            // claim (`<id>@<attempt>`), which only travels back to the manager.
            job_id: self
                .state
                .job()
                .and_then(|j| j.id.split('@').next().map(String::from)),
            index: self.index,
            thread_state: self.activity().thread_state(self.paused_at),
            job_state: match self.state {
                SlotState::Empty => String::new(),
                _ => self.state.name().to_string(),
            },
            job_stage: self.state.stage().map(String::from),
            last_error: self.last_error.clone(),
        }
    }
}

impl Actor for WdPostSlot {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(thread = self.index, spec = ?self.env.spec, "WindowPoSt slot started");
        self.kick(ctx);
    }
}

impl Supervised for WdPostSlot {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // The held job is lost with the actor's memory; the manager retries it elsewhere.
        self.state = SlotState::Empty;
        self.step = None;
        self.timer = None;
        self.heartbeat = None;
        self.paused_at = None;
        self.last_error = Some("critical: the WindowPoSt slot was restarted".into());
    }
}

impl Handler<GetInfo> for WdPostSlot {
    type Result = MessageResult<GetInfo>;
    fn handle(&mut self, _: GetInfo, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.info())
    }
}

impl Handler<Pause> for WdPostSlot {
    type Result = bool;
    fn handle(&mut self, _: Pause, ctx: &mut Self::Context) -> bool {
        if self.paused_at.is_some() || self.pause_requested {
            return false;
        }
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
            self.pause_now();
        } else if self.step.is_some() {
            // A claim may be landing, or a job is held: pause once it is handed back.
            self.pause_requested = true;
        } else {
            self.pause_now();
        }
        true
    }
}

impl Handler<Resume> for WdPostSlot {
    type Result = Result<bool, String>;
    fn handle(&mut self, msg: Resume, ctx: &mut Self::Context) -> Self::Result {
        if msg.state.is_some() {
            return Err(format!(
                "thread #{} is a wdpost slot, which has no states to resume into; resume it without a state",
                self.index
            ));
        }
        if self.paused_at.is_none() {
            if self.pause_requested {
                self.pause_requested = false;
                return Ok(true);
            }
            // Not parked: nothing to resume (damocles answers false too).
            return Ok(false);
        }
        self.paused_at = None;
        self.last_error = None;
        info!(thread = self.index, "resumed");
        self.kick(ctx);
        Ok(true)
    }
}

/// How often a held job is heartbeated (damocles: every 3 s).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
