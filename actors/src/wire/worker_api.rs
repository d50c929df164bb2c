//! The worker's local management API (`VenusWorker.*`, JSON-RPC 2.0 at `POST /` on the
//! worker's `rpc_server`), in the current damocles thread shape (snake_case).

use serde::{Deserialize, Serialize};

/// The namespace of the worker's management methods.
pub const NAMESPACE: &str = "VenusWorker";
/// The management port when none is configured.
pub const DEFAULT_PORT: u16 = 17890;

/// One sealing thread as `WorkerList` returns it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThreadInfo {
    /// Absolute store path, or `-` for threads without one (wdpost).
    pub location: String,
    /// The thread's plan (`sealer`, `wdpost`).
    pub plan: String,
    /// `s-t010000-2` for a sector, the job id for wdpost, null when empty.
    pub job_id: Option<String>,
    /// Its place in the config file.
    pub index: usize,
    /// What it is doing.
    pub thread_state: ThreadState,
    /// State name (`C1Done`), empty when there is no job.
    pub job_state: String,
    /// What the thread will do next (`C2`), null when nothing.
    pub job_stage: Option<String>,
    /// The error that parked it, if any.
    pub last_error: Option<String>,
    /// Our extension: a pause was asked for while a step runs that cannot be stopped
    /// half-way; the thread parks when the step ends. Absent (false) from damocles' workers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pausing: bool,
}

/// What the thread is doing; `elapsed` is seconds in this state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state")]
pub enum ThreadState {
    /// Between steps.
    Idle,
    /// Parked until an operator resumes it.
    Paused {
        /// Seconds since it was paused.
        elapsed: u64,
    },
    /// A processor is at work for it.
    Running {
        /// Seconds since the processor took the task.
        elapsed: u64,
        /// Which processor.
        proc: Option<String>,
    },
    /// Held back (a stage limit, parameters, a quota).
    Waiting {
        /// Seconds it has waited.
        elapsed: u64,
        /// Our extension: what the thread waits for (a stage limit, parameters, a quota).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl ThreadState {
    /// Whether it is parked.
    pub fn is_paused(&self) -> bool {
        matches!(self, ThreadState::Paused { .. })
    }

    /// The state's name, as the `worker_threads` table stores it.
    pub fn name(&self) -> &'static str {
        match self {
            ThreadState::Idle => "Idle",
            ThreadState::Paused { .. } => "Paused",
            ThreadState::Running { .. } => "Running",
            ThreadState::Waiting { .. } => "Waiting",
        }
    }
}

impl std::fmt::Display for ThreadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s));
        match self {
            ThreadState::Idle => write!(f, "Idle"),
            ThreadState::Paused { elapsed } => write!(f, "Paused({})", d(*elapsed)),
            ThreadState::Running { elapsed, proc } => {
                write!(
                    f,
                    "Running({}) {}",
                    d(*elapsed),
                    proc.as_deref().unwrap_or("")
                )
            }
            ThreadState::Waiting { elapsed, reason } => match reason {
                Some(r) => write!(f, "Waiting({}) {r}", d(*elapsed)),
                None => write!(f, "Waiting({})", d(*elapsed)),
            },
        }
    }
}

