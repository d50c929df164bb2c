//! Deals and snap-up through the whole cluster: deals imported into the mock market, sealed
//! into a sector whose CommD the manager checks against the deals' pieces, a CC sector snapped
//! up with another deal (the update proof verified for real) and then proven by WindowPoSt over
//! its updated replica. And every refusal: a wrong CommD, a piece whose bytes do not make its
//! CID, a deal another sector holds, a snap-up of a sector that is not a proven CC sector, a
//! forged update proof, each with its reason and nothing else changed. The snapped deal is then
//! unsealed from the updated replica, byte for byte.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use damocles_actors::wire::commcid;
use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

fn cli_ok(m: &Manager, args: &[&str]) -> String {
    let out = m.cli(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Imports `bytes` as a deal through the CLI, as an operator would; its row.
fn import(m: &Manager, dir: &Path, name: &str, bytes: &[u8]) -> Value {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = cli_ok(
        m,
        &[
            "util", "mock", "deals", "import", "--miner", "10000", "--json",
        ]
        .into_iter()
        .chain([file.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    serde_json::from_str(&out).unwrap()
}

fn deals(m: &Manager) -> Vec<Value> {
    let (status, body) = m.rest(Method::GET, "/mock/deals", None);
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap()
}

fn deal_states(m: &Manager) -> Vec<(i64, String, Option<i64>)> {
    deals(m)
        .iter()
        .map(|d| {
            (
                d["deal_id"].as_i64().unwrap(),
                d["state"].as_str().unwrap().to_string(),
                d["sector_number"].as_i64(),
            )
        })
        .collect()
}

fn sector(m: &Manager, number: u64) -> Value {
    let (status, body) = m.rest(Method::GET, &format!("/sectors/10000/{number}"), None);
    assert_eq!(status, 200, "{body}");
    body
}

fn sid(number: u64) -> Value {
    json!({"Miner": 10000, "Number": number})
}

/// A submit's answer: (result code, description).
fn submitted(r: Result<Value, Value>) -> (u64, String) {
    let r = r.unwrap();
    (
        r["Res"].as_u64().unwrap(),
        r["Desc"].as_str().unwrap_or("").to_string(),
    )
}

fn allocate(m: &Manager, worker: &str) -> u64 {
    let spec = json!({"AllowedMiners": null, "AllowedProofTypes": null});
    let a = m
        .rpc_as(worker, "Venus.AllocateSector", json!([spec]))
        .unwrap();
    a["ID"]["Number"].as_u64().unwrap()
}

/// The data commitment of a 2KiB sector holding these pieces (the same function the manager
/// and the worker's add_pieces agree on).
fn comm_d_of(pieces: &[(&str, u64)]) -> [u8; 32] {
    let pieces: Vec<([u8; 32], u64)> = pieces
        .iter()
        .map(|(cid, size)| (commcid::piece_comm(cid).unwrap(), *size))
        .collect();
    damocles_proof_types::sector_comm_d(5, &pieces).unwrap()
}

/// Replaces a piece's bytes in the manager's piece store (a corrupted store).
fn corrupt_piece(m: &Manager, cid: &str) {
    let sql = format!("UPDATE pieces SET payload = X'ffff' WHERE piece_cid = '{cid}'");
    if let Some(url) = &m.db_url {
        mysql_exec(url, &sql);
        return;
    }
    let db = m.home.join("damocles.sqlite");
    let script = format!(
        "import sqlite3; c = sqlite3.connect('{}'); c.execute(\"{sql}\"); c.commit()",
        db.display()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_market_refuses_what_it_must_on_sqlite() {
    the_market_refuses_what_it_must_and_changes_nothing(None);
}

#[test]
fn the_market_refuses_what_it_must_on_mysql() {
    if let Some(url) = mysql_database("market") {
        the_market_refuses_what_it_must_and_changes_nothing(Some(url));
    }
}

fn the_market_refuses_what_it_must_and_changes_nothing(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start(d, db);

    // Imports: a deal waits for a sector; data that does not fit a deal is refused.
    let d1 = import(&m, d, "one.bin", &[7u8; 300]);
    assert_eq!(
        (d1["deal_id"].as_i64(), d1["piece_size"].as_i64()),
        (Some(1), Some(512))
    );
    let cid1 = d1["piece_cid"].as_str().unwrap().to_string();
    assert!(cid1.starts_with("baga6ea4seaq"), "{d1}");
    let d2 = import(&m, d, "two.bin", b"a second deal");
    let cid2 = d2["piece_cid"].as_str().unwrap().to_string();
    for (name, bytes, why) in [
        ("empty.bin", vec![], "1 to 2032 bytes"),
        ("big.bin", vec![1u8; 3000], "does not fit"),
    ] {
        std::fs::write(d.join(name), &bytes).unwrap();
        let out = m.cli(&[
            "util",
            "mock",
            "deals",
            "import",
            d.join(name).to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(why), "{name}: {}", stderr(&out));
    }
    let out = m.cli(&[
        "util",
        "mock",
        "deals",
        "import",
        "--miner",
        "7",
        d.join("one.bin").to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("not the mock chain's miner"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        deal_states(&m),
        [(1, "Waiting".into(), None), (2, "Waiting".into(), None)]
    );
    let table = cli_ok(&m, &["util", "mock", "deals", "list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&cid1) && table.contains("Waiting"),
        "{table}"
    );

    // The piece store serves pieces to workers with a token, and to nobody else.
    let piece = |token: Option<String>, cid: &str| {
        let mut req = reqwest::blocking::Client::new().get(m.url(&format!("/piecestore/{cid}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.bytes().unwrap().to_vec())
    };
    let w1 = m.worker_token("w1");
    assert_eq!(piece(Some(w1.clone()), &cid1), (200, vec![7u8; 300]));
    assert_eq!(piece(None, &cid1).0, 401);
    assert_eq!(piece(Some("not-a-token".into()), &cid1).0, 401);
    let unknown = commcid::piece_cid(&[9u8; 32]);
    assert_eq!(piece(Some(w1.clone()), &unknown).0, 404);
    assert_eq!(piece(Some(w1), "../../etc/passwd").0, 404);
    assert_eq!(piece(Some(m.worker_token("w1")), "bafy-not-a-piece").0, 400);

    // A deal goes to one sector: a retry gets it again, no other sector gets it.
    let a = allocate(&m, "w1");
    let b = allocate(&m, "w2");
    let c = allocate(&m, "w2");
    let one = json!({"MaxDeals": 1, "MinUsedSpace": null});
    let got = m
        .rpc_as("w1", "Venus.AcquireDeals", json!([sid(a), one]))
        .unwrap();
    assert_eq!(got.as_array().map(Vec::len), Some(1), "{got}");
    assert_eq!(got[0]["Piece"]["PieceCID"]["/"], cid1.as_str());
    assert_eq!(got[0]["DealInfo"]["DealID"], 1);
    assert_eq!(got[0]["DealInfo"]["PayloadSize"], 300);
    let again = m
        .rpc_as("w1", "Venus.AcquireDeals", json!([sid(a), one]))
        .unwrap();
    assert_eq!(again, got);
    let none = json!({"MaxDeals": null, "MinUsedSpace": null});
    let other = m
        .rpc_as("w2", "Venus.AcquireDeals", json!([sid(b), none]))
        .unwrap();
    assert_eq!(
        other[0]["DealInfo"]["DealID"], 2,
        "deal 1 is sector {a}'s: {other}"
    );
    let empty = m
        .rpc_as("w2", "Venus.AcquireDeals", json!([sid(c), none]))
        .unwrap();
    assert_eq!(empty, Value::Null, "no deal left for a third sector");
    // Another worker's sector is not the caller's to ask deals for.
    let err = m
        .rpc_as("w2", "Venus.AcquireDeals", json!([sid(a), none]))
        .unwrap_err();
    assert_eq!(err["code"], 11002, "{err}");

    // A pre-commit whose CommD is not the one its deals make is refused, and nothing changes.
    let ticket = json!({"Ticket": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "Epoch": 0});
    let precommit = |number: u64, comm_d: [u8; 32]| {
        json!([
            {"ID": sid(number), "ProofType": 5},
            {"CommR": ([3u8; 32]), "CommD": comm_d, "Ticket": ticket},
            false
        ])
    };
    let before = sector(&m, a);
    let (res, desc) = submitted(m.rpc_as("w1", "Venus.SubmitPreCommit", precommit(a, [0; 32])));
    assert_eq!(res, 4, "{desc}");
    assert!(
        desc.contains("is not the data commitment") && desc.contains("deals 1"),
        "{desc}"
    );
    assert!(
        desc.contains(&commcid::piece_cid(&comm_d_of(&[(&cid1, 512)]))),
        "{desc}"
    );
    assert_eq!(sector(&m, a), before);
    // The CommD its deal makes is taken.
    let right = comm_d_of(&[(&cid1, 512)]);
    let (res, desc) = submitted(m.rpc_as("w1", "Venus.SubmitPreCommit", precommit(a, right)));
    assert_eq!(res, 1, "{desc}");
    // A CC sector must have the empty sector's CommD.
    let (res, desc) = submitted(m.rpc_as("w2", "Venus.SubmitPreCommit", precommit(c, right)));
    assert_eq!(res, 4, "{desc}");
    assert!(desc.contains("no deals (a CC sector)"), "{desc}");

    // A snap-up of a sector that is not a proven CC sector is refused.
    let info = json!({"CommR": ([5u8; 32]), "CommD": right, "AccessInstance": "remote",
        "Pieces": [{"/": cid1}], "Proof": "AAAA"});
    let before = sector(&m, a);
    let (res, desc) = submitted(m.rpc_as("w1", "Venus.SubmitSnapUpProof", json!([sid(a), info])));
    assert_eq!(res, 4, "{desc}");
    assert!(
        desc.contains("not allocated for snap-up") && desc.contains("not a proven CC sector"),
        "{desc}"
    );
    assert_eq!(sector(&m, a), before);
    let spec = json!({"Sector": {"AllowedMiners": null, "AllowedProofTypes": null},
        "Deals": {"MaxDeals": null, "MinUsedSpace": null}});
    assert_eq!(
        m.rpc_as("w1", "Venus.AllocateSanpUpSector", json!([spec]))
            .unwrap(),
        Value::Null
    );
    let fetched = cli_ok(&m, &["util", "sealer", "snap", "fetch", "10000", "0"]);
    assert!(
        fetched.contains("available-in-deadline=0 added=0"),
        "{fetched}"
    );
    let out = m.cli(&["util", "sealer", "snap", "fetch", "10000", "4000"]);
    assert!(
        stderr(&out).contains("deadlines are 0 to 47"),
        "{}",
        stderr(&out)
    );
    let cands = cli_ok(&m, &["util", "sealer", "snap", "candidates", "10000"]);
    assert_eq!(cands.trim(), "no candidates available");

    // A sector aborted before it is proven gives its deals back.
    m.rpc_as("w2", "Venus.ReportAborted", json!([sid(b), "given up"]))
        .unwrap();
    assert_eq!(
        deal_states(&m),
        [
            (1, "Assigned".into(), Some(a as i64)),
            (2, "Waiting".into(), None)
        ]
    );
    assert_eq!(sector(&m, b)["state"], "Aborted");
    let err = m
        .rpc_as("w2", "Venus.AcquireDeals", json!([sid(b), none]))
        .unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("was aborted"),
        "{err}"
    );
    assert_eq!(deal_states(&m)[1], (2, "Waiting".into(), None));

    // Operators see each sector's kind and deals.
    let list = cli_ok(&m, &["util", "sealer", "sectors", "list"]);
    let line = |n: u64| {
        list.lines()
            .find(|l| l.starts_with(&format!("s-t010000-{n} ")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        list.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["Sector", "Kind", "State", "Worker", "Deadline", "Deals", "SnapUp"]
    );
    assert_eq!(line(a)[1..2], ["Deals"], "{list}");
    assert_eq!(line(a)[5], "1", "{list}");
    assert_eq!(line(c)[1], "CC", "{list}");
    let state = cli_ok(
        &m,
        &[
            "util",
            "sealer",
            "sectors",
            "state",
            "10000",
            &a.to_string(),
        ],
    );
    assert!(
        state.contains("Kind:") && state.contains(&cid1) && state.contains("Assigned"),
        "{state}"
    );
    let out = m.cli(&["util", "sealer", "sectors", "state", "10000", "999"]);
    assert!(
        stderr(&out).contains("s-t010000-999 not found"),
        "{}",
        stderr(&out)
    );

    // A worker that fetches a piece whose bytes are not its CID's stops before sealing them.
    corrupt_piece(&m, &cid2);
    let w = Worker::start(d, "dealer", &m, 1, "sealing.enable_deals = true");
    let row = wait_for(
        Duration::from_secs(60),
        "the thread to stop on the bad piece",
        || {
            w.list().into_iter().find(|t| {
                t["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("not the one the deal names"))
            })
        },
    );
    let err = row["last_error"].as_str().unwrap();
    assert!(err.contains(&cid2), "{err}");
    let number: u64 = row["job_id"]
        .as_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let held = sector(&m, number);
    assert_eq!(held["comm_r"], Value::Null, "nothing was sealed: {held}");
    assert_eq!(held["deals"], json!([2]), "{held}");
}

/// One deadline opening every 15 s; new sectors only when pledged.
const MANAGER: &str = r#"
[mock]
deadline_interval = "15s"
deadlines = 1
auto_pledge = false
"#;

fn deal_sectors_and_a_snap_up_are_sealed_verified_and_proven(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, db, free_port(), MANAGER);
    let d1 = import(&m, d, "one.bin", &[1u8; 300]);
    let d2 = import(&m, d, "two.bin", b"the second deal's data");
    let d3 = import(&m, d, "three.bin", b"snapped into a CC sector");
    let cid = |v: &Value| v["piece_cid"].as_str().unwrap().to_string();
    let (cid1, cid2, cid3) = (cid(&d1), cid(&d2), cid(&d3));

    // One worker: a deal sealer (two deals a sector), a CC sealer, a snap-up thread, a
    // WindowPoSt slot and an unseal thread.
    let port = free_port();
    let token = m.token_file(d, "farm");
    let cfg = worker_config_at(d, "farm", m.port, Some(&token), port, 0, "");
    let threads = format!(
        r#"
[[sealing_thread]]
location = "{deals}"
sealing.enable_deals = true
sealing.max_deals = 2

[[sealing_thread]]
location = "{cc}"

[[sealing_thread]]
location = "{snap}"
plan = "snapup"

[[sealing_thread]]
plan = "wdpost"

[[sealing_thread]]
location = "{unseal}"
plan = "unseal"
"#,
        deals = d.join("deals").display(),
        cc = d.join("cc").display(),
        snap = d.join("snap").display(),
        unseal = d.join("unseal").display(),
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += &threads;
    std::fs::write(&cfg, text).unwrap();
    let w = Worker::start_config(d, "farm", cfg, port);
    m.wait_for_workers(1);
    // The snap-up thread waits while the test plays a forger first.
    assert!(w.cli(&["pause", "--index", "2"]).status.success());
    cli_ok(&m, &["util", "sealer", "sectors", "pledge", "--count", "2"]);

    let proven = wait_for(Duration::from_secs(900), "two proven sectors", || {
        let list = m.sectors();
        let done: Vec<Value> = list
            .into_iter()
            .filter(|s| s["proof_state"] == "Landed" && s["state"] == "Finished")
            .collect();
        (done.len() == 2).then_some(done)
    });
    let deal_sector = proven.iter().find(|s| s["kind"] == "Deals").unwrap();
    let cc_sector = proven.iter().find(|s| s["kind"] == "CC").unwrap();
    assert_eq!(deal_sector["deals"], json!([1, 2]), "{deal_sector}");
    let want = comm_d_of(&[(&cid1, 512), (&cid2, 128)]);
    assert_eq!(
        deal_sector["comm_d"].as_str(),
        Some(damocles_actors::wire::hex::encode(&want).as_str()),
        "the deal sector's CommD is its pieces'"
    );
    let (dn, cn) = (
        deal_sector["sector_number"].as_u64().unwrap(),
        cc_sector["sector_number"].as_u64().unwrap(),
    );
    assert_eq!(
        deal_states(&m),
        [
            (1, "Active".into(), Some(dn as i64)),
            (2, "Active".into(), Some(dn as i64)),
            (3, "Waiting".into(), None)
        ]
    );

    // The CC sector becomes a snap-up candidate; the deal sector never does.
    let fetched = cli_ok(&m, &["util", "sealer", "snap", "fetch", "10000", "0"]);
    assert!(
        fetched.contains("available-in-deadline=1 added=1"),
        "{fetched}"
    );
    let cands = cli_ok(&m, &["util", "sealer", "snap", "candidates", "10000"]);
    assert!(
        cands
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "1", &cn.to_string()]),
        "{cands}"
    );

    // A forger takes the snap-up and hands in a proof it did not compute: refused after the
    // real verifier, nothing recorded; its abort hands sector and deal back.
    let spec = json!({"Sector": {"AllowedMiners": null, "AllowedProofTypes": null},
        "Deals": {"MaxDeals": null, "MinUsedSpace": null}});
    let got = m
        .rpc_as("forger", "Venus.AllocateSanpUpSector", json!([spec]))
        .unwrap();
    assert_eq!(got["Sector"]["ID"]["Number"], cn, "{got}");
    assert_eq!(
        got["Pieces"][0]["Piece"]["PieceCID"]["/"],
        cid3.as_str(),
        "{got}"
    );
    assert_eq!(got["Private"]["AccessInstance"], "remote", "{got}");
    assert_eq!(
        got["Public"]["CommR"],
        json!(damocles_actors::wire::hex::decode32(cc_sector["comm_r"].as_str().unwrap()).unwrap()),
    );
    let forged = json!({"CommR": ([7u8; 32]), "CommD": comm_d_of(&[(&cid3, 128)]),
        "AccessInstance": "remote", "Pieces": [{"/": cid3}],
        "Proof": base64_of(&[0xab; 192])});
    let before = sector(&m, cn);
    let (res, desc) = submitted(m.rpc_as(
        "forger",
        "Venus.SubmitSnapUpProof",
        json!([sid(cn), forged]),
    ));
    assert_eq!(res, 4, "{desc}");
    assert!(desc.contains("does not verify"), "{desc}");
    assert_eq!(sector(&m, cn), before);
    // The deal sector is not a proven CC sector to snap.
    let (res, desc) =
        submitted(m.rpc_as("farm", "Venus.SubmitSnapUpProof", json!([sid(dn), forged])));
    assert_eq!(res, 4, "{desc}");
    assert!(desc.contains("not allocated for snap-up"), "{desc}");
    m.rpc_as("forger", "Venus.ReportAborted", json!([sid(cn), "forged"]))
        .unwrap();
    assert_eq!(sector(&m, cn)["snap_state"], "Candidate");
    assert_eq!(deal_states(&m)[2], (3, "Waiting".into(), None));

    // The real snap-up thread: encode, prove, persist, hand in; the manager verifies it.
    assert!(w.cli(&["resume", "--index", "2"]).status.success());
    let snapped = wait_for(Duration::from_secs(600), "the snap-up verified", || {
        let s = sector(&m, cn);
        (s["snap_state"] == "Done").then_some(s)
    });
    assert_eq!(snapped["kind"], "Snapped", "{snapped}");
    assert_eq!(snapped["deals"], json!([3]), "{snapped}");
    assert_eq!(
        snapped["update_comm_d"].as_str(),
        Some(damocles_actors::wire::hex::encode(&comm_d_of(&[(&cid3, 128)])).as_str())
    );
    assert_ne!(snapped["update_comm_r"], snapped["comm_r"]);
    assert!(d
        .join("remote/update")
        .join(format!("s-t010000-{cn}"))
        .exists());
    assert_eq!(deal_states(&m)[2], (3, "Active".into(), Some(cn as i64)));
    let upgraded_at = snapped["upgraded_at"].as_str().unwrap().to_string();

    // A later deadline proves the updated replica, and the manager's verification passes.
    let job = wait_for(
        Duration::from_secs(300),
        "a job over the snapped sector",
        || {
            let (_, body) = m.rest(Method::GET, "/wdpost/jobs?all=true&detail=true", None);
            body.as_array()?
                .iter()
                .find(|j| {
                    j["state"] == "Succeed"
                        && j["created_at"]
                            .as_str()
                            .is_some_and(|c| c > upgraded_at.as_str())
                        && j["input"]["Sectors"].as_array().is_some_and(|s| {
                            s.iter()
                                .any(|x| x["SectorId"] == cn && x["Upgrade"] == true)
                        })
                })
                .cloned()
        },
    );
    let snapped_in = job["input"]["Sectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["SectorId"] == cn)
        .unwrap()
        .clone();
    assert_eq!(snapped_in["Accesses"]["SealedFile"], "remote", "{job}");
    assert_eq!(
        snapped_in["CommR"],
        json!(
            damocles_actors::wire::hex::decode32(snapped["update_comm_r"].as_str().unwrap())
                .unwrap()
        )
    );

    // The snapped deal comes back out of the updated replica, decoded against the sector key.
    let out_file = d.join("three.out");
    let out = cli_ok(
        &m,
        &[
            "util",
            "sealer",
            "sectors",
            "unseal",
            &cid3,
            "--output",
            out_file.to_str().unwrap(),
            "--timeout",
            "5m",
        ],
    );
    assert!(
        out.contains(&format!("s-t010000-{cn}")) && out.contains("finished"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        b"snapped into a CC sector",
        "byte for byte"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn deal_sectors_and_a_snap_up_on_sqlite() {
    deal_sectors_and_a_snap_up_are_sealed_verified_and_proven(None);
}
