//! The job queue on a real SQLite database: claims are exclusive under concurrency, a worker
//! that no longer owns a job cannot touch it, and the keeper's rules do what `[task]` says.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;

use super::*;
use crate::db::Db;

fn db(dir: &tempfile::TempDir) -> Db {
    crate::db::temp(dir)
}

fn t(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
        .unwrap()
        .naive_utc()
}

fn new_job(i: i32, miner: u64, proof: &str) -> NewJob {
    NewJob {
        id: format!("job-{i}"),
        miner_id: miner,
        deadline_idx: i,
        partitions: "0".into(),
        proof_type: proof.into(),
        sectors: 1,
        deadline_open_at: t(0),
        deadline_close_at: t(3600),
        part_group: 0,
        input: "{}".into(),
    }
}

fn add(db: &Db, n: i32) {
    let mut c = db.conn().unwrap();
    for i in 0..n {
        assert!(create(&mut c, &new_job(i, 1000, "P2KiB"), t(i.into())).unwrap());
    }
}

fn claim_one(db: &Db, worker: &str, at: i64) -> Option<JobRow> {
    let mut c = db.conn().unwrap();
    claim(
        &mut c,
        ClaimMode::Conditional,
        &ClaimFilter::default(),
        1,
        worker,
        t(at),
    )
    .unwrap()
    .pop()
}

#[test]
fn creating_a_job_twice_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let mut c = db.conn().unwrap();
    assert!(create(&mut c, &new_job(1, 1000, "P"), t(0)).unwrap());
    assert!(!create(&mut c, &new_job(1, 1000, "P"), t(5)).unwrap());
    // Another id for the same opening of the same deadline is refused too.
    let mut other = new_job(1, 1000, "P");
    other.id = "other".into();
    assert!(!create(&mut c, &other, t(5)).unwrap());
    assert_eq!(list(&mut c, true).unwrap().len(), 1);
}

#[test]
fn concurrent_claimers_take_every_job_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    add(&db, 300);
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let (db, claimed) = (db.clone(), claimed.clone());
            std::thread::spawn(move || {
                while let Some(job) = claim_one(&db, &format!("w{w}"), 1) {
                    claimed.lock().unwrap().push(job.id);
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let ids = claimed.lock().unwrap().clone();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 300, "every job claimed once");
    assert_eq!(unique.len(), 300, "no job claimed twice");
    let mut c = db.conn().unwrap();
    assert!(list(&mut c, true)
        .unwrap()
        .iter()
        .all(|j| j.state == JobState::Running && j.try_num == 1));
}

#[test]
fn claims_honour_the_filter_and_take_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let mut c = db.conn().unwrap();
    create(&mut c, &new_job(1, 1000, "P2KiB"), t(2)).unwrap();
    create(&mut c, &new_job(2, 2000, "P2KiB"), t(1)).unwrap();
    create(&mut c, &new_job(3, 1000, "P32GiB"), t(0)).unwrap();
    let only = |miners: Vec<u64>, proofs: Vec<&str>| ClaimFilter {
        miners: Some(miners),
        proof_types: Some(proofs.into_iter().map(String::from).collect()),
    };
    let got = claim(
        &mut c,
        ClaimMode::Conditional,
        &only(vec![3000], vec![]),
        5,
        "w",
        t(5),
    )
    .unwrap();
    assert!(got.is_empty());
    let got = claim(
        &mut c,
        ClaimMode::Conditional,
        &only(vec![1000], vec!["P2KiB"]),
        5,
        "w",
        t(5),
    )
    .unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["job-1"]
    );
    let got = claim(
        &mut c,
        ClaimMode::Conditional,
        &ClaimFilter::default(),
        5,
        "w",
        t(5),
    )
    .unwrap();
    assert_eq!(
        got.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["job-3", "job-2"]
    );
    assert_eq!(got[0].worker_name.as_deref(), Some("w"));
    assert_eq!(got[0].started_at, Some(t(5)));
}

