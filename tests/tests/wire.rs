//! The wire contract against damocles' real shapes, not our own: our worker seals and proves
//! through a strict go-jsonrpc-like front that knows damocles' parameter counts; a client that
//! speaks exactly as a stock damocles-worker (golden shapes, 3-parameter WdPoStFinishJob, no
//! Deals) carries a sector to Finished on our manager, with a token and without one; and the
//! golden requests of both APIs are accepted by our running manager and worker.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use damocles_actors::wire::auth::{unix_now, ControlKey};
use damocles_actors::wire::venus::prover_id;
use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One deadline, opening every 15 s: a proven sector gets a WindowPoSt job soon.
const CLOCK: &str = "[mock]\ndeadline_interval = \"15s\"\ndeadlines = 1\n";

fn golden(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(file);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["calls"].as_array().cloned().unwrap()
}

fn peer_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn our_worker_seals_and_proves_through_a_strict_damocles_front() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, None, free_port(), CLOCK);
    let (peer_port, log) = (free_port(), d.join("calls.jsonl"));
    let _peer = strict_peer(d, peer_port, &m.url("/rpc/v0"), &log);

    // The front is strict: our old extra parameters would be refused, as go-jsonrpc does.
    let resp: Value = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{peer_port}/rpc/v0"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "Venus.WdPoStFinishJob", "params": ["j", null, "", "me"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp["error"]["code"], -32602, "{resp}");

    // One sealer thread (taking deals, so AcquireDeals goes through the front too) and one
    // WindowPoSt slot, talking to the manager only through the front.
    let port = free_port();
    let cfg = worker_config(d, "w", &m, port, 1, "sealing.enable_deals = true");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("/ip4/127.0.0.1/tcp/{}", m.port),
        &format!("/ip4/127.0.0.1/tcp/{peer_port}"),
    );
    std::fs::write(
        &cfg,
        format!("{text}\n[[sealing_thread]]\nplan = \"wdpost\"\n"),
    )
    .unwrap();
    let w = Worker::start_config(d, "w", cfg, port);

    wait_for(Duration::from_secs(900), "a sector proven", || {
        m.sectors()
            .into_iter()
            .find(|s| s["state"] == "Finished" && s["proof_state"] == "Landed")
    });
    assert!(w.cli(&["pause", "--index", "0"]).status.success());
    let job = wait_for(Duration::from_secs(300), "a WindowPoSt job proven", || {
        let (_, jobs) = m.rest(Method::GET, "/wdpost/jobs?all=true", None);
        jobs.as_array()?
            .iter()
            .find(|j| j["state"] == "Succeed")
            .cloned()
    });
    assert_eq!(job["worker_name"], "w", "{job}");

    let calls = peer_log(&log);
    let refused: Vec<&Value> = calls
        .iter()
        .filter(|c| c["verdict"] != "forwarded" && c["count"] != 4)
        .collect();
    assert!(
        refused.is_empty(),
        "refused by the strict front: {refused:?}"
    );
    let used: BTreeSet<&str> = calls.iter().filter_map(|c| c["method"].as_str()).collect();
    for method in [
        "Venus.StoreBasicInfo",
        "Venus.WorkerPing",
        "Venus.AllocateSector",
        "Venus.AcquireDeals",
        "Venus.AssignTicket",
        "Venus.SubmitPreCommit",
        "Venus.PollPreCommitState",
        "Venus.StoreReserveSpace",
        "Venus.SubmitPersistedEx",
        "Venus.WaitSeed",
        "Venus.SubmitProof",
        "Venus.PollProofState",
        "Venus.ReportState",
        "Venus.ReportFinalized",
        "Venus.WdPoStAllocateJobs",
        // (WdPoStHeartbeatJobs comes every 3 s while a job is held: a 2KiB proof may be done
        // sooner. Its count is checked by the golden tests.)
        "Venus.WdPoStFinishJob",
    ] {
        assert!(used.contains(method), "{method} not used: {used:?}");
    }
}

