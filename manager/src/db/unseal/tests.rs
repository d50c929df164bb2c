use super::*;
use crate::db;

fn t(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
        .unwrap_or_default()
        .naive_utc()
}

fn ask(number: u64, dest: &str) -> NewUnseal {
    NewUnseal {
        miner: 1000,
        number,
        piece_cid: "baga-piece".into(),
        offset: 0,
        size: 4,
        payload_size: 3,
        dest: dest.into(),
        secret: "s3cret".into(),
        requeue: false,
    }
}

#[test]
fn a_task_is_given_to_one_thread_uploaded_once_and_queued_again_after() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = db::temp(&dir).conn().unwrap_or_else(|e| panic!("{e}"));
    let number = db::sectors::allocate(&mut c, 1000, 5, Some("w"), t(0)).unwrap_or(0);
    let q = |c: &mut DbConnection, dest: &str, at| queue(c, &ask(number, dest), t(at)).unwrap();

    assert!(!in_progress(&mut c, 1000, number).unwrap());
    assert_eq!(q(&mut c, MANAGER_DEST, 1), Queued::New);
    assert!(in_progress(&mut c, 1000, number).unwrap());
    assert_eq!(q(&mut c, MANAGER_DEST, 2), Queued::Already);
    assert_eq!(q(&mut c, "file:///tmp/x", 3), Queued::DestAdded);
    let row = get(&mut c, 1000, number, "baga-piece").unwrap().unwrap();
    assert_eq!(row.dests(), vec![MANAGER_DEST, "file:///tmp/x"]);
    assert_eq!(row.state, SET_UP);

    // Another proof type's thread gets nothing; the first matching one gets it, once.
    assert!(allocate(&mut c, 1000, Some(&[8]), Some("a"), t(4))
        .unwrap()
        .is_none());
    let got = allocate(&mut c, 1000, Some(&[5]), Some("a"), t(5))
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.state.as_str(), got.owner.as_deref()),
        (UNSEALING, Some("a"))
    );
    assert!(allocate(&mut c, 1000, None, Some("b"), t(6))
        .unwrap()
        .is_none());

    // No upload before the thread asks where to; then only with the secret and the size.
    let up = |c: &mut DbConnection, secret: &str, bytes: &[u8]| {
        store(c, 1000, number, "baga-piece", secret, bytes, t(7)).unwrap()
    };
    assert_eq!(
        up(&mut c, "s3cret", b"abc\0"),
        Err(UploadRefused::State(UNSEALING.into()))
    );
    let (row, secret) = start_upload(&mut c, 1000, number, "baga-piece", t(8))
        .unwrap()
        .unwrap();
    assert_eq!((row.state.as_str(), secret.as_str()), (UPLOADING, "s3cret"));
    assert_eq!(
        q(&mut c, "http://elsewhere/", 9),
        Queued::Uploading,
        "no new dest while uploading"
    );
    assert_eq!(up(&mut c, "guess", b"abc\0"), Err(UploadRefused::Secret));
    assert_eq!(up(&mut c, "s3cret", b"abc"), Err(UploadRefused::Size(4)));
    assert_eq!(data(&mut c, 1000, number, "baga-piece").unwrap(), None);
    assert_eq!(up(&mut c, "s3cret", b"abc\0"), Ok(()));
    assert_eq!(
        data(&mut c, 1000, number, "baga-piece").unwrap(),
        Some(b"abc\0".to_vec())
    );
    assert!(achieve(&mut c, 1000, number, "baga-piece", None, t(10)).unwrap());
    assert!(
        !achieve(&mut c, 1000, number, "baga-piece", None, t(11)).unwrap(),
        "once"
    );
    let done = get(&mut c, 1000, number, "baga-piece").unwrap().unwrap();
    assert_eq!(
        (done.state.as_str(), done.finished_at),
        (FINISHED, Some(t(10)))
    );

    // Asked again: queued afresh, the old bytes gone; a failure says why.
    assert_eq!(q(&mut c, MANAGER_DEST, 12), Queued::New);
    assert_eq!(data(&mut c, 1000, number, "baga-piece").unwrap(), None);
    allocate(&mut c, 1000, None, None, t(13)).unwrap().unwrap();
    assert!(achieve(&mut c, 1000, number, "baga-piece", Some("disk gone"), t(14)).unwrap());
    let failed = get(&mut c, 1000, number, "baga-piece").unwrap().unwrap();
    assert_eq!(
        (failed.state.as_str(), failed.error_info.as_deref()),
        (FAILED, Some("disk gone"))
    );
    assert_eq!(list(&mut c, Some(1000)).unwrap().len(), 1);
    assert!(list(&mut c, Some(1)).unwrap().is_empty());
    assert!(start_upload(&mut c, 1000, number, "nope", t(15))
        .unwrap()
        .is_none());

    // A task whose thread is gone for good is taken back only when asked to.
    assert_eq!(q(&mut c, MANAGER_DEST, 16), Queued::New);
    allocate(&mut c, 1000, None, Some("gone"), t(17))
        .unwrap()
        .unwrap();
    assert_eq!(q(&mut c, MANAGER_DEST, 18), Queued::Already);
    let again = NewUnseal {
        requeue: true,
        ..ask(number, MANAGER_DEST)
    };
    assert_eq!(queue(&mut c, &again, t(19)).unwrap(), Queued::Requeued);
    let back = get(&mut c, 1000, number, "baga-piece").unwrap().unwrap();
    assert_eq!((back.state.as_str(), back.owner), (SET_UP, None));
    assert!(
        !achieve(&mut c, 1000, number, "baga-piece", None, t(20)).unwrap(),
        "the old thread's word no longer counts"
    );
}
