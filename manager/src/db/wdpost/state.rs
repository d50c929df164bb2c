//! The states of a WindowPoSt job, as damocles names them and as `wdpost_jobs.state` stores
//! them. Statements bind them as values; rows read them back into this type.

use serde::{Deserialize, Serialize};

/// Where a job is: waiting for a worker, held by one, or done either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for a worker to claim it.
    ReadyToRun,
    /// Claimed: a worker proves it and heartbeats meanwhile.
    Running,
    /// Proved, and the proof verified.
    Succeed,
    /// Failed; re-queued while it has tries left.
    Failed,
}

impl JobState {
    /// Every state, in the order a job goes through them.
    pub const ALL: &'static [JobState] = &[
        JobState::ReadyToRun,
        JobState::Running,
        JobState::Succeed,
        JobState::Failed,
    ];

    /// The stored and printed name.
    pub fn name(self) -> &'static str {
        match self {
            JobState::ReadyToRun => "ReadyToRun",
            JobState::Running => "Running",
            JobState::Succeed => "Succeed",
            JobState::Failed => "Failed",
        }
    }
}

damocles_actors::by_name!(JobState, "job state");

/// How a row's `state` column is read (diesel's `deserialize_as`).
impl TryFrom<String> for JobState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for &st in JobState::ALL {
            assert_eq!(JobState::try_from(st.name().to_string()), Ok(st));
            assert_eq!(
                serde_json::to_value(st).ok(),
                Some(serde_json::Value::from(st.name()))
            );
        }
        assert!(JobState::try_from("Done".to_string()).is_err());
    }
}