/// A damocles-manager with a market hands out deals (the strict peer answers every
/// AcquireDeals with one, in damocles' full shape). Our worker with `enable_deals` decodes it,
/// takes the deal and fetches its piece from the manager's piece store; it never seals the
/// sector without the deal's bytes. Here the front has no piece store, so the thread stops
/// before sealing, saying which piece it could not fetch.
#[test]
fn a_deal_whose_piece_cannot_be_fetched_is_never_sealed_as_cc() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start(d, None);
    let (peer_port, log) = (free_port(), d.join("calls.jsonl"));
    let _peer = strict_peer_with(d, peer_port, &m.url("/rpc/v0"), &log, &["deals"]);
    let port = free_port();
    let cfg = worker_config(d, "w", &m, port, 1, "sealing.enable_deals = true");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("/ip4/127.0.0.1/tcp/{}", m.port),
        &format!("/ip4/127.0.0.1/tcp/{peer_port}"),
    );
    std::fs::write(&cfg, text).unwrap();
    let w = Worker::start_config(d, "w", cfg, port);
    let stopped = wait_for(
        Duration::from_secs(60),
        "the thread stopped on the piece",
        || {
            w.list().into_iter().find(|t| {
                t["thread_state"]["state"] == "Paused"
                    && t["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("fetch piece"))
            })
        },
    );
    let err = stopped["last_error"].as_str().unwrap();
    assert!(
        err.contains("baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq"),
        "{err}"
    );
    assert_eq!(stopped["job_state"], "DealsAcquired", "{stopped}");
    // Nothing was sealed.
    assert!(m.sectors().iter().all(|s| s["ticket"].is_null()));
    let calls = peer_log(&log);
    assert!(
        calls.iter().any(|c| c["method"] == "Venus.AcquireDeals"
            && c["verdict"] == "forwarded, answered with a deal"),
        "{calls:?}"
    );
}

/// Plays a stock damocles-worker named `name` on manager `m` with `token` (or none): every call
/// in damocles' shapes, proofs computed for real by processor children. Returns the sector.
fn damocles_worker_flow(m: &Manager, dir: &Path, name: &str, token: Option<&str>) -> Value {
    let call = |method: &str, params: Value| -> Value {
        m.rpc_with(token, method, params)
            .unwrap_or_else(|e| panic!("{name}: {method}: {e}"))
    };
    let p = |f: &str| dir.join(f).display().to_string();
    std::fs::create_dir_all(dir.join("cache")).unwrap();

    assert!(!call("Venus.StoreBasicInfo", json!(["remote"])).is_null());
    let summary =
        json!({"Threads": 1, "Empty": 0, "Paused": 0, "Running": 0, "Waiting": 0, "Errors": 0});
    call(
        "Venus.WorkerPing",
        json!([{"Name": name, "Dest": "127.0.0.1:17890", "Version": "v0.13.1-4235a895", "Summary": summary}]),
    );
    let sector = call(
        "Venus.AllocateSector",
        json!([{"AllowedMiners": null, "AllowedProofTypes": null}]),
    );
    let sid = sector["ID"].clone();
    let number = sid["Number"].as_u64().unwrap();
    let report = |prev: &str, next: &str| {
        let req = json!({"Worker": {"Instance": name, "Location": p("")}, "StateChange": {"Prev": prev, "Next": next, "Event": "None"}, "Failure": null});
        call("Venus.ReportState", json!([sid, req]));
    };
    report("Empty", "Allocated");
    assert!(call(
        "Venus.AcquireDeals",
        json!([sid, {"MaxDeals": null, "MinUsedSpace": null}])
    )
    .is_null());

    let pieces = ProcessorChild::once(
        "add_pieces",
        json!({"seal_proof": 5, "staged_file": p("staged")}),
    )["pieces"]
        .clone();
    let ticket = call("Venus.AssignTicket", json!([sid]));
    let ticket_bytes = B64.decode(ticket["Ticket"].as_str().unwrap()).unwrap();
    let pc1 = ProcessorChild::once(
        "pc1",
        json!({"seal_proof": 5, "cache_dir": p("cache"), "staged_file": p("staged"), "sealed_file": p("sealed"),
            "prover_id": prover_id(10000), "sector_number": number, "ticket": ticket_bytes, "pieces": pieces}),
    );
    let pc2 = ProcessorChild::once(
        "pc2",
        json!({"seal_proof": 5, "pc1_out": pc1, "staged_file": p("staged"), "cache_dir": p("cache"), "sealed_file": p("sealed")}),
    );
    report("TicketAssigned", "PC2Done");
    // No Deals field: damocles' PreCommitOnChainInfo has none.
    let info = json!({"CommR": pc2["comm_r"], "CommD": pc2["comm_d"], "Ticket": ticket});
    let r = call("Venus.SubmitPreCommit", json!([sector, info, false]));
    assert_eq!(r["Res"], 1, "{r}");
    assert_eq!(call("Venus.PollPreCommitState", json!([sid]))["State"], 3);
    let store = call("Venus.StoreReserveSpace", json!([sid, 4096, ["remote"]]));
    assert_eq!(store["Name"], "remote", "{store}");
    assert_eq!(
        call("Venus.SubmitPersistedEx", json!([sid, "remote", false])),
        true
    );
    let seed = call("Venus.WaitSeed", json!([sid, 5]));
    assert_eq!(seed["ShouldWait"], false, "{seed}");
    let seed_bytes = B64.decode(seed["Seed"]["Seed"].as_str().unwrap()).unwrap();
    let c1 = ProcessorChild::once(
        "c1",
        json!({"seal_proof": 5, "cache_dir": p("cache"), "sealed_file": p("sealed"), "prover_id": prover_id(10000),
            "sector_number": number, "ticket": ticket_bytes, "seed": seed_bytes, "pieces": pieces,
            "comm_r": pc2["comm_r"], "comm_d": pc2["comm_d"]}),
    );
    let c2 = ProcessorChild::once(
        "c2",
        json!({"seal_proof": 5, "c1_out": c1, "prover_id": prover_id(10000), "sector_number": number}),
    );
    let r = call(
        "Venus.SubmitProof",
        json!([sid, {"Proof": c2["proof"]}, false]),
    );
    assert_eq!(r["Res"], 1, "the manager verified the proof: {r}");
    assert_eq!(call("Venus.PollProofState", json!([sid]))["State"], 3);
    report("ProofSubmitted", "Finished");
    assert!(call("Venus.ReportFinalized", json!([sid])).is_null());
    m.sectors()
        .into_iter()
        .find(|s| s["sector_number"] == number)
        .unwrap()
}

