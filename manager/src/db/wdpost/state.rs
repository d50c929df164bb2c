//! The states of a WindowPoSt job, as damocles names them and as `wdpost_jobs.state` stores
//! them. Statements bind them as values; rows read them back into this type.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

/// Where a job is: waiting for a worker, held by one, or done either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

/// A row's `state` column as diesel reads it (`deserialize_as`), by position or by name: a
/// name no state has is an error of the row.
#[derive(FromSqlRow)]
pub struct StateColumn(JobState);

impl<DB> FromSql<Text, DB> for StateColumn
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let name = String::from_sql(bytes)?;
        Ok(StateColumn(JobState::try_from(name)?))
    }
}

impl From<StateColumn> for JobState {
    fn from(c: StateColumn) -> JobState {
        c.0
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
