//! A sector plan as data: one row per state, saying what operators see as its stage, which step
//! runs in it, and which event leads to which state. Pure: the rows are checked table by table
//! without actix, and the thread asks the table, never a match of its own.

use std::sync::Arc;
use std::time::Duration;

use super::env::ThreadEnv;
use super::failure::Failure;
use super::sector::Sector;
use super::state::{EventKind, State};
use crate::thread::activity::ActivityCell;
use crate::thread::plan::{PlanKind, StepFuture};
use crate::wire::processor::Stage;
use crate::wire::venus::SectorId;

/// What a step gets: the thread's environment, a copy of the record to change, and the cell it
/// reports its activity in.
pub struct Step {
    /// The worker as this thread sees it.
    pub env: Arc<ThreadEnv>,
    /// The record as the step found it; the step returns it changed.
    pub sector: Sector,
    /// Where the step says what it waits for or runs.
    pub activity: ActivityCell,
}

impl Step {
    /// The sector's id; every state past `Empty` has one.
    pub fn id(&self) -> Result<SectorId, Failure> {
        self.sector.id().ok_or_else(|| {
            Failure::critical(format!(
                "sector record in state {} has no sector id",
                self.sector.state()
            ))
        })
    }

    /// The sector's seal proof type (0 before allocation).
    pub fn proof(&self) -> u64 {
        self.sector.allocated.as_ref().map_or(0, |a| a.proof_type)
    }

    /// The step did `event`; the record as the step left it.
    pub fn moved(self, event: EventKind) -> Result<Outcome, Failure> {
        Ok(Outcome::Moved {
            event,
            sector: Box::new(self.sector),
        })
    }
}

/// How a step ended when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The step did `event` and changed the record to `sector`; the table says where it leads.
    Moved {
        /// What happened.
        event: EventKind,
        /// The record with the step's results.
        sector: Box<Sector>,
    },
    /// Nothing to do yet (polling): run the same state again after `delay`.
    Wait {
        /// How long.
        delay: Duration,
        /// Why, for the log.
        reason: String,
    },
    /// The thread may not take new work now (a quota): shown as waiting, with the reason, and
    /// tried again after `delay`.
    Held {
        /// How long.
        delay: Duration,
        /// Why, shown in `worker list`.
        reason: String,
    },
    /// The sector is finished or aborted and cleaned up: start over with a new one.
    Done,
}

/// What a step returns.
pub type StepResult = Result<Outcome, Failure>;

/// The step a state runs.
pub type StepFn = fn(Step) -> StepFuture<StepResult>;

/// One state of a plan.
pub struct Row {
    /// The state.
    pub state: State,
    /// What the thread does in it, as `worker list` shows it (`job_stage`); none when it waits
    /// for nothing.
    pub stage: Option<&'static str>,
    /// The step that runs in it.
    pub step: StepFn,
    /// Where each event of that step leads.
    pub next: &'static [(EventKind, State)],
}

/// A sector plan: its rows, in pipeline order.
pub struct Table {
    /// Which plan.
    pub plan: PlanKind,
    /// The processor stages its steps run (the worker starts their children).
    pub stages: &'static [Stage],
    /// One row per state the plan handles; `resume --state` takes exactly these.
    pub rows: &'static [Row],
}

impl Table {
    /// The row of `state`, if the plan handles it.
    pub fn row(&self, state: State) -> Option<&Row> {
        self.rows.iter().find(|r| r.state == state)
    }

    /// Where `event` leads from `from`, if the plan allows it.
    pub fn next(&self, from: State, event: EventKind) -> Option<State> {
        let row = self.row(from)?;
        row.next
            .iter()
            .find(|(e, _)| *e == event)
            .map(|(_, to)| *to)
    }

    /// What the thread does next in `state` (the `job_stage` column).
    pub fn stage(&self, state: State) -> Option<&'static str> {
        self.row(state).and_then(|r| r.stage)
    }

    /// Parses a `resume --state` argument; the error lists the plan's states.
    pub fn parse_state(&self, s: &str) -> Result<State, String> {
        let valid = || {
            self.rows
                .iter()
                .map(|r| r.state.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match s.parse::<State>() {
            Ok(st) if self.row(st).is_some() => Ok(st),
            Ok(st) => Err(format!(
                "state {st} is not handled by the {} plan; valid states: {}",
                self.plan,
                valid()
            )),
            Err(_) => Err(format!("unknown state {s:?}; valid states: {}", valid())),
        }
    }
}

#[cfg(test)]
impl Table {
    /// The states `events` lead through from `Empty` (`Aborted` where the table has no way).
    pub fn walk(&self, events: &[EventKind]) -> Vec<State> {
        let mut state = State::Empty;
        let mut seen = vec![state];
        for e in events {
            state = self.next(state, *e).unwrap_or(State::Aborted);
            seen.push(state);
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use crate::thread::plan::PlanKind;

    #[test]
    fn every_state_appears_once_and_every_event_leads_to_a_row() {
        for table in PlanKind::ALL
            .iter()
            .filter_map(|p| crate::sealing::table_of(*p))
        {
            for (i, row) in table.rows.iter().enumerate() {
                assert!(
                    table.rows[i + 1..].iter().all(|r| r.state != row.state),
                    "{}: {} twice",
                    table.plan,
                    row.state
                );
                for (e, to) in row.next {
                    assert!(
                        table.row(*to).is_some(),
                        "{}: {} --{e:?}--> {to}",
                        table.plan,
                        row.state
                    );
                }
            }
        }
    }
}