#[test]
fn a_damocles_shaped_worker_reaches_finished_with_a_token_and_without() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, None, free_port(), "[auth]\nworkers = \"optional\"\n");
    let token = m.worker_token("damocles-a");
    let (with, without) = std::thread::scope(|s| {
        let a = s.spawn(|| damocles_worker_flow(&m, &d.join("a"), "damocles-a", Some(&token)));
        let b = s.spawn(|| damocles_worker_flow(&m, &d.join("b"), "damocles-b", None));
        (a.join().unwrap(), b.join().unwrap())
    });
    for (s, owner) in [(&with, json!("damocles-a")), (&without, Value::Null)] {
        assert_eq!(
            (&s["state"], &s["proof_state"], &s["owner"]),
            (&json!("Finished"), &json!("Landed"), &owner),
            "{s}"
        );
    }
    // Without a token, a caller cannot speak for the worker that has one, nor touch its sector.
    let summary = json!({"Threads": 0, "Empty": 0, "Paused": 0, "Errors": 0});
    let e = m
        .rpc(
            "Venus.WorkerPing",
            json!([{"Name": "damocles-a", "Dest": "10.9.9.9:1", "Summary": summary}]),
        )
        .unwrap_err();
    assert_eq!(e["code"], 11005, "{e}");
    let sid = json!({"Miner": 10000, "Number": with["sector_number"]});
    let e = m
        .rpc("Venus.ReportAborted", json!([sid, "mine now"]))
        .unwrap_err();
    assert_eq!(e["code"], 11002, "{e}");
    let after = m
        .sectors()
        .into_iter()
        .find(|s| s["sector_number"] == with["sector_number"])
        .unwrap();
    assert_eq!(after["state"], "Finished", "untouched: {after}");
    assert!(m
        .proc
        .log_text()
        .contains("a worker without a token is calling"));
    // A worker that started without a token and is given one goes on with its sectors (an
    // upgrade loses no work); other workers still may not touch them.
    let sid_b = json!({"Miner": 10000, "Number": without["sector_number"]});
    assert!(m
        .rpc_as("damocles-b", "Venus.AssignTicket", json!([sid_b]))
        .is_ok());
    let e = m
        .rpc_as("intruder", "Venus.AssignTicket", json!([sid_b]))
        .unwrap_err();
    assert_eq!(e["code"], 11002, "{e}");
}

