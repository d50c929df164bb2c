use super::*;
use crate::db;
use damocles_actors::wire::venus::WorkerInfoSummary;

fn t(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
        .unwrap_or_default()
        .naive_utc()
}

fn thread(index: usize, job: &str, elapsed: u64) -> ThreadInfo {
    ThreadInfo {
        location: format!("/data/store{index}"),
        plan: "sealer".into(),
        job_id: Some(job.into()),
        index,
        thread_state: ThreadState::Running {
            elapsed,
            proc: None,
        },
        job_state: "PC1Done".into(),
        job_stage: Some("PC2".into()),
        last_error: None,
        pausing: false,
    }
}

fn ping(threads: Option<Vec<ThreadInfo>>) -> WorkerInfo {
    WorkerInfo {
        name: "w".into(),
        dest: "127.0.0.1:1".into(),
        version: "t".into(),
        summary: WorkerInfoSummary {
            threads: threads.as_ref().map_or(0, |t| t.len() as u64),
            ..Default::default()
        },
        threads,
    }
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Row {
    #[diesel(sql_type = BigInt)]
    thread_index: i64,
    #[diesel(sql_type = Nullable<Text>)]
    job_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    state_since: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    updated_at: NaiveDateTime,
}

fn rows(c: &mut DbConnection) -> Vec<Row> {
    load(
        c,
        "SELECT thread_index, job_id, state_since, updated_at FROM worker_threads \
         WHERE worker_name = 'w' ORDER BY thread_index",
        vec![],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn write(c: &mut DbConnection, p: WorkerInfo, at: i64) {
    upsert_pings(c, &[p], t(at)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_ping_that_repeats_the_last_writes_only_the_workers_row() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = db::temp(&dir).conn().unwrap_or_else(|e| panic!("{e}"));
    let two = |e0, e1| Some(vec![thread(0, "s-1", e0), thread(1, "s-2", e1)]);
    write(&mut c, ping(two(10, 25)), 0);
    let first = rows(&mut c);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].updated_at, t(0));
    assert_eq!(first[0].state_since, t(-10));

    // 30 s later the same threads, their elapsed seconds grown (one of them by a second more:
    // the worker's clock and the network wobble, within the same minute bucket): only
    // last_ping_at moves.
    write(&mut c, ping(two(40, 56)), 30);
    assert_eq!(
        rows(&mut c),
        first,
        "unchanged threads are not written again"
    );
    let w = get(&mut c, "w")
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("worker w is gone"));
    assert_eq!(w.last_ping_at, t(30), "the ping is still recorded");

    // One thread takes another job: both rows are written (the digest covers the worker).
    write(
        &mut c,
        ping(Some(vec![thread(0, "s-1", 70), thread(1, "s-3", 0)])),
        60,
    );
    let now = rows(&mut c);
    assert_eq!(now[1].job_id.as_deref(), Some("s-3"));
    assert_eq!(now[1].updated_at, t(60));
    assert_eq!(now[1].state_since, t(60));

    // The same job re-entering the same state minutes later is a change (its state_since).
    write(
        &mut c,
        ping(Some(vec![thread(0, "s-1", 5), thread(1, "s-3", 30)])),
        300,
    );
    assert_eq!(rows(&mut c)[0].state_since, t(295));

    // A thread gone from the config is removed.
    write(&mut c, ping(Some(vec![thread(0, "s-1", 35)])), 330);
    assert_eq!(rows(&mut c).len(), 1);
}

#[test]
fn the_digest_is_the_databases_so_another_managers_write_is_seen() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = db::temp(&dir);
    // Two connections stand for two managers on one database.
    let (mut a, mut b) = (
        db.conn().unwrap_or_else(|e| panic!("{e}")),
        db.conn().unwrap_or_else(|e| panic!("{e}")),
    );
    let x = || ping(Some(vec![thread(0, "s-x", 0)]));
    write(&mut a, x(), 0);
    write(&mut b, ping(Some(vec![thread(0, "s-y", 0)])), 30);
    // The worker comes back to manager A saying what it said to A before: A must write it,
    // though it is what A itself wrote last.
    write(&mut a, x(), 60);
    assert_eq!(rows(&mut a)[0].job_id.as_deref(), Some("s-x"));
}

#[test]
fn a_ping_without_threads_keeps_the_rows_and_their_digest() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = db::temp(&dir).conn().unwrap_or_else(|e| panic!("{e}"));
    write(&mut c, ping(Some(vec![thread(0, "s-1", 0)])), 0);
    // A damocles worker's ping says nothing of threads.
    write(&mut c, ping(None), 30);
    assert_eq!(rows(&mut c).len(), 1);
    write(&mut c, ping(Some(vec![thread(0, "s-1", 60)])), 60);
    assert_eq!(rows(&mut c)[0].updated_at, t(0), "still the same threads");
}

#[test]
fn many_workers_in_one_batch_write_only_the_changed_ones_threads() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = db::temp(&dir).conn().unwrap_or_else(|e| panic!("{e}"));
    let batch = |job: &dyn Fn(usize) -> String| -> Vec<WorkerInfo> {
        (0..100)
            .map(|i| WorkerInfo {
                name: format!("w{i:03}"),
                ..ping(Some(vec![thread(0, &job(i), 0)]))
            })
            .collect()
    };
    upsert_pings(&mut c, &batch(&|_| "a".into()), t(0)).unwrap_or_else(|e| panic!("{e}"));
    // Every tenth worker changed.
    let changed = |i: usize| {
        if i.is_multiple_of(10) {
            "b".into()
        } else {
            "a".into()
        }
    };
    upsert_pings(&mut c, &batch(&changed), t(30)).unwrap_or_else(|e| panic!("{e}"));
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count = |c: &mut DbConnection, sql: &str| -> i64 {
        load::<N>(c, sql, vec![]).unwrap_or_else(|e| panic!("{e}"))[0].n
    };
    assert_eq!(
        count(
            &mut c,
            "SELECT COUNT(*) AS n FROM worker_threads WHERE job_id = 'b'"
        ),
        10
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT COUNT(*) AS n FROM worker_threads WHERE updated_at > '2023-11-14 22:13:20'"
        ),
        10,
        "only the changed workers' rows were written again"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT COUNT(*) AS n FROM workers WHERE last_ping_at > '2023-11-14 22:13:20'"
        ),
        100
    );
}
