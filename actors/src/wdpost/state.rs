//! A WindowPoSt slot's states: `Empty` (looking for a job), `Allocated` (holds a job, proving),
//! `Generated` (holds the proof or the error, handing it back). Plain data, no actix.

use crate::wire::processor::{Stage, WindowPoStOutput};
use crate::wire::venus_post::AllocatedPoStJob;

/// What a slot holds.
#[derive(Debug, Clone, Default)]
pub enum SlotState {
    /// Nothing: it asks for a job.
    #[default]
    Empty,
    /// A job it proves.
    Allocated(AllocatedPoStJob),
    /// A job and its proof (or why there is none), to hand back.
    Generated(AllocatedPoStJob, Result<WindowPoStOutput, String>),
}

/// What happened to the slot's job.
#[derive(Debug, Clone)]
pub enum SlotEvent {
    /// The manager gave us this job.
    Claimed(AllocatedPoStJob),
    /// The proof of the held job (or why there is none).
    Generated(Result<WindowPoStOutput, String>),
    /// The manager took the result.
    Finished,
    /// The job is not ours any more (refused by the manager, or given up); forget it.
    Dropped,
}

impl SlotState {
    /// The state's name, as `worker list` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            SlotState::Empty => "Empty",
            SlotState::Allocated(_) => "Allocated",
            SlotState::Generated(..) => "Generated",
        }
    }

    /// What the slot does next, for `worker list`.
    pub fn stage(&self) -> Option<&'static str> {
        match self {
            SlotState::Empty => None,
            SlotState::Allocated(_) => Some(Stage::WindowPost.name()),
            SlotState::Generated(..) => Some("finish"),
        }
    }

    /// The job held, if any.
    pub fn job(&self) -> Option<&AllocatedPoStJob> {
        match self {
            SlotState::Empty => None,
            SlotState::Allocated(j) | SlotState::Generated(j, _) => Some(j),
        }
    }

    /// The state after `event`, or an error when the event makes no sense here.
    pub fn apply(self, event: SlotEvent) -> Result<SlotState, String> {
        use SlotEvent as E;
        use SlotState as S;
        match (self, event) {
            (S::Empty, E::Claimed(job)) => Ok(S::Allocated(job)),
            (S::Allocated(job), E::Generated(res)) => Ok(S::Generated(job, res)),
            (S::Generated(..), E::Finished) => Ok(S::Empty),
            (S::Allocated(_) | S::Generated(..), E::Dropped) => Ok(S::Empty),
            (state, event) => Err(format!("event {} in state {}", event.name(), state.name())),
        }
    }
}

impl SlotEvent {
    /// The event's name, for the log.
    pub fn name(&self) -> &'static str {
        match self {
            SlotEvent::Claimed(_) => "Claimed",
            SlotEvent::Generated(_) => "Generated",
            SlotEvent::Finished => "Finished",
            SlotEvent::Dropped => "Dropped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::venus_post::PoStInput;

    fn job() -> AllocatedPoStJob {
        AllocatedPoStJob {
            id: "3FgfEnvrub1".into(),
            input: PoStInput {
                sectors: vec![],
                miner_id: 10000,
                proof_type: "StackedDrgWindow2KiBV1_2".into(),
                seed: [0; 32],
            },
        }
    }

    fn generated() -> SlotState {
        SlotState::Generated(job(), Err("x".into()))
    }

    #[test]
    fn transitions() {
        let ok = |s: SlotState, e: SlotEvent| s.apply(e).map(|s| s.name());
        let cases: Vec<(SlotState, SlotEvent, Result<&str, ()>)> = vec![
            (SlotState::Empty, SlotEvent::Claimed(job()), Ok("Allocated")),
            (
                SlotState::Allocated(job()),
                SlotEvent::Generated(Err("no file".into())),
                Ok("Generated"),
            ),
            (generated(), SlotEvent::Finished, Ok("Empty")),
            (SlotState::Allocated(job()), SlotEvent::Dropped, Ok("Empty")),
            (generated(), SlotEvent::Dropped, Ok("Empty")),
            (SlotState::Empty, SlotEvent::Finished, Err(())),
            (SlotState::Empty, SlotEvent::Dropped, Err(())),
            (
                SlotState::Allocated(job()),
                SlotEvent::Claimed(job()),
                Err(()),
            ),
            (SlotState::Allocated(job()), SlotEvent::Finished, Err(())),
            (
                generated(),
                SlotEvent::Generated(Err("again".into())),
                Err(()),
            ),
        ];
        for (state, event, want) in cases {
            let what = format!("{} + {}", state.name(), event.name());
            assert_eq!(ok(state, event).map_err(|_| ()), want, "{what}");
        }
    }

    #[test]
    fn the_job_and_the_stage_follow_the_state() {
        assert!(SlotState::Empty.job().is_none());
        assert_eq!(SlotState::Empty.stage(), None);
        let a = SlotState::Allocated(job());
        assert_eq!(a.job().map(|j| j.id.as_str()), Some("3FgfEnvrub1"));
        assert_eq!(a.stage(), Some("window_post"));
        assert_eq!(generated().stage(), Some("finish"));
    }
}
