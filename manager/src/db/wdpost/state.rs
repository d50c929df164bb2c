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
    pub const ALL: [JobState; 4] = [
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

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a row's `state` column is read (diesel's `deserialize_as`).
impl TryFrom<String> for JobState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        JobState::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| format!("unknown wdpost job state {s:?} in the database"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for st in JobState::ALL {
            assert_eq!(JobState::try_from(st.name().to_string()), Ok(st));
            assert_eq!(
                serde_json::to_value(st).ok(),
                Some(serde_json::Value::from(st.name()))
            );
        }
        assert!(JobState::try_from("Done".to_string()).is_err());
    }
}
