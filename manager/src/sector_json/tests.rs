//! Records as damocles-manager v0.13 writes them (`tests/golden/sector_state.json`, written from
//! its Go structs) are read and checked; ours are written in the same shape and read back.

use serde_json::Value;

use super::*;

fn golden(case: &str) -> Value {
    let doc: Value = serde_json::from_str(include_str!("../../../tests/golden/sector_state.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    doc[case].clone()
}

fn parse(case: &str) -> SectorState {
    serde_json::from_value(golden(case)).unwrap_or_else(|e| panic!("{case}: {e}"))
}

#[test]
fn a_damocles_deal_sector_imports_with_its_deal_and_the_store_given() {
    let st = parse("deal_sector");
    let missing = check(&st, 10000, 5, None).unwrap_err();
    assert!(missing.contains("--store"), "{missing}");
    let imp = check(&st, 10000, 5, Some("store-a")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((imp.miner, imp.number), (10000, 12));
    assert_eq!(imp.persist_store, "store-a");
    assert_eq!(
        imp.comm_r,
        hex::encode(&std::array::from_fn::<u8, 32, _>(|i| i as u8 + 1))
    );
    assert_eq!(imp.proof.len(), 256, "192 bytes in base64");
    assert_eq!(imp.pieces.len(), 1);
    let p = &imp.pieces[0];
    assert_eq!((p.deal_id, p.piece_size, p.payload_size), (7, 2048, 1500));
    assert_eq!(p.client, "t01001");
    assert_eq!(imp.last_location.as_deref(), Some("/mnt/nvme1/store3"));
    assert!(imp.update.is_none());
}

#[test]
fn a_damocles_snapped_sector_imports_with_its_update() {
    let imp = check(&parse("snapped_sector"), 10000, 5, Some("store-a"))
        .unwrap_or_else(|e| panic!("{e}"));
    let u = imp.update.unwrap_or_else(|| panic!("an update"));
    assert_eq!(u.store, "store-b");
    assert_eq!(u.comm_r, "33".repeat(31) + "05");
    assert!(imp.pieces.is_empty());
}

#[test]
fn what_this_chain_cannot_take_is_refused_with_the_reason() {
    let online = check(&parse("online_sector"), 10000, 5, Some("s")).unwrap_err();
    assert!(
        online.contains("not finalized") && online.contains("PreCommitLanded"),
        "{online}"
    );
    let other = check(&parse("deal_sector"), 20000, 5, Some("s")).unwrap_err();
    assert!(other.contains("serves t020000 only"), "{other}");
    // 8 is a 32GiB proof: another sector size than this 2KiB chain's.
    let size = check(&parse("deal_sector"), 10000, 8, Some("s")).unwrap_err();
    assert!(size.contains("this chain seals"), "{size}");
    let mut aborted = parse("deal_sector");
    aborted.abort_reason = "operator".into();
    let a = check(&aborted, 10000, 5, Some("s")).unwrap_err();
    assert!(a.contains("aborted"), "{a}");
    let mut bad = golden("deal_sector");
    bad["Pre"]["CommR"]["/"] =
        "baga6ea4seaqbceirceirceirceirceirceirceirceirceirceirceirceircdy".into();
    let bad: SectorState = serde_json::from_value(bad).unwrap_or_else(|e| panic!("{e}"));
    let e = check(&bad, 10000, 5, Some("s")).unwrap_err();
    assert!(
        e.contains("Pre.CommR") && e.contains("not a sealed CID"),
        "{e}"
    );
}

/// The keys of an object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[test]
fn our_records_have_damocles_keys_and_read_back_the_same() {
    let st = parse("snapped_sector");
    let imp = check(&st, 10000, 5, Some("store-a")).unwrap_or_else(|e| panic!("{e}"));
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default();
    let u = imp.update.clone().unwrap_or_else(|| panic!("an update"));
    let row = SectorRow {
        miner_id: 10000,
        sector_number: 13,
        proof_type: 5,
        state: "Finished".into(),
        worker_name: Some("w1".into()),
        location: Some("/l".into()),
        ticket: Some(imp.ticket.clone()),
        seed: imp.seed.clone(),
        comm_r: Some(imp.comm_r.clone()),
        comm_d: Some(imp.comm_d.clone()),
        precommit_state: Some("Landed".into()),
        persist_store: Some("store-a".into()),
        proof: Some(imp.proof.clone()),
        proof_state: Some("Landed".into()),
        abort_reason: None,
        created_at: at,
        updated_at: at,
        deadline_idx: Some(1),
        partition_idx: Some(0),
        proven_at: Some(at),
        owner: Some("w1".into()),
        snap_state: Some(crate::db::snap::DONE.into()),
        snap_owner: Some("w1".into()),
        update_comm_r: Some(u.comm_r.clone()),
        update_comm_d: Some(u.comm_d.clone()),
        update_store: Some(u.store.clone()),
        update_proof: Some(u.proof.clone()),
        upgraded_at: Some(at),
        faulty_at: None,
        fault_reason: None,
        imported_at: Some(at),
        aborted_from: None,
    };
    let ours = serde_json::to_value(export(&row, &[])).unwrap_or_else(|e| panic!("{e}"));
    // Every key damocles writes, plus ours.
    let mut want = keys(&golden("snapped_sector"));
    want.push("DamoclesRs".into());
    want.sort();
    assert_eq!(keys(&ours), want);
    for nested in [
        "Pre",
        "Ticket",
        "MessageInfo",
        "TerminateInfo",
        "LatestState",
        "UpgradedInfo",
        "UpgradePublic",
    ] {
        assert_eq!(
            keys(&ours[nested]),
            keys(&golden("snapped_sector")[nested]),
            "{nested}"
        );
    }
    // Read back: the same sector, store from the record itself.
    let back: SectorState = serde_json::from_value(ours).unwrap_or_else(|e| panic!("{e}"));
    let again = check(&back, 10000, 5, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        serde_json::to_value(&again).ok(),
        serde_json::to_value(Import {
            last_worker: Some("w1".into()),
            last_location: Some("/l".into()),
            ..imp
        })
        .ok()
    );
}
