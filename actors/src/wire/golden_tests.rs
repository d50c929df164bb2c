//! Golden wire tests: the requests and answers damocles' own structs produce
//! (`tests/golden/*.json`, written from the damocles v0.13.1 source) must decode into our method
//! table's types with damocles' exact arity, and encode back to the very same JSON. A method of
//! ours without a golden call, or a golden call without a method, fails.

use std::collections::BTreeSet;

use serde_json::Value;

use super::method::{decode_params, raw, Method};
use super::{venus_methods as v, worker_methods as w};

fn golden(file: &str) -> Vec<Value> {
    let path = format!("{}/../tests/golden/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    doc["calls"].as_array().cloned().unwrap_or_default()
}

/// `M`'s golden call decodes into its types and encodes back unchanged, both ways.
fn check<M: Method>(calls: &[Value]) {
    let call = calls
        .iter()
        .find(|c| c["method"] == M::NAME)
        .unwrap_or_else(|| panic!("no golden call for {}", M::NAME));
    let params = call["params"].clone();
    assert_eq!(
        params.as_array().map(Vec::len),
        Some(M::PARAMS.len()),
        "{}: damocles' arity",
        M::NAME
    );
    let decoded =
        decode_params::<M>(Some(&raw(&params))).unwrap_or_else(|e| panic!("{}: {e}", M::NAME));
    let again = serde_json::to_value(&decoded).unwrap_or_default();
    assert_eq!(again, params, "{}: parameters round trip", M::NAME);
    let out: M::Output = serde_json::from_value(call["result"].clone())
        .unwrap_or_else(|e| panic!("{}: result: {e}", M::NAME));
    let again = serde_json::to_value(&out).unwrap_or_default();
    assert_eq!(again, call["result"], "{}: result round trip", M::NAME);
}

fn names(calls: &[Value]) -> BTreeSet<String> {
    calls
        .iter()
        .filter_map(|c| c["method"].as_str().map(String::from))
        .collect()
}

#[test]
fn every_venus_method_matches_damocles() {
    let calls = golden("venus.json");
    check::<v::WorkerPing>(&calls);
    check::<v::AllocateSector>(&calls);
    check::<v::AcquireDeals>(&calls);
    check::<v::AssignTicket>(&calls);
    check::<v::SubmitPreCommit>(&calls);
    check::<v::PollPreCommitState>(&calls);
    check::<v::SubmitPersisted>(&calls);
    check::<v::SubmitPersistedEx>(&calls);
    check::<v::WaitSeed>(&calls);
    check::<v::SubmitProof>(&calls);
    check::<v::PollProofState>(&calls);
    check::<v::ReportState>(&calls);
    check::<v::ReportFinalized>(&calls);
    check::<v::ReportAborted>(&calls);
    check::<v::AllocateSnapUpSector>(&calls);
    check::<v::SubmitSnapUpProof>(&calls);
    check::<v::AllocateRebuildSector>(&calls);
    check::<v::StoreReserveSpace>(&calls);
    check::<v::StoreBasicInfo>(&calls);
    check::<v::AllocateUnsealSector>(&calls);
    check::<v::AchieveUnsealSector>(&calls);
    check::<v::AcquireUnsealDest>(&calls);
    check::<v::WdPoStAllocateJobs>(&calls);
    check::<v::WdPoStHeartbeatJobs>(&calls);
    check::<v::WdPoStFinishJob>(&calls);
    let ours: BTreeSet<String> = v::ALL.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(ours, names(&calls), "the table and damocles' methods");
}

#[test]
fn every_venus_worker_method_matches_damocles() {
    let calls = golden("venus_worker.json");
    check::<w::WorkerList>(&calls);
    check::<w::WorkerPause>(&calls);
    check::<w::WorkerResume>(&calls);
    check::<w::WorkerSetEnv>(&calls);
    check::<w::WorkerRemoveEnv>(&calls);
    check::<w::WorkerVersion>(&calls);
    let ours: BTreeSet<String> = w::ALL
        .iter()
        .map(|(n, _)| n.to_string())
        .filter(|n| !w::EXTENSIONS.contains(&n.as_str()))
        .collect();
    assert_eq!(ours, names(&calls), "the table and damocles' methods");
}

#[test]
fn a_wrong_arity_is_refused_for_every_method() {
    for call in golden("venus.json")
        .iter()
        .chain(golden("venus_worker.json").iter())
    {
        let mut params = call["params"].as_array().cloned().unwrap_or_default();
        params.push(Value::Null);
        let name = call["method"].as_str().unwrap_or_default();
        let arity = v::ALL
            .iter()
            .chain(w::ALL.iter())
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a);
        assert_eq!(arity, Some(params.len() - 1), "{name}");
    }
    let e =
        decode_params::<v::WaitSeed>(Some(&raw(&serde_json::json!([{"Miner": 1, "Number": 2}]))));
    assert!(e.is_err_and(|e| e.message.contains("1 != 2")));
}

#[test]
fn go_nil_slices_read_as_empty() {
    // A Go peer writes a nil slice as null.
    let p = serde_json::json!(["j", {"proofs": null, "faults": null}, ""]);
    let (_, out, _) =
        decode_params::<v::WdPoStFinishJob>(Some(&raw(&p))).unwrap_or_else(|e| panic!("{e}"));
    let out = out.unwrap_or_else(|| panic!("output"));
    assert!(out.proofs.is_empty() && out.faults.is_empty());
}
