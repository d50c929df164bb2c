//! Operators' sector changes on a real SQLite database: each refuses what it must and changes
//! nothing then.

use chrono::NaiveDateTime;

use super::*;
use crate::db::{self, sectors, DbError};
use crate::sector_json::{ImportedPiece, ImportedUpdate};

const MINER: u64 = 1000;

fn t(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
        .unwrap()
        .naive_utc()
}

fn imported(number: u64, deal: Option<u64>) -> Import {
    Import {
        miner: MINER,
        number,
        proof_type: 5,
        ticket: "dA==".into(),
        seed: Some("cw==".into()),
        proof: "cA==".into(),
        comm_r: "01".repeat(32),
        comm_d: "02".repeat(32),
        persist_store: "store-a".into(),
        last_worker: Some("old-worker".into()),
        last_location: Some("/mnt/x".into()),
        update: None,
        pieces: deal
            .map(|id| ImportedPiece {
                deal_id: id,
                piece_cid: "baga".into(),
                piece_size: 2048,
                payload_size: 100,
                offset: 0,
                client: "t01001".into(),
                start_epoch: 0,
                end_epoch: 10,
            })
            .into_iter()
            .collect(),
    }
}

fn invalid(r: Result<(), DbError>) -> String {
    match r {
        Err(DbError::Invalid(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_imported_sector_is_proven_placed_and_numbers_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = db::temp(&dir).conn().unwrap();
    let mut snapped = imported(40, Some(7));
    snapped.update = Some(ImportedUpdate {
        comm_r: "03".repeat(32),
        comm_d: "04".repeat(32),
        store: "store-b".into(),
        proof: "dQ==".into(),
    });
    import(&mut c, &snapped, false, (1, 0), t(0)).unwrap();
    let row = sectors::get(&mut c, MINER, 40).unwrap().unwrap();
    assert_eq!(row.proof_state.as_deref(), Some("Landed"));
    assert_eq!((row.deadline_idx, row.partition_idx), (Some(1), Some(0)));
    assert_eq!(row.update_store.as_deref(), Some("store-b"));
    assert_eq!(row.snap_state.as_deref(), Some(snap::DONE));
    assert!(row.imported_at.is_some() && row.owner.is_none());
    let deals = market::of_sector(&mut c, MINER, 40).unwrap();
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0].state, market::ACTIVE);
    // The next sector allocated here is 41.
    assert_eq!(sectors::allocate(&mut c, MINER, 5, None, t(1)).unwrap(), 41);
    // Once more: refused without --override; a deal of another sector is refused even with it.
    let again = invalid(import(&mut c, &imported(40, None), false, (1, 0), t(2)));
    assert!(again.contains("exists already (state Finished)"), "{again}");
    let clash = invalid(import(&mut c, &imported(42, Some(7)), false, (2, 0), t(2)));
    assert!(
        clash.contains("deal 7") && clash.contains("sector 40"),
        "{clash}"
    );
    assert!(
        sectors::get(&mut c, MINER, 42).unwrap().is_none(),
        "nothing written"
    );
    // Replacing a finished one works, its own deal included.
    import(&mut c, &imported(40, Some(7)), true, (1, 0), t(3)).unwrap();
    let row = sectors::get(&mut c, MINER, 40).unwrap().unwrap();
    assert!(
        row.update_store.is_none(),
        "the new record replaced the old"
    );
    // A sector in progress is never replaced.
    let busy = invalid(import(&mut c, &imported(41, None), true, (1, 0), t(4)));
    assert!(busy.contains("in progress (state Allocated)"), "{busy}");
}

#[test]
fn an_abort_remembers_the_state_and_restore_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = db::temp(&dir).conn().unwrap();
    let n = sectors::allocate(&mut c, MINER, 5, Some("w"), t(0)).unwrap();
    let report = sectors::Change::Report {
        state: "PC1Done".into(),
        worker: "w".into(),
        location: "/l".into(),
    };
    sectors::update(&mut c, MINER, n, report, t(1)).unwrap();
    assert!(abort(&mut c, MINER, n, "aborted by admin@x: stuck", t(2)).unwrap());
    assert!(
        !abort(&mut c, MINER, n, "twice", t(3)).unwrap(),
        "once is enough"
    );
    let row = sectors::get(&mut c, MINER, n).unwrap().unwrap();
    assert_eq!(row.state, "Aborted");
    assert_eq!(row.aborted_from.as_deref(), Some("PC1Done"));
    assert_eq!(
        row.abort_reason.as_deref(),
        Some("aborted by admin@x: stuck")
    );
    assert!(restore(&mut c, MINER, n, t(4)).unwrap());
    assert!(
        !restore(&mut c, MINER, n, t(5)).unwrap(),
        "not aborted any more"
    );
    let row = sectors::get(&mut c, MINER, n).unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.abort_reason), ("PC1Done", None));
    // A proven sector is never aborted.
    import(&mut c, &imported(9, None), false, (0, 0), t(6)).unwrap();
    assert!(!abort(&mut c, MINER, 9, "no", t(7)).unwrap());
}

#[test]
fn a_sector_whose_deals_went_back_cannot_be_restored() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = db::temp(&dir).conn().unwrap();
    let deal = market::NewDeal {
        miner: MINER,
        piece_cid: "baga-test".into(),
        piece_size: 256,
        payload: vec![1; 200],
        client: "t01001".into(),
        start_epoch: 0,
        end_epoch: 10,
    };
    market::import(&mut c, deal, t(0)).unwrap();
    let n = sectors::allocate(&mut c, MINER, 5, Some("w"), t(0)).unwrap();
    let want = market::Want {
        max: Some(1),
        min: None,
    };
    assert_eq!(
        market::assign(&mut c, MINER, n, 2048, want, t(1))
            .unwrap()
            .len(),
        1
    );
    assert!(abort(&mut c, MINER, n, "aborted by admin", t(2)).unwrap());
    let row = sectors::get(&mut c, MINER, n).unwrap().unwrap();
    assert!(row.aborted_from.is_none(), "{row:?}");
    assert!(row
        .abort_reason
        .unwrap()
        .contains("its deals went back to the market"));
    assert!(market::of_sector(&mut c, MINER, n).unwrap().is_empty());
    assert!(!restore(&mut c, MINER, n, t(3)).unwrap());
}
