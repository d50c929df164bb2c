//! `SealingThread`: one `[[sealing_thread]]` with plan `sealer`. Carries one sector at a time
//! from `Empty` to `Finished`, one step at a time (see `sealing::steps`), persisting the record
//! after every transition. Pause, resume and resume-with-state are messages.
//!
//! Pause is prompt: a wait between steps (polling, recover interval) or a step still queued on a
//! stage limit or on parameters is cancelled at once; a processor call in progress finishes first
//! (or fails at its stage's timeout, which kills a hung child). The record is written on a
//! blocking-I/O thread, never on the arbiter that runs every actor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::sealing::failure::{react, Failure, Reaction};
use crate::sealing::plan::{parse_resume_state, stage, State};
use crate::sealing::sector::Sector;
use crate::sealing::steps::{self, Activity, ActivityCell, Outcome, ThreadEnv};
use crate::thread_control::{GetInfo, Pause, Resume};
use crate::wire::worker_api::ThreadInfo;

/// Longest pause between restarts of a thread that keeps stopping.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(60);

pub struct SealingThread {
    index: usize,
    env: Arc<ThreadEnv>,
    sector: Sector,
    paused_at: Option<Instant>,
    last_error: Option<String>,
    /// The step in flight, so a pause can cancel it while it only waits.
    step: Option<SpawnHandle>,
    /// The timer before the next step (polling, retry, seal interval), cancelled by pause.
    timer: Option<(SpawnHandle, String)>,
    /// Set by a pause that arrived while a processor was running; honoured when the step ends.
    pause_requested: bool,
    /// Written by the running step (waiting for a limit, running a processor).
    activity: ActivityCell,
    restarts: u32,
}

impl SealingThread {
    pub fn new(index: usize, env: Arc<ThreadEnv>) -> Self {
        SealingThread {
            index,
            env,
            sector: Sector::default(),
            paused_at: None,
            last_error: None,
            step: None,
            timer: None,
            pause_requested: false,
            activity: Arc::new(Mutex::new(Activity::Idle)),
            restarts: 0,
        }
    }

    fn activity(&self) -> Activity {
        self.activity
            .lock()
            .map(|a| a.clone())
            .unwrap_or(Activity::Idle)
    }

    fn set_idle(&self) {
        if let Ok(mut a) = self.activity.lock() {
            *a = Activity::Idle;
        }
    }