impl ThreadInfo {
    /// The one-line form of `damocles-worker worker list` (seed 001):
    /// `#0: "/path"; sector_id=Some(s-t010000-2), paused=true, paused_elapsed=Some(17s), state=C1Done, last_err=Some("…")`.
    pub fn list_line(&self) -> String {
        // Rust's Debug of an `Option<Duration>`, as the seed prints it: `Some(17s)`, `Some(822s)`.
        let paused_elapsed = match &self.thread_state {
            ThreadState::Paused { elapsed } => {
                format!("{:?}", Some(std::time::Duration::from_secs(*elapsed)))
            }
            _ => "None".to_string(),
        };
        let opt = |v: &Option<String>| match v {
            Some(s) => format!("Some({s})"),
            None => "None".to_string(),
        };
        let mut state = if self.job_state.is_empty() {
            "Empty".to_string()
        } else {
            self.job_state.clone()
        };
        if self.pausing {
            state += " (pausing)";
        }
        format!(
            "#{}: {:?}; sector_id={}, paused={}, paused_elapsed={}, state={}, last_err={}",
            self.index,
            self.location,
            opt(&self.job_id),
            self.thread_state.is_paused(),
            paused_elapsed,
            state,
            match &self.last_error {
                Some(e) => format!("Some({e:?})"),
                None => "None".to_string(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(state: ThreadState, job: Option<&str>, err: Option<&str>) -> ThreadInfo {
        ThreadInfo {
            location: "/path/store1".into(),
            plan: "sealer".into(),
            job_id: job.map(String::from),
            index: 0,
            thread_state: state,
            job_state: if job.is_some() {
                "C1Done".into()
            } else {
                String::new()
            },
            job_stage: None,
            last_error: err.map(String::from),
            pausing: false,
        }
    }

    #[test]
    fn list_line_matches_the_seed_format() {
        let cases = [
            (
                info(
                    ThreadState::Paused { elapsed: 17 },
                    Some("s-t010000-2"),
                    Some("permanent: x \"y\""),
                ),
                r#"#0: "/path/store1"; sector_id=Some(s-t010000-2), paused=true, paused_elapsed=Some(17s), state=C1Done, last_err=Some("permanent: x \"y\"")"#,
            ),
            (
                info(
                    ThreadState::Paused { elapsed: 822 },
                    Some("s-t010000-3"),
                    None,
                ),
                r#"#0: "/path/store1"; sector_id=Some(s-t010000-3), paused=true, paused_elapsed=Some(822s), state=C1Done, last_err=None"#,
            ),
            (
                info(ThreadState::Idle, None, None),
                r#"#0: "/path/store1"; sector_id=None, paused=false, paused_elapsed=None, state=Empty, last_err=None"#,
            ),
        ];
        for (i, want) in cases {
            assert_eq!(i.list_line(), want);
        }
    }

    #[test]
    fn a_pausing_thread_says_so_and_damocles_shapes_still_decode() {
        let mut t = info(
            ThreadState::Running {
                elapsed: 5,
                proc: None,
            },
            Some("s-t010000-4"),
            None,
        );
        let quiet = serde_json::to_value(&t).unwrap_or_default();
        assert!(quiet.get("pausing").is_none(), "{quiet}");
        t.pausing = true;
        assert!(t.list_line().contains("state=C1Done (pausing),"));
        let v = serde_json::to_value(&t).unwrap_or_default();
        assert_eq!(v["pausing"], true);
        let back: Option<ThreadInfo> = serde_json::from_value(quiet).ok();
        assert_eq!(back.map(|b| b.pausing), Some(false));
    }

    #[test]
    fn thread_state_is_internally_tagged() {
        let v = serde_json::to_value(ThreadState::Paused { elapsed: 3 }).unwrap_or_default();
        assert_eq!(v, serde_json::json!({"state": "Paused", "elapsed": 3}));
        let idle: ThreadState = serde_json::from_value(serde_json::json!({"state": "Idle"}))
            .unwrap_or(ThreadState::Paused { elapsed: 0 });
        assert_eq!(idle, ThreadState::Idle);
    }

    #[test]
    fn thread_state_display() {
        assert_eq!(
            ThreadState::Paused { elapsed: 17 }.to_string(),
            "Paused(17s)"
        );
        assert_eq!(
            ThreadState::Running {
                elapsed: 63,
                proc: Some("ext(pid: 42)".into())
            }
            .to_string(),
            "Running(1m 3s) ext(pid: 42)"
        );
    }
}

/// One stage's concurrency as `worker limits` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageUse {
    /// At most this many at once (none: no limit).
    pub limit: Option<usize>,
    /// Running now.
    pub running: usize,
}