#[test]
fn a_batch_of_claims_deals_the_oldest_jobs_in_order_each_under_its_own_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let mut c = db.conn().unwrap();
    for i in 0..4 {
        create(&mut c, &new_job(i, 1000, "P2KiB"), t(i.into())).unwrap();
    }
    let ask = |w: &str, n| Ask {
        worker: w.into(),
        n,
    };
    let asks = [ask("a", 2), ask("b", 0), ask("c", 3)];
    let got = claim_for(
        &mut c,
        ClaimMode::Conditional,
        &ClaimFilter::default(),
        &asks,
        t(9),
    )
    .unwrap();
    let ids = |k: usize| got[k].iter().map(|j| j.id.as_str()).collect::<Vec<_>>();
    assert_eq!(ids(0), ["job-0", "job-1"]);
    assert!(got[1].is_empty());
    assert_eq!(ids(2), ["job-2", "job-3"], "c gets what is left");
    let attempt = |k: usize| got[k][0].attempt.clone().unwrap();
    assert_eq!(got[0][1].attempt.clone().unwrap(), attempt(0));
    assert_ne!(attempt(0), attempt(2));
    // What the claimers were given is what the table says.
    for j in got.iter().flatten() {
        let stored = get(&mut c, &j.id).unwrap().unwrap();
        assert_eq!(stored.worker_name, j.worker_name);
        assert_eq!(stored.attempt, j.attempt);
        assert_eq!((stored.state, stored.try_num), (JobState::Running, 1));
    }
    assert!(claim_for(
        &mut c,
        ClaimMode::Conditional,
        &ClaimFilter::default(),
        &asks,
        t(9)
    )
    .unwrap()
    .iter()
    .all(Vec::is_empty));
}

#[test]
fn a_stale_worker_cannot_heartbeat_or_finish_and_the_row_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    add(&db, 1);
    let mut c = db.conn().unwrap();
    let job = claim_one(&db, "a", 0).unwrap();
    let old = job.attempt.clone().unwrap();
    assert!(heartbeat(&mut c, &[job.wire_id()], "a", t(3))
        .unwrap()
        .is_empty());

    // a stops heartbeating: the job fails, is queued again and b takes it.
    assert_eq!(
        fail_stale(&mut c, t(2), t(20)).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        fail_stale(&mut c, t(18), t(20)).unwrap(),
        std::slice::from_ref(&job.id)
    );
    let failed = get(&mut c, &job.id).unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.error_reason.as_deref()),
        (JobState::Failed, Some("heartbeat timeout"))
    );
    assert_eq!(retry_failed(&mut c, 2, t(21)).unwrap(), 1);
    let again = claim_one(&db, "b", 22).unwrap();
    assert_eq!((again.id.as_str(), again.try_num), (job.id.as_str(), 2));

    let before = format!("{:?}", get(&mut c, &job.id).unwrap());
    let refused = heartbeat(&mut c, &[job.wire_id()], "a", t(23)).unwrap();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("held by worker b, not a"),
        "{refused:?}"
    );
    let stale_finish = Finish {
        succeeded: true,
        error: None,
        output: Some("{}".into()),
    };
    assert!(!finish(&mut c, &job.id, "a", &old, stale_finish, t(24)).unwrap());
    // Even the right worker name with the old attempt is refused.
    let old_try = Finish {
        succeeded: false,
        error: Some("late".into()),
        output: None,
    };
    assert!(!finish(&mut c, &job.id, "b", &old, old_try, t(24)).unwrap());
    assert_eq!(format!("{:?}", get(&mut c, &job.id).unwrap()), before);

    // The owner finishes; after that nobody can heartbeat it.
    let done = Finish {
        succeeded: true,
        error: None,
        output: Some("{\"proofs\":[]}".into()),
    };
    let current = again.attempt.clone().unwrap();
    assert_ne!(current, old);
    assert!(finish(&mut c, &job.id, "b", &current, done, t(25)).unwrap());
    let refused = heartbeat(&mut c, &[again.wire_id()], "b", t(26)).unwrap();
    assert!(
        refused[0].contains("is Succeed, not running"),
        "{refused:?}"
    );
    assert!(not_owned(&mut c, "nope", Some("b"))
        .unwrap()
        .contains("does not exist"));
}

#[test]
fn a_job_that_used_its_tries_stays_failed_until_reset() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    add(&db, 1);
    let mut c = db.conn().unwrap();
    let fail = |c: &mut DbConnection, job: &JobRow, at: i64| {
        let f = Finish {
            succeeded: false,
            error: Some("no such file".into()),
            output: None,
        };
        let attempt = job.attempt.as_deref().unwrap();
        assert!(finish(c, "job-0", "w", attempt, f, t(at)).unwrap());
    };
    let first = claim_one(&db, "w", 1).unwrap();
    fail(&mut c, &first, 2);
    assert_eq!(retry_failed(&mut c, 2, t(3)).unwrap(), 1);
    let second = claim_one(&db, "w", 4).unwrap();
    assert_eq!(second.try_num, 2);
    // The last error stays visible while the job is tried again.
    assert_eq!(second.error_reason.as_deref(), Some("no such file"));
    fail(&mut c, &second, 5);
    assert_eq!(retry_failed(&mut c, 2, t(6)).unwrap(), 0);
    assert!(claim_one(&db, "w", 7).is_none());
    assert_eq!(
        get(&mut c, "job-0").unwrap().unwrap().state,
        JobState::Failed
    );

    assert!(reset(&mut c, "job-0", t(8)).unwrap());
    assert!(!reset(&mut c, "nope", t(8)).unwrap());
    let r = get(&mut c, "job-0").unwrap().unwrap();
    assert_eq!((r.state, r.try_num), (JobState::ReadyToRun, 0));
    assert!(r.worker_name.is_none() && r.error_reason.is_none() && r.started_at.is_none());
    assert!(r.attempt.is_none());
    assert_eq!(claim_one(&db, "w", 9).unwrap().try_num, 1);
}

