//! Challenge windows on a real SQLite database: no claim, retry, reset or success after a
//! window closes; a miss is recorded once and faults the job's sectors until a proof recovers
//! them; `job_lifetime` clears long-closed jobs out of the queue.

use chrono::NaiveDateTime;
use damocles_actors::wire::venus_post::{PoStInput, PoStSectorAccesses, PoStSectorInfo};

use super::super::*;
use crate::db::{self, sectors, DbConnection};

const MINER: u64 = 1000;

fn t(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
        .unwrap()
        .naive_utc()
}

/// A job over `numbers` whose window is open from t(0) to t(60).
fn job(id: &str, numbers: &[u64]) -> NewJob {
    let input = PoStInput {
        sectors: numbers
            .iter()
            .map(|n| PoStSectorInfo {
                sector_id: *n,
                comm_r: [1; 32],
                upgrade: false,
                accesses: PoStSectorAccesses {
                    sealed_file: "s".into(),
                    cache_dir: "s".into(),
                },
            })
            .collect(),
        miner_id: MINER,
        proof_type: "P".into(),
        seed: [0; 32],
    };
    NewJob {
        id: id.into(),
        miner_id: MINER,
        deadline_idx: 0,
        partitions: "0".into(),
        proof_type: "P".into(),
        sectors: numbers.len() as i32,
        deadline_open_at: t(0),
        deadline_close_at: t(60),
        part_group: numbers[0] as i32,
        input: serde_json::to_string(&input).unwrap(),
    }
}

/// Two sectors (numbers 1 and 2: numbers start at 1) and one job over each.
fn setup(c: &mut DbConnection) {
    for _ in 0..2 {
        sectors::allocate(c, MINER, 5, Some("w"), t(0)).unwrap();
    }
    assert!(create(c, &job("a", &[1]), t(0)).unwrap());
    assert!(create(c, &job("b", &[2]), t(0)).unwrap());
}

fn faulty(c: &mut DbConnection) -> Vec<(i64, String)> {
    sectors::faulty(c, Some(MINER))
        .unwrap()
        .into_iter()
        .map(|s| (s.sector_number, s.fault_reason.unwrap_or_default()))
        .collect()
}

fn state(c: &mut DbConnection, id: &str) -> (JobState, Option<String>) {
    let j = get(c, id).unwrap().unwrap();
    (j.state, j.error_reason)
}

fn claim_at(c: &mut DbConnection, worker: &str, at: NaiveDateTime) -> Vec<JobRow> {
    claim(
        c,
        ClaimMode::Conditional,
        &ClaimFilter::default(),
        4,
        worker,
        at,
    )
    .unwrap()
}

#[test]
fn a_closed_window_is_never_claimed_retried_reset_or_proven() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = db::temp(&dir).conn().unwrap();
    setup(&mut c);
    let held = claim_at(&mut c, "w", t(59));
    assert_eq!(held.len(), 2);
    let (a, b) = (&held[0], &held[1]);
    // A success after the close is refused and changes nothing; a failure still ends the try.
    let ok = || Finish {
        succeeded: true,
        error: None,
        output: Some("{}".into()),
    };
    let attempt = |j: &JobRow| j.attempt.clone().unwrap();
    assert!(!finish(&mut c, &a.id, "w", &attempt(a), ok(), t(60)).unwrap());
    assert_eq!(state(&mut c, &a.id).0, JobState::Running);
    let failed = Finish {
        succeeded: false,
        error: Some("boom".into()),
        output: None,
    };
    assert!(finish(&mut c, &b.id, "w", &attempt(b), failed, t(61)).unwrap());
    // No retry and no reset once closed; both still possible while open.
    assert_eq!(retry_failed(&mut c, 5, t(61)).unwrap(), 0);
    assert!(!reset(&mut c, &b.id, t(61)).unwrap());
    assert!(reset(&mut c, &b.id, t(30)).unwrap());
    // Nothing to claim after the close, though b is ReadyToRun again.
    assert!(claim_at(&mut c, "other", t(60)).is_empty());
    assert_eq!(claim_at(&mut c, "other", t(59)).len(), 1);
}

#[test]
fn a_missed_window_is_recorded_once_and_faults_its_sectors_until_a_proof() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = db::temp(&dir).conn().unwrap();
    setup(&mut c);
    let held = claim_at(&mut c, "w", t(10));
    let a = held.iter().find(|j| j.id == "a").unwrap().clone();
    // a succeeds in time; b is still running when the window closes.
    let ok = Finish {
        succeeded: true,
        error: None,
        output: Some("{}".into()),
    };
    assert!(finish(&mut c, "a", "w", a.attempt.as_deref().unwrap(), ok, t(50)).unwrap());
    assert!(
        close_windows(&mut c, t(59)).unwrap().is_empty(),
        "still open"
    );
    let missed = close_windows(&mut c, t(60)).unwrap();
    let ids: Vec<&str> = missed.iter().map(|m| m.job_id.as_str()).collect();
    assert_eq!(ids, ["b"]);
    assert!(
        missed[0]
            .reason
            .contains("worker w had not handed in a proof"),
        "{:?}",
        missed[0]
    );
    let (st, reason) = state(&mut c, "b");
    assert_eq!(st, JobState::Failed);
    assert!(reason.unwrap().starts_with("deadline closed"));
    let faults = faulty(&mut c);
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0].0, 2);
    assert!(
        faults[0].1.contains("missed WindowPoSt of deadline 0"),
        "{faults:?}"
    );
    // Another manager's clock (or the next tick) records nothing again.
    assert!(close_windows(&mut c, t(70)).unwrap().is_empty());
    assert_eq!(missed::list(&mut c, Some(MINER), 10).unwrap().len(), 1);
    assert_eq!(count_by_miner(&mut c).unwrap(), [(MINER as i64, 1)]);
    // A job nobody claimed misses too, with its own reason.
    let mut late = job("c", &[1]);
    late.deadline_open_at = t(100);
    late.deadline_close_at = t(160);
    assert!(create(&mut c, &late, t(100)).unwrap());
    let missed = close_windows(&mut c, t(160)).unwrap();
    assert!(missed[0].reason.contains("no prover claimed"), "{missed:?}");
    assert_eq!(faulty(&mut c).len(), 2);
    // A later verified proof recovers sector 2 only.
    assert_eq!(sectors::recover(&mut c, MINER, &[2], t(200)).unwrap(), 1);
    let left: Vec<i64> = faulty(&mut c).iter().map(|f| f.0).collect();
    assert_eq!(left, [1]);
}

#[test]
fn job_lifetime_archives_jobs_of_long_closed_windows_but_not_running_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = db::temp(&dir).conn().unwrap();
    setup(&mut c);
    claim_at(&mut c, "w", t(10));
    // Before the cutoff passes the close, nothing moves; a running job stays even then.
    assert_eq!(expire(&mut c, t(60)).unwrap(), 0);
    assert_eq!(expire(&mut c, t(61)).unwrap(), 0, "both are running");
    close_windows(&mut c, t(60)).unwrap();
    assert_eq!(expire(&mut c, t(61)).unwrap(), 2);
    assert!(list(&mut c, true).unwrap().is_empty());
    // The misses stay on record.
    assert_eq!(missed::list(&mut c, None, 10).unwrap().len(), 2);
}
