//! `ThreadRunner`: the one actor behind every `[[sealing_thread]]`, whatever its plan. It runs
//! one step at a time, hands the result to the plan, saves the plan's record when told to, and
//! owns everything threads share: pause and resume, the timer before the next step, side ticks
//! (heartbeats), what the thread is doing, and the backoff after a restart.
//!
//! Pause is prompt: a wait between steps, or a step the plan says may be cancelled (one that
//! only waits for a stage limit, for parameters, for the manager), ends at once; otherwise the
//! pause takes effect when the step ends (or, for a plan that holds work, once the work is handed
//! back). Records are written on a blocking-I/O thread, never on the arbiter that runs every
//! actor.

use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;
use tracing::{error, info, info_span, warn, Instrument, Span};

use super::activity::{activity, idle_cell, set_activity, Activity, ActivityCell};
use super::control::{Control, GetInfo};
use super::plan::{LastError, Next, Plan, Settled};
use crate::wire::worker_api::ThreadInfo;

/// Longest pause between restarts of a thread that keeps stopping.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(60);

/// One thread of the worker, running plan `P`.
pub struct ThreadRunner<P: Plan> {
    index: usize,
    plan: P,
    paused_at: Option<Instant>,
    last_error: Option<String>,
    /// The step in flight, so a pause can cancel it while it only waits.
    step: Option<SpawnHandle>,
    /// The timer before the next step (polling, retry, seal interval), cancelled by pause.
    timer: Option<SpawnHandle>,
    /// Set by a pause that arrived while work was in flight; honoured when it ends.
    pause_requested: bool,
    /// Written by the running step (waiting for a limit, running a processor).
    activity: ActivityCell,
    restarts: u32,
    /// Every line this thread logs, and every step it runs, is inside this span: `thread`,
    /// `plan` and the `job` it holds.
    span: Span,
    /// The job the span shows (recorded again only when it changes: every record adds a field
    /// to the log lines).
    shown_job: Option<String>,
}

impl<P: Plan> ThreadRunner<P> {
    /// Thread number `index` (its place in the config file), running `plan`.
    pub fn new(index: usize, plan: P) -> Self {
        let span =
            info_span!("thread", thread = index, plan = %plan.kind(), job = tracing::field::Empty);
        ThreadRunner {
            index,
            plan,
            paused_at: None,
            last_error: None,
            step: None,
            timer: None,
            pause_requested: false,
            activity: idle_cell(),
            restarts: 0,
            span,
            shown_job: None,
        }
    }

    /// Starts the step of the current state unless paused or already busy.
    fn kick(&mut self, ctx: &mut Context<Self>) {
        if self.paused_at.is_some() || self.step.is_some() || self.timer.is_some() {
            return;
        }
        let fut = self
            .plan
            .step(self.activity.clone())
            .instrument(self.span.clone());
        let handle = ctx.spawn(fut.into_actor(self).map(|done, act, ctx| {
            act.step = None;
            set_activity(&act.activity, Activity::Idle);
            let _span = act.span.clone().entered();
            let settled = act.plan.settle(done);
            act.follow(settled, ctx);
        }));
        self.step = Some(handle);
    }

    /// Does what the plan said after a step or a tick.
    fn follow(&mut self, settled: Settled, ctx: &mut Context<Self>) {
        let Settled {
            next,
            save,
            error,
            abandon_step,
            then,
        } = settled;
        match error {
            LastError::Keep => {}
            LastError::Clear => self.last_error = None,
            LastError::Set(e) => self.last_error = Some(e),
        }
        if abandon_step {
            if let Some(h) = self.step.take() {
                ctx.cancel_future(h);
            }
            set_activity(&self.activity, Activity::Idle);
        }
        let job = self.plan.view().job_id;
        if job != self.shown_job {
            self.span.record("job", job.as_deref().unwrap_or("-"));
            self.shown_job = job;
        }
        let proceed = move |act: &mut Self, ctx: &mut Context<Self>| {
            if let Some(then) = then {
                ctx.spawn(then.instrument(act.span.clone()).into_actor(act));
            }
            act.go(next, ctx);
        };
        if save {
            self.save_then(ctx, proceed);
        } else {
            proceed(self, ctx);
        }
    }

    fn go(&mut self, next: Next, ctx: &mut Context<Self>) {
        let _span = self.span.clone().entered();
        let pause_due = self.step.is_none() && self.pause_requested && !self.plan.holds_work();
        match next {
            Next::Park(msg) => {
                self.last_error = Some(msg);
                self.pause_now();
            }
            _ if pause_due => self.pause_now(),
            Next::Now => self.kick(ctx),
            Next::After { delay, shown } => {
                if let Some(reason) = shown {
                    set_activity(&self.activity, Activity::waiting(reason));
                }
                self.wait_then_kick(delay, ctx);
            }
        }
    }