#[test]
fn a_stale_slot_of_the_same_worker_cannot_touch_the_job_claimed_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    add(&db, 1);
    let mut c = db.conn().unwrap();
    let stale = claim_one(&db, "w", 1).unwrap();
    // An operator resets the job; the same worker claims it again: same name, same try.
    assert!(reset(&mut c, &stale.id, t(2)).unwrap());
    let fresh = claim_one(&db, "w", 3).unwrap();
    assert_eq!(
        (fresh.try_num, fresh.worker_name.as_deref()),
        (1, Some("w"))
    );
    assert_ne!(fresh.attempt, stale.attempt);
    let before = format!("{:?}", get(&mut c, &fresh.id).unwrap());
    let refused = heartbeat(&mut c, &[stale.wire_id()], "w", t(4)).unwrap();
    assert!(
        refused[0].contains("was claimed again since"),
        "{refused:?}"
    );
    let late = Finish {
        succeeded: false,
        error: Some("late".into()),
        output: None,
    };
    let old = stale.attempt.as_deref().unwrap();
    assert!(!finish(&mut c, &stale.id, "w", old, late, t(5)).unwrap());
    assert_eq!(format!("{:?}", get(&mut c, &fresh.id).unwrap()), before);
    // An id without an attempt (not from a claim) is refused too.
    assert_eq!(
        heartbeat(&mut c, std::slice::from_ref(&fresh.id), "w", t(6))
            .unwrap()
            .len(),
        1
    );
    assert!(heartbeat(&mut c, &[fresh.wire_id()], "w", t(6))
        .unwrap()
        .is_empty());
}

#[test]
fn long_running_jobs_time_out_and_finished_ones_are_archived() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    add(&db, 3);
    let mut c = db.conn().unwrap();
    let jobs: Vec<JobRow> = (0..3).map(|_| claim_one(&db, "w", 0).unwrap()).collect();
    let ok = Finish {
        succeeded: true,
        error: None,
        output: None,
    };
    let attempt = jobs[0].attempt.as_deref().unwrap();
    assert!(finish(&mut c, "job-0", "w", attempt, ok, t(10)).unwrap());
    // job-1 and job-2 keep heartbeating but run past the timeout.
    let alive = [jobs[1].wire_id(), jobs[2].wire_id()];
    assert!(heartbeat(&mut c, &alive, "w", t(100)).unwrap().is_empty());
    let mut timed_out =
        fail_timed_out(&mut c, t(50), "timeout: running longer than 50s", t(100)).unwrap();
    timed_out.sort();
    assert_eq!(timed_out, ["job-1", "job-2"]);

    // Only finished jobs older than the cutoff move; max_retry 1 makes the failed ones final.
    assert_eq!(archive(&mut c, t(50), 2).unwrap(), 1);
    assert_eq!(archive(&mut c, t(200), 1).unwrap(), 2);
    assert!(list(&mut c, true).unwrap().is_empty());
    let archived: Vec<Count> = load(
        &mut c,
        "SELECT COUNT(*) AS n FROM wdpost_jobs_archived",
        vec![],
    )
    .unwrap();
    assert_eq!(archived[0].n, 3);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[test]
fn list_hides_succeeded_jobs_unless_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    add(&db, 2);
    let mut c = db.conn().unwrap();
    let job = claim_one(&db, "w", 0).unwrap();
    let ok = Finish {
        succeeded: true,
        error: None,
        output: None,
    };
    let attempt = job.attempt.as_deref().unwrap();
    assert!(finish(&mut c, "job-0", "w", attempt, ok, t(1)).unwrap());
    assert_eq!(list(&mut c, false).unwrap().len(), 1);
    assert_eq!(list(&mut c, true).unwrap().len(), 2);
    assert!(remove(&mut c, "job-0").unwrap());
    assert!(!remove(&mut c, "job-0").unwrap());
}