/// `StoreReserveSpace` picks a writable candidate with room (by weight, then free space), keeps
/// the room until the sector is persisted, and answers null when no candidate has room.
#[test]
fn persist_space_is_reserved_by_weight_and_room_until_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for s in ["small", "big", "ro"] {
        std::fs::create_dir_all(d.join(s)).unwrap();
    }
    let stores = format!(
        "[[persist_store]]\nname = \"small\"\npath = \"{0}/small\"\nweight = 5\n\n\
         [[persist_store]]\nname = \"big\"\npath = \"{0}/big\"\n\n\
         [[persist_store]]\nname = \"ro\"\npath = \"{0}/ro\"\nweight = 9\nread_only = true\n\n\
         [[persist_store]]\nname = \"elsewhere\"\npath = \"/not/mounted/here\"\n",
        d.display()
    );
    let m = Manager::start_with(d, None, free_port(), &stores);
    let st = nix::sys::statvfs::statvfs(d).unwrap();
    let free = st.blocks_available() * st.fragment_size();
    let sector = || {
        let s = m
            .rpc_as("tester", "Venus.AllocateSector", json!([{}]))
            .unwrap();
        s["ID"].clone()
    };
    let reserve = |sid: &Value, size: u64, names: &[&str]| {
        m.rpc_as(
            "tester",
            "Venus.StoreReserveSpace",
            json!([sid, size, names]),
        )
        .unwrap()
    };
    let (a, b) = (sector(), sector());
    let all = ["small", "big", "ro"];
    assert_eq!(
        reserve(&a, 1, &all)["Name"],
        "small",
        "the highest writable weight"
    );
    assert_eq!(
        reserve(&a, free / 2, &all)["Name"],
        "small",
        "again, for the same sector"
    );
    // Half of "small" is kept for `a`: three quarters more do not fit there ("big", on the same
    // disk here, is a store of its own, with nothing reserved).
    assert!(reserve(&b, free / 4 * 3, &["small"]).is_null());
    assert!(reserve(&b, 1, &["ro"]).is_null(), "never a read-only store");
    assert!(reserve(&b, 1 << 60, &all).is_null(), "no room anywhere");
    assert_eq!(
        reserve(&b, 1 << 60, &["elsewhere", "unknown"])["Name"],
        "elsewhere",
        "a store not mounted here cannot be measured, and is taken at its word"
    );
    // Persisting `a` gives its room back.
    assert_eq!(
        m.rpc_as(
            "tester",
            "Venus.SubmitPersistedEx",
            json!([a, "small", false])
        )
        .unwrap(),
        true
    );
    assert_eq!(reserve(&b, free / 4 * 3, &["small"])["Name"], "small");
}

/// Whether an error says the request's shape was wrong (method, parameter count, fields).
fn shape_error(e: &Value) -> bool {
    let msg = e["message"].as_str().unwrap_or_default();
    match e["code"].as_i64() {
        Some(-32601 | -32700) => true,
        Some(-32602) => ["wrong param count", "bad parameters", "positional array"]
            .iter()
            .any(|s| msg.contains(s)),
        _ => false,
    }
}

/// The golden requests of damocles' structs are understood by our running manager: none is
/// refused for its shape (parameter count, field names or types).
#[test]
fn the_manager_accepts_every_golden_request() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    for call in golden("venus.json") {
        let method = call["method"].as_str().unwrap();
        if let Err(e) = m.rpc_as("10.0.0.5", method, call["params"].clone()) {
            assert!(!shape_error(&e), "{method}: {e}");
        }
    }
    // And a wrong count is refused as go-jsonrpc refuses it.
    let e = m
        .rpc_as(
            "10.0.0.5",
            "Venus.WaitSeed",
            json!([{"Miner": 10000, "Number": 1}]),
        )
        .unwrap_err();
    assert!(shape_error(&e), "{e}");
}

/// The golden requests of a damocles-manager are understood by our running worker (signed with
/// the key its manager derives from the worker's token), and its answers have damocles' shapes.
#[test]
fn the_worker_answers_every_golden_request_in_damocles_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let w = Worker::start(dir.path(), "w", &m, 2, "sealing.allowed_miners = [1]");
    let key = ControlKey::from_token(&m.worker_token("w"));
    let url = format!("http://127.0.0.1:{}/", w.port);
    let http = reqwest::blocking::Client::new();
    for call in golden("venus_worker.json") {
        let method = call["method"].as_str().unwrap();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": call["params"]})
            .to_string();
        let resp: Value = http
            .post(&url)
            .header(
                "Authorization",
                key.sign(unix_now(), false, body.as_bytes()),
            )
            .body(body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(!shape_error(&resp["error"]), "{method}: {resp}");
        match method {
            "VenusWorker.WorkerList" => {
                let threads = resp["result"].as_array().unwrap();
                let keys: BTreeSet<&String> = threads[0].as_object().unwrap().keys().collect();
                let want: BTreeSet<&String> =
                    call["result"][0].as_object().unwrap().keys().collect();
                assert_eq!(keys, want, "{resp}");
            }
            "VenusWorker.WorkerVersion" => assert!(resp["result"].is_string(), "{resp}"),
            "VenusWorker.WorkerPause" => assert_eq!(resp["result"], true, "{resp}"),
            "VenusWorker.WorkerSetEnv" | "VenusWorker.WorkerRemoveEnv" => {
                assert!(resp["error"].is_null(), "{method}: {resp}")
            }
            _ => {}
        }
    }
}