    fn wait_then_kick(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        let handle = ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.kick(ctx);
        });
        self.timer = Some(handle);
    }

    /// Persists the plan's record off the actor's thread (that thread runs every other thread
    /// too, so a slow disk must not stall them), then goes on with `then`. This thread handles
    /// no other message meanwhile, so records are written in order. A thread that cannot write
    /// its record stops, and its supervisor restarts it (the failure shows in `last_error`).
    fn save_then(
        &mut self,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        let Some(write) = self.plan.save() else {
            return then(self, ctx);
        };
        ctx.wait(write.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => then(act, ctx),
            Err(e) => {
                let _span = act.span.clone().entered();
                error!(error = %e, "cannot save the thread's record; restarting the thread");
                act.last_error = Some(format!("critical: {e}"));
                ctx.stop();
            }
        }));
    }

    fn start_ticks(&mut self, ctx: &mut Context<Self>) {
        let Some(every) = self.plan.tick_interval() else {
            return;
        };
        ctx.run_interval(every, |act, ctx| {
            let Some(tick) = act.plan.tick() else { return };
            let fut = tick.instrument(act.span.clone());
            ctx.spawn(fut.into_actor(act).map(|done, act, ctx| {
                if let Some(done) = done {
                    let _span = act.span.clone().entered();
                    let settled = act.plan.settle(done);
                    act.follow(settled, ctx);
                }
            }));
        });
    }

    /// Leaves the parked state and starts the next step.
    fn resume_now(&mut self, ctx: &mut Context<Self>) {
        self.paused_at = None;
        self.last_error = None;
        self.plan.resumed();
        info!("resumed");
        self.kick(ctx);
    }

    fn pause_now(&mut self) {
        self.pause_requested = false;
        self.paused_at = Some(Instant::now());
        set_activity(&self.activity, Activity::Idle);
        info!("paused");
    }

    fn pause(&mut self, force: bool, ctx: &mut Context<Self>) -> bool {
        if self.paused_at.is_some() {
            return false;
        }
        if self.pause_requested && !force {
            return false;
        }
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
            self.pause_now();
        } else if let Some(handle) = self.step {
            // Forced, a step stops now unless it holds work it must hand back (a WindowPoSt
            // job, which would otherwise stay claimed while the thread is parked).
            let forced = force && !self.plan.holds_work();
            if forced || self.plan.cancellable(&activity(&self.activity)) {
                // Nothing done yet in this step (or the operator said so): it runs again on
                // resume, unless resumed into another state.
                ctx.cancel_future(handle);
                self.step = None;
                self.pause_now();
            } else {
                self.pause_requested = true;
            }
        } else {
            self.pause_now();
        }
        true
    }

    fn resume(
        &mut self,
        state: Option<String>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<bool, String>> {
        let answer =
            |r| -> ResponseActFuture<Self, Result<bool, String>> { Box::pin(fut::ready(r)) };
        let target = match state
            .as_deref()
            .map(|s| self.plan.parse_state(s))
            .transpose()
        {
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
        let changed = match self.plan.with_state(to) {
            Ok(p) => p,
            Err(e) => return answer(Err(e)),
        };
        // The new state counts once it is on disk; until then the thread stays parked.
        let write = changed.save();
        Box::pin(
            async move {
                match write {
                    Some(w) => w.await,
                    None => Ok(()),
                }
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                res?;
                act.plan = changed;
                let _span = act.span.clone().entered();
                info!(state = %to, "resumed with a new state");
                act.resume_now(ctx);
                Ok(true)
            }),
        )
    }

    fn info(&self) -> ThreadInfo {
        let view = self.plan.view();
        ThreadInfo {
            location: view.location,
            plan: self.plan.kind().to_string(),
            job_id: view.job_id,
            index: self.index,
            thread_state: activity(&self.activity).thread_state(self.paused_at),
            job_state: view.job_state,
            job_stage: view.job_stage,
            last_error: self.last_error.clone(),
            pausing: self.pause_requested,
        }
    }
}

impl<P: Plan> Actor for ThreadRunner<P> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // No message is handled until the plan is loaded: a pause or a resume sees it whole.
        let load = self.plan.start().instrument(self.span.clone());
        ctx.wait(load.into_actor(self).map(|res, act, ctx| {
            let _span = act.span.clone().entered();
            match res {
                Ok(plan) => act.plan = plan,
                Err(e) => {
                    error!(error = %e, "cannot start the thread");
                    act.last_error = Some(e);
                    return act.pause_now();
                }
            }
            act.start_ticks(ctx);
            if act.restarts > 0 {
                let backoff =
                    Duration::from_secs(1 << act.restarts.min(6)).min(MAX_RESTART_BACKOFF);
                warn!(
                    restarts = act.restarts,
                    ?backoff,
                    "thread restarted by its supervisor"
                );
                act.wait_then_kick(backoff, ctx);
            } else {
                info!("thread started");
                act.kick(ctx);
            }
        }));
    }
}

impl<P: Plan> Supervised for ThreadRunner<P> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts += 1;
        self.step = None;
        self.timer = None;
        self.paused_at = None;
        self.pause_requested = false;
        set_activity(&self.activity, Activity::Idle);
        if let Some(e) = self.plan.restarted() {
            self.last_error = Some(e);
        }
    }
}

impl<P: Plan> Handler<GetInfo> for ThreadRunner<P> {
    type Result = MessageResult<GetInfo>;
    fn handle(&mut self, _: GetInfo, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.info())
    }
}

impl<P: Plan> Handler<Control> for ThreadRunner<P> {
    type Result = ResponseActFuture<Self, Result<bool, String>>;
    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) -> Self::Result {
        let _span = self.span.clone().entered();
        match msg {
            Control::Pause { force } => Box::pin(fut::ready(Ok(self.pause(force, ctx)))),
            Control::Resume { state } => self.resume(state, ctx),
        }
    }
}

#[cfg(test)]
mod tests;