    /// Starts the step of the current state unless paused or already busy.
    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.paused_at.is_some() || self.step.is_some() || self.timer.is_some() {
            return;
        }
        let fut = steps::run(self.env.clone(), self.sector.clone(), self.activity.clone());
        let handle = ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.step = None;
            act.set_idle();
            act.step_done(res, ctx);
        }));
        self.step = Some(handle);
    }

    fn wait_then_kick(&mut self, delay: Duration, reason: String, ctx: &mut Context<Self>) {
        let handle = ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.kick(ctx);
        });
        self.timer = Some((handle, reason));
    }

    fn step_done(&mut self, res: Result<Outcome, Failure>, ctx: &mut Context<Self>) {
        let prev = self.sector.state();
        match res {
            Ok(Outcome::Event(event)) => {
                let name = format!("{:?}", event.kind());
                match self.sector.apply(event) {
                    Ok(next) => {
                        info!(thread = self.index, sector = ?self.sector.id().map(|i| i.to_string()), %prev, %next, "state changed");
                        let id = self.sector.id();
                        self.save_then(ctx, move |act, ctx| {
                            if let Some(id) = id {
                                let report = steps::report_state(
                                    act.env.clone(),
                                    id,
                                    prev,
                                    next,
                                    name,
                                    None,
                                );
                                ctx.spawn(report.into_actor(act));
                            }
                            if !act.pause_if_requested() {
                                act.kick(ctx);
                            }
                        });
                    }
                    Err(f) => self.failed(f, ctx),
                }
            }
            Ok(Outcome::Wait { delay, reason }) => {
                if !self.pause_if_requested() {
                    self.wait_then_kick(delay, reason, ctx);
                }
            }
            Ok(Outcome::Held { delay, reason }) => {
                if !self.pause_if_requested() {
                    if let Ok(mut a) = self.activity.lock() {
                        *a = Activity::Waiting {
                            since: Instant::now(),
                            reason: reason.clone(),
                        };
                    }
                    self.wait_then_kick(delay, reason, ctx);
                }
            }
            Ok(Outcome::Done) => {
                info!(thread = self.index, sector = ?self.sector.id().map(|i| i.to_string()), state = %prev, "sector done");
                self.sector = Sector::default();
                if !self.pause_if_requested() {
                    let interval = self.env.sealing.seal_interval;
                    self.wait_then_kick(interval, "seal interval".into(), ctx);
                }
            }
            Err(f) => self.failed(f, ctx),
        }
    }

    fn failed(&mut self, failure: Failure, ctx: &mut Context<Self>) {
        let id = self.sector.id().map(|i| i.to_string());
        match react(&failure, self.sector.retry, self.env.sealing.max_retries) {
            Reaction::Retry => {
                self.sector.retry += 1;
                warn!(thread = self.index, sector = ?id, retry = self.sector.retry, error = %failure, "step failed, will retry");
                let interval = self.env.sealing.recover_interval;
                self.save_then(ctx, move |act, ctx| {
                    if !act.pause_if_requested() {
                        act.wait_then_kick(interval, format!("retry after: {failure}"), ctx);
                    }
                });
            }
            Reaction::Pause(msg) => {
                error!(thread = self.index, sector = ?id, error = %msg, "thread paused by an error");
                self.sector.retry = 0;
                self.last_error = Some(msg);
                self.pause_now();
                self.save_then(ctx, |_, _| {});
            }
            Reaction::Abort(msg) => {
                warn!(thread = self.index, sector = ?id, error = %msg, "sector aborted");
                self.sector.abort_reason = Some(msg);
                self.sector.state = Some(State::Aborted);
                self.save_then(ctx, |act, ctx| {
                    if !act.pause_if_requested() {
                        act.kick(ctx);
                    }
                });
            }
        }
    }

    /// Persists the record off the actor's thread (that thread runs every other thread too, so
    /// a slow disk must not stall them), then goes on with `then`. This thread handles no other
    /// message meanwhile, so records are written in order. A thread that cannot write its
    /// record stops, and its supervisor restarts it (the failure shows in `last_error`).
    fn save_then(
        &mut self,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        let write = save_off_thread(&self.env, &self.sector);
        ctx.wait(write.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => then(act, ctx),
            Err(e) => {
                error!(thread = act.index, error = %e, "cannot save the sector record; restarting the thread");
                act.last_error = Some(format!("critical: {e}"));
                ctx.stop();
            }
        }));
    }

    /// Leaves the parked state and starts the next step.
    fn resume_now(&mut self, ctx: &mut Context<Self>) {
        self.paused_at = None;
        self.last_error = None;
        self.sector.retry = 0;
        info!(thread = self.index, "resumed");
        self.kick(ctx);
    }

    fn pause_if_requested(&mut self) -> bool {
        if self.pause_requested {
            self.pause_now();
            true
        } else {
            false
        }
    }

    fn pause_now(&mut self) {
        self.pause_requested = false;
        self.paused_at = Some(Instant::now());
        self.set_idle();
        info!(thread = self.index, "paused");
    }

    fn info(&self) -> ThreadInfo {
        let state = self.sector.state();
        let has_job = self.sector.id().is_some();
        let thread_state = self.activity().thread_state(self.paused_at);
        ThreadInfo {
            location: self.env.location.root().display().to_string(),
            plan: "sealer".into(),
            job_id: self.sector.id().map(|i| i.to_string()),
            index: self.index,
            thread_state,
            job_state: if has_job || state != State::Empty {
                state.to_string()
            } else {
                String::new()
            },
            job_stage: stage(state).map(String::from),
            last_error: self.last_error.clone(),
        }
    }
}

