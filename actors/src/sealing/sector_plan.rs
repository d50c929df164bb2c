//! `SectorPlan`: a thread that carries one sector at a time through a [`Table`] (the sealer
//! plan today; snap-up, rebuild and unseal are tables too). It keeps the sector record in the
//! thread's location, saved after every transition, and turns a step's failure into a retry, a
//! pause or an abort.

use std::sync::Arc;

use tracing::{error, info, warn};

use super::calls::report_state;
use super::env::ThreadEnv;
use super::failure::{react, Failure, Reaction};
use super::sector::Sector;
use super::state::{EventKind, State};
use super::table::{Outcome, Step, StepResult, Table};
use crate::thread::activity::{Activity, ActivityCell};
use crate::thread::plan::{Next, Plan, PlanKind, PlanView, Settled, StepFuture};

/// One sector thread: the plan's table, the worker as the thread sees it, and the record.
#[derive(Clone)]
pub struct SectorPlan {
    table: &'static Table,
    env: Arc<ThreadEnv>,
    sector: Sector,
}

impl SectorPlan {
    /// A thread of `table`'s plan, holding no sector until [`Plan::start`] loads its record.
    pub fn new(table: &'static Table, env: Arc<ThreadEnv>) -> Self {
        SectorPlan {
            table,
            env,
            sector: Sector::default(),
        }
    }

    fn sector_name(&self) -> Option<String> {
        self.sector.id().map(|i| i.to_string())
    }

    /// A step's event: checked against the table, then the record moves on and is reported.
    fn moved(&mut self, event: EventKind, sector: Sector) -> Settled {
        let prev = self.sector.state();
        let Some(next) = self.table.next(prev, event) else {
            return self.failed(Failure::critical(format!(
                "event {event:?} is not allowed in state {prev}"
            )));
        };
        self.sector = sector;
        self.sector.state = Some(next);
        info!(sector = ?self.sector_name(), %prev, %next, "state changed");
        // An unseal thread reads a sector another thread sealed: its state is not the
        // unseal's to report.
        let reports = self.table.plan != PlanKind::Unseal;
        let report = self.sector.id().filter(|_| reports).map(|id| {
            let fut = report_state(self.env.clone(), id, prev, next, event);
            Box::pin(fut) as StepFuture<()>
        });
        Settled {
            then: report,
            ..Settled::next(Next::Now).saved()
        }
    }

    fn failed(&mut self, failure: Failure) -> Settled {
        let sector = self.sector_name();
        match react(&failure, self.sector.retry, self.env.sealing.max_retries) {
            Reaction::Retry => {
                self.sector.retry += 1;
                warn!(?sector, retry = self.sector.retry, error = %failure, "step failed, will retry");
                Settled::next(Next::After {
                    delay: self.env.sealing.recover_interval,
                    shown: None,
                })
                .saved()
            }
            Reaction::Pause(msg) => {
                error!(?sector, error = %msg, "thread paused by an error");
                self.sector.retry = 0;
                Settled::next(Next::Park(msg)).saved()
            }
            Reaction::Abort(msg) => {
                warn!(?sector, error = %msg, "sector aborted");
                self.sector.abort_reason = Some(msg);
                self.sector.state = Some(State::Aborted);
                Settled::next(Next::Now).saved()
            }
        }
    }
}

impl Plan for SectorPlan {
    type Done = StepResult;
    type State = State;

    fn kind(&self) -> PlanKind {
        self.table.plan
    }

    fn start(&self) -> StepFuture<Result<Self, String>> {
        let mut me = self.clone();
        Box::pin(async move {
            let loc = me.env.location.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                loc.init().map_err(|e| {
                    format!(
                        "permanent: cannot initialise the location {}: {e}",
                        loc.root().display()
                    )
                })?;
                loc.load()
                    .map_err(|e| format!("critical: cannot read the sector record: {e}"))
            })
            .await
            .map_err(|e| format!("critical: cannot read the sector record: {e}"))??;
            if let Some(sector) = &loaded {
                info!(sector = ?sector.id().map(|i| i.to_string()), state = %sector.state(), "resuming the sector held before the restart");
            }
            // The record on disk is the truth: a state that could not be saved is not resumed.
            me.sector = loaded.unwrap_or_default();
            Ok(me)
        })
    }

    fn resumed(&mut self) {
        self.sector.retry = 0;
    }

    fn step(&self, activity: ActivityCell) -> StepFuture<StepResult> {
        let state = self.sector.state();
        let s = Step {
            env: self.env.clone(),
            sector: self.sector.clone(),
            activity,
        };
        match self.table.row(state) {
            Some(row) => (row.step)(s),
            None => {
                let plan = self.table.plan;
                Box::pin(async move {
                    Err(Failure::abort(format!(
                        "unexpected state {state} in {plan} planner"
                    )))
                })
            }
        }
    }

    fn settle(&mut self, done: StepResult) -> Settled {
        match done {
            Ok(Outcome::Moved { event, sector }) => self.moved(event, *sector),
            Ok(Outcome::Wait { delay, .. }) => Settled::next(Next::After { delay, shown: None }),
            Ok(Outcome::Held { delay, reason }) => Settled::next(Next::After {
                delay,
                shown: Some(reason),
            }),
            Ok(Outcome::Done) => {
                info!(sector = ?self.sector_name(), state = %self.sector.state(), "sector done");
                self.sector = Sector::default();
                Settled::next(Next::After {
                    delay: self.env.sealing.seal_interval,
                    shown: None,
                })
            }
            Err(f) => self.failed(f),
        }
    }

    fn save(&self) -> Option<StepFuture<Result<(), String>>> {
        let (env, sector) = (self.env.clone(), self.sector.clone());
        Some(Box::pin(async move {
            tokio::task::spawn_blocking(move || env.location.save(&sector))
                .await
                .map_err(|e| format!("cannot save the sector record: {e}"))?
                .map_err(|e| format!("cannot save the sector record: {e}"))
        }))
    }

    fn cancellable(&self, activity: &Activity) -> bool {
        // A processor at work finishes (or times out); anything else runs again on resume.
        !matches!(activity, Activity::Running { .. })
    }

    fn parse_state(&self, state: &str) -> Result<State, String> {
        self.table.parse_state(state)
    }

    fn with_state(&self, to: State) -> Result<Self, String> {
        if self.sector.id().is_none() && to != State::Empty {
            return Err("the thread holds no sector; resume it without a state".into());
        }
        let mut changed = self.clone();
        changed.sector.set_state(to).map_err(|f| f.to_string())?;
        if to == State::Aborted {
            changed.sector.abort_reason = Some("aborted by an operator".into());
        }
        Ok(changed)
    }

    fn view(&self) -> PlanView {
        let state = self.sector.state();
        let has_job = self.sector.id().is_some();
        PlanView {
            location: self.env.location.root().display().to_string(),
            job_id: self.sector_name(),
            job_state: if has_job || state != State::Empty {
                state.to_string()
            } else {
                String::new()
            },
            job_stage: self.table.stage(state).map(String::from),
        }
    }
}
