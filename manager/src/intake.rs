//! What workers may send, checked when it arrives, before it reaches the database: a value that
//! does not fit its column must never fail a statement (in MySQL's strict mode it would, and a
//! ping's failure would fail every ping of its batch). Names and addresses that do not fit are
//! refused with the limit; counters, ages and free text (errors, reasons) are clamped or cut to
//! what the tables hold: a worker that reports nonsense there is still alive, and its call
//! still counts.

use damocles_actors::wire::venus::WorkerInfo;
use damocles_actors::wire::worker_api::ThreadState;

/// Most job ids one `WdPoStHeartbeatJobs` may name (a worker holds one job per wdpost thread).
pub const MAX_HEARTBEAT_IDS: usize = 1024;

/// Most threads one ping may carry (a worker with more is misconfigured or hostile).
pub const MAX_THREADS: usize = 1024;
/// Longest age of a thread's state that is kept: 10 years (older would be a clock gone wrong).
pub const MAX_ELAPSED_SECS: u64 = 10 * 365 * 24 * 3600;
/// Longest `last_error` kept; the rest is cut (it is for a person to read).
pub const MAX_ERROR_CHARS: usize = 4096;

/// Column widths (`migrations/*/..._init/up.sql`).
const NAME: usize = 255;
const DEST: usize = 255;
const VERSION: usize = 128;
const LOCATION: usize = 1024;
const PLAN: usize = 32;
const JOB_ID: usize = 128;
const JOB_STATE: usize = 64;
const JOB_STAGE: usize = 64;
const REASON: usize = 1024;

/// A `ReportState`'s state and location, or why they are refused.
pub fn check_report(state: &str, location: &str) -> Result<(), String> {
    fits("state", state, JOB_STATE)?;
    fits("worker location", location, LOCATION)
}

/// A job id list of `WdPoStHeartbeatJobs`, or why it is refused.
pub fn check_job_ids(ids: &[String]) -> Result<(), String> {
    if ids.len() > MAX_HEARTBEAT_IDS {
        return Err(format!(
            "{} job ids in one heartbeat; at most {MAX_HEARTBEAT_IDS} are accepted",
            ids.len()
        ));
    }
    Ok(())
}

/// Free text a worker sends (an error, a reason), cut to what a person needs to read.
pub fn text(mut s: String) -> String {
    cut(&mut s, MAX_ERROR_CHARS);
    s
}

/// The ping as it will be written, or why it is refused.
pub fn check_ping(mut info: WorkerInfo) -> Result<WorkerInfo, String> {
    required("worker name", &info.name, NAME)?;
    required("worker dest", &info.dest, DEST)?;
    fits("worker version", &info.version, VERSION)?;
    let s = &mut info.summary;
    for n in [
        &mut s.threads,
        &mut s.empty,
        &mut s.paused,
        &mut s.running,
        &mut s.waiting,
        &mut s.errors,
    ] {
        *n = (*n).min(i32::MAX as u64);
    }
    if let Some(threads) = &mut info.threads {
        if threads.len() > MAX_THREADS {
            return Err(format!(
                "the ping carries {} threads; at most {MAX_THREADS} are accepted",
                threads.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for t in threads.iter_mut() {
            let at = format!("thread #{}", t.index);
            if t.index >= MAX_THREADS {
                return Err(format!(
                    "{at}: thread indexes go from 0 to {}",
                    MAX_THREADS - 1
                ));
            }
            if !seen.insert(t.index) {
                return Err(format!("{at} is listed twice"));
            }
            fits(&format!("{at} location"), &t.location, LOCATION)?;
            fits(&format!("{at} plan"), &t.plan, PLAN)?;
            fits(
                &format!("{at} job_id"),
                t.job_id.as_deref().unwrap_or(""),
                JOB_ID,
            )?;
            fits(&format!("{at} job_state"), &t.job_state, JOB_STATE)?;
            fits(
                &format!("{at} job_stage"),
                t.job_stage.as_deref().unwrap_or(""),
                JOB_STAGE,
            )?;
            if let Some(e) = &mut t.last_error {
                cut(e, MAX_ERROR_CHARS);
            }
            match &mut t.thread_state {
                ThreadState::Idle => {}
                ThreadState::Paused { elapsed } | ThreadState::Running { elapsed, .. } => {
                    *elapsed = (*elapsed).min(MAX_ELAPSED_SECS);
                }
                ThreadState::Waiting { elapsed, reason } => {
                    *elapsed = (*elapsed).min(MAX_ELAPSED_SECS);
                    if let Some(r) = reason {
                        cut(r, REASON);
                    }
                }
            }
        }
    }
    Ok(info)
}

fn required(what: &str, v: &str, max: usize) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("{what} is required"));
    }
    fits(what, v, max)
}

fn fits(what: &str, v: &str, max: usize) -> Result<(), String> {
    let n = v.chars().count();
    if n > max {
        return Err(format!(
            "{what} has {n} characters; at most {max} are accepted"
        ));
    }
    if v.contains('\0') {
        return Err(format!("{what} contains a NUL character"));
    }
    Ok(())
}