impl Actor for SealingThread {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Err(e) = self.env.location.init() {
            error!(thread = self.index, location = %self.env.location.root().display(), error = %e, "cannot initialise the location");
            self.last_error = Some(format!("permanent: cannot initialise the location: {e}"));
            self.pause_now();
            return;
        }
        match self.env.location.load() {
            Ok(Some(sector)) => {
                info!(thread = self.index, sector = ?sector.id().map(|i| i.to_string()), state = %sector.state(), "resuming the sector held before the restart");
                self.sector = sector;
            }
            Ok(None) => {}
            Err(e) => {
                self.last_error = Some(format!("critical: cannot read the sector record: {e}"));
                self.pause_now();
                return;
            }
        }
        if self.restarts > 0 {
            let backoff = Duration::from_secs(1 << self.restarts.min(6)).min(MAX_RESTART_BACKOFF);
            warn!(
                thread = self.index,
                restarts = self.restarts,
                ?backoff,
                "thread restarted by its supervisor"
            );
            self.wait_then_kick(backoff, "restart backoff".into(), ctx);
        } else {
            self.kick(ctx);
        }
    }
}

impl Supervised for SealingThread {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts += 1;
        self.step = None;
        self.timer = None;
        self.paused_at = None;
        self.set_idle();
    }
}

impl Handler<GetInfo> for SealingThread {
    type Result = MessageResult<GetInfo>;
    fn handle(&mut self, _: GetInfo, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.info())
    }
}

impl Handler<Pause> for SealingThread {
    type Result = bool;
    fn handle(&mut self, _: Pause, ctx: &mut Self::Context) -> bool {
        if self.paused_at.is_some() || self.pause_requested {
            return false;
        }
        if let Some((handle, _)) = self.timer.take() {
            ctx.cancel_future(handle);
            self.pause_now();
        } else if let Some(handle) = self.step {
            if matches!(self.activity(), Activity::Running { .. }) {
                // A processor is at work: let it finish, then pause.
                self.pause_requested = true;
            } else {
                // Nothing done yet in this step (an RPC or a queue): it will run again on resume.
                ctx.cancel_future(handle);
                self.step = None;
                self.pause_now();
            }
        } else {
            self.pause_now();
        }
        true
    }
}

impl Handler<Resume> for SealingThread {
    type Result = ResponseActFuture<Self, Result<bool, String>>;
    fn handle(&mut self, msg: Resume, ctx: &mut Self::Context) -> Self::Result {
        let answer = |r| -> Self::Result { Box::pin(fut::ready(r)) };
        let target = match msg.state.as_deref().map(parse_resume_state).transpose() {
            Ok(t) => t,
            Err(e) => return answer(Err(e)),
        };
        if self.paused_at.is_none() {
            if self.pause_requested && target.is_none() {
                self.pause_requested = false;
                return answer(Ok(true));
            }
            // Not parked: nothing to resume, and no state is set (damocles answers false too).
            return answer(Ok(false));
        }
        let Some(to) = target else {
            self.resume_now(ctx);
            return answer(Ok(true));
        };
        if self.sector.id().is_none() && to != State::Empty {
            return answer(Err(format!(
                "thread #{} holds no sector; resume it without a state",
                self.index
            )));
        }
        let mut changed = self.sector.clone();
        if let Err(f) = changed.set_state(to) {
            return answer(Err(f.to_string()));
        }
        if to == State::Aborted {
            changed.abort_reason = Some("aborted by an operator".into());
        }
        // The new state counts once it is on disk; until then the thread stays parked.
        let write = save_off_thread(&self.env, &changed);
        Box::pin(write.into_actor(self).map(move |res, act, ctx| {
            res?;
            act.sector = changed;
            info!(thread = act.index, state = %to, "resumed with a new state");
            act.resume_now(ctx);
            Ok(true)
        }))
    }
}

/// Writes `sector` as the thread's record on a blocking-I/O thread.
fn save_off_thread(
    env: &Arc<ThreadEnv>,
    sector: &Sector,
) -> impl std::future::Future<Output = Result<(), String>> + 'static {
    let (env, sector) = (env.clone(), sector.clone());
    async move {
        tokio::task::spawn_blocking(move || env.location.save(&sector))
            .await
            .map_err(|e| format!("cannot save the sector record: {e}"))?
            .map_err(|e| format!("cannot save the sector record: {e}"))
    }
}

#[cfg(test)]
#[path = "sealing_thread_tests.rs"]
mod tests;