/// Cuts `s` to `max` characters, saying so.
pub fn cut(s: &mut String, max: usize) {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
        s.push_str(" [cut]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damocles_actors::wire::venus::WorkerInfoSummary;
    use damocles_actors::wire::worker_api::ThreadInfo;

    fn ping(threads: Vec<ThreadInfo>) -> WorkerInfo {
        WorkerInfo {
            name: "w".into(),
            dest: "127.0.0.1:17890".into(),
            version: "v".into(),
            summary: WorkerInfoSummary::default(),
            threads: Some(threads),
        }
    }

    fn thread(index: usize, state: ThreadState) -> ThreadInfo {
        ThreadInfo {
            location: "/data".into(),
            plan: "sealer".into(),
            job_id: None,
            index,
            thread_state: state,
            job_state: String::new(),
            job_stage: None,
            last_error: None,
            pausing: false,
        }
    }

    #[test]
    fn ages_counters_and_errors_are_clamped() {
        let mut p = ping(vec![
            thread(0, ThreadState::Paused { elapsed: u64::MAX }),
            thread(
                1,
                ThreadState::Waiting {
                    elapsed: 10u64.pow(16),
                    reason: Some("r".repeat(5000)),
                },
            ),
        ]);
        p.summary.threads = u64::MAX;
        p.summary.errors = 1 << 40;
        if let Some(t) = p.threads.as_mut().and_then(|t| t.first_mut()) {
            t.last_error = Some("é".repeat(10_000));
        }
        let p = check_ping(p).unwrap();
        assert_eq!(p.summary.threads, i32::MAX as u64);
        assert_eq!(p.summary.errors, i32::MAX as u64);
        let t = p.threads.unwrap();
        assert_eq!(
            t[0].thread_state,
            ThreadState::Paused {
                elapsed: MAX_ELAPSED_SECS
            }
        );
        let e = t[0].last_error.clone().unwrap();
        assert_eq!(e.chars().count(), MAX_ERROR_CHARS + " [cut]".len());
        match &t[1].thread_state {
            ThreadState::Waiting { elapsed, reason } => {
                assert_eq!(*elapsed, MAX_ELAPSED_SECS);
                assert!(reason.as_ref().unwrap().ends_with(" [cut]"));
            }
            other => panic!("{other:?}"),
        }
        // The clamped age is one a timestamp can hold.
        let now = chrono::Utc::now().naive_utc();
        assert!(now
            .checked_sub_signed(chrono::Duration::seconds(MAX_ELAPSED_SECS as i64))
            .is_some());
    }

    #[test]
    fn what_does_not_fit_is_refused_with_the_limit() {
        let mut long_name = ping(vec![]);
        long_name.name = "n".repeat(256);
        assert_eq!(
            check_ping(long_name).unwrap_err(),
            "worker name has 256 characters; at most 255 are accepted"
        );
        let mut empty = ping(vec![]);
        empty.dest.clear();
        assert_eq!(check_ping(empty).unwrap_err(), "worker dest is required");
        let many: Vec<_> = (0..MAX_THREADS + 1)
            .map(|i| thread(i, ThreadState::Idle))
            .collect();
        assert!(check_ping(ping(many)).unwrap_err().contains("at most 1024"));
        let twice = ping(vec![
            thread(3, ThreadState::Idle),
            thread(3, ThreadState::Idle),
        ]);
        assert_eq!(check_ping(twice).unwrap_err(), "thread #3 is listed twice");
        let far = ping(vec![thread(1 << 40, ThreadState::Idle)]);
        assert!(check_ping(far).unwrap_err().contains("from 0 to 1023"));
        let mut t = thread(0, ThreadState::Idle);
        t.plan = "p".repeat(33);
        assert!(check_ping(ping(vec![t]))
            .unwrap_err()
            .starts_with("thread #0 plan has 33"));
        let mut nul = ping(vec![]);
        nul.version = "a\0b".into();
        assert!(check_ping(nul).unwrap_err().contains("NUL"));
    }

    #[test]
    fn reports_job_lists_and_free_text_have_limits() {
        assert!(check_report("PC1Done", "/data/a").is_ok());
        assert_eq!(
            check_report(&"S".repeat(65), "/a").unwrap_err(),
            "state has 65 characters; at most 64 are accepted"
        );
        assert!(check_job_ids(&vec![String::new(); MAX_HEARTBEAT_IDS]).is_ok());
        assert!(check_job_ids(&vec![String::new(); MAX_HEARTBEAT_IDS + 1])
            .unwrap_err()
            .contains("at most 1024"));
        assert_eq!(text("short".into()), "short");
        assert!(text("x".repeat(100_000)).len() < 5000);
    }

    #[test]
    fn a_plain_ping_passes_unchanged() {
        let p = ping(vec![thread(
            0,
            ThreadState::Running {
                elapsed: 5,
                proc: None,
            },
        )]);
        assert_eq!(check_ping(p.clone()).unwrap(), p);
    }
}
