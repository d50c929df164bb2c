//! Unseal through the whole cluster: two deals are sealed into a real 2KiB sector and proven;
//! an operator asks for each piece back (`util sealer sectors unseal`), a `plan = "unseal"`
//! thread regenerates it from the sealed replica with the proofs library and delivers it (to the
//! manager, which the CLI reads it from, or to a file on the worker), and the bytes are the
//! client's, byte for byte. Every refusal says what was wrong; a task another worker took and
//! gave up on fails with its reason and is asked for again; one whose worker vanished is taken
//! back with --requeue.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

fn cli(m: &Manager, args: &[&str]) -> (bool, String) {
    let out = m.cli(args);
    (out.status.success(), stdout(&out) + &stderr(&out))
}

/// `damocles-manager util sealer sectors unseal <args>`.
fn unseal(m: &Manager, args: &[&str]) -> (bool, String) {
    let mut all = vec!["util", "sealer", "sectors", "unseal"];
    all.extend_from_slice(args);
    cli(m, &all)
}

/// Imports `bytes` as a deal; its piece CID.
fn import(m: &Manager, dir: &Path, name: &str, bytes: &[u8]) -> String {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let f = file.to_str().unwrap();
    let out = m.cli(&[
        "util", "mock", "deals", "import", "--miner", "10000", "--json", f,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["piece_cid"].as_str().unwrap().to_string()
}

fn task(m: &Manager, number: u64, cid: &str) -> Value {
    let (status, body) = m.rest(Method::GET, &format!("/unseal/10000/{number}/{cid}"), None);
    assert_eq!(status, 200, "{body}");
    body
}

/// Client data that is not all one byte, so an offset off by anything shows.
fn data(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

const MANAGER: &str = "[mock]\nauto_pledge = false\n";

#[test]
fn pieces_are_unsealed_from_a_sealed_sector_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, None, free_port(), MANAGER);
    // A 1024 byte piece first, then a 512 byte one at offset 1016 (unpadded).
    let big = data(1000, 7);
    let small = data(300, 99);
    let cid_big = import(&m, d, "big.bin", &big);
    let cid_small = import(&m, d, "small.bin", &small);
    let port = free_port();
    let cfg = worker_config(d, "w", &m, port, 0, "");
    append_config(
        &cfg,
        &format!(
            "\n[[sealing_thread]]\nlocation = \"{}\"\nsealing.enable_deals = true\nsealing.max_deals = 2\n\n[[sealing_thread]]\nplan = \"unseal\"\nlocation = \"{}\"\n",
            d.join("w-deals").display(),
            d.join("w-unseal").display()
        ),
    );
    let w = Worker::start_config(d, "w", cfg, port);
    m.wait_for_workers(1);
    // The unseal thread waits while the refusals and a forger go first.
    assert!(w.cli(&["pause", "--index", "1"]).status.success());
    let (ok, out) = cli(&m, &["util", "sealer", "sectors", "pledge", "--count", "1"]);
    assert!(ok, "{out}");

    // Refusals need no sealed sector: a bad CID, half a sector, a destination no worker takes.
    let (ok, out) = unseal(&m, &["nope"]);
    assert!(!ok && out.contains("piece_cid"), "{out}");
    let (ok, out) = unseal(&m, &[&cid_big, "--actor", "10000"]);
    assert!(!ok && out.contains("--sector"), "{out}");
    let (ok, out) = unseal(&m, &[&cid_big, "--dest", "ftp://x/y", "--no-wait"]);
    assert!(!ok && out.contains("not a destination"), "{out}");

    let sector = wait_for(Duration::from_secs(900), "the deal sector proven", || {
        m.sectors()
            .into_iter()
            .find(|s| s["proof_state"] == "Landed" && s["kind"] == "Deals")
    });
    let n = sector["sector_number"].as_u64().unwrap();
    assert_eq!(sector["deals"], json!([1, 2]), "{sector}");
    let ns = n.to_string();
    // A deal imported after the sealing waits for a sector: no sector holds its piece.
    let stray = import(&m, d, "stray.bin", &data(2000, 1));
    let (ok, out) = unseal(&m, &[&stray, "--no-wait"]);
    assert!(!ok && out.contains("no sector holds piece"), "{out}");
    let (ok, out) = unseal(&m, &[&cid_big, "--actor", "t010000", "--sector", "999"]);
    assert!(!ok && out.contains("does not exist"), "{out}");
    let audit_before = m
        .rest(Method::GET, "/audit", None)
        .1
        .as_array()
        .unwrap()
        .len();
    let (ok, out) = unseal(&m, &[&stray, "--actor", "10000", "--sector", &ns]);
    assert!(
        !ok && out.contains(&format!("holds no piece {stray}")),
        "{out}"
    );
    assert!(out.contains(&cid_big) && out.contains(&cid_small), "{out}");
    let (_, audit) = m.rest(Method::GET, "/audit", None);
    assert_eq!(
        audit.as_array().unwrap().len(),
        audit_before,
        "a refusal changes nothing"
    );

    // A forger takes the task, another worker cannot act on it, the forger gives up: failed.
    let (ok, out) = unseal(&m, &[&cid_small, "--no-wait"]);
    assert!(
        ok && out.contains("queued") && out.contains("offset 1016"),
        "{out}"
    );
    let spec = json!([{"AllowedMiners": null, "AllowedProofTypes": null}]);
    let got = m
        .rpc_as("forger", "Venus.AllocateUnsealSector", spec.clone())
        .unwrap();
    assert_eq!(got["PieceCid"]["/"], cid_small.as_str(), "{got}");
    assert_eq!(
        (got["Offset"].as_u64(), got["Size"].as_u64()),
        (Some(1016), Some(508))
    );
    assert_eq!(got["PrivateInfo"]["AccessInstance"], "remote", "{got}");
    assert_eq!(got["State"], "unsealing", "{got}");
    let sid = json!({"Miner": 10000, "Number": n});
    let piece = json!({"/": cid_small});
    let e = m
        .rpc_as("other", "Venus.AcquireUnsealDest", json!([sid, piece]))
        .unwrap_err();
    assert_eq!(e["code"], 11002, "{e}");
    // Before the thread asks where to, the manager takes no bytes; then not without the secret.
    let upload = |secret: &str, body: Vec<u8>| {
        let url = m.url(&format!(
            "/unseal/10000/{n}/{cid_small}/piece?secret={secret}"
        ));
        let r = reqwest::blocking::Client::new()
            .put(url)
            .body(body)
            .send()
            .unwrap();
        r.status().as_u16()
    };
    assert_eq!(upload("guess", vec![0; 508]), 403);
    let dests = m
        .rpc_as("forger", "Venus.AcquireUnsealDest", json!([sid, piece]))
        .unwrap();
    let url = dests[0].as_str().unwrap();
    assert!(
        url.starts_with(&m.url("/unseal/")),
        "the URL the forger reached: {url}"
    );
    assert_eq!(upload("guess", vec![0; 508]), 403);
    // With the secret, bytes that do not make the piece's CID are not kept.
    let secret = url.split("secret=").nth(1).unwrap();
    assert_eq!(upload(secret, vec![0; 508]), 400);
    assert_eq!(upload(secret, vec![0; 100]), 400, "not the piece's size");
    let (status, body) = m.rest(
        Method::GET,
        &format!("/unseal/10000/{n}/{cid_small}/piece"),
        None,
    );
    assert_eq!(status, 409, "not ready: {body}");
    m.rpc_as(
        "forger",
        "Venus.AchieveUnsealSector",
        json!([sid, piece, "the forger gave up"]),
    )
    .unwrap();
    let failed = task(&m, n, &cid_small);
    assert_eq!(
        (failed["state"].as_str(), failed["error"].as_str()),
        (Some("failed"), Some("the forger gave up")),
        "{failed}"
    );
    assert!(m
        .rpc_as("forger", "Venus.AllocateUnsealSector", spec.clone())
        .unwrap()
        .is_null());

    // Asked again, the forger takes it again and vanishes: asking once more changes nothing,
    // --requeue takes it back from the forger.
    let (ok, out) = unseal(&m, &[&cid_small, "--no-wait"]);
    assert!(ok && out.contains(": queued"), "{out}");
    m.rpc_as("forger", "Venus.AllocateUnsealSector", spec)
        .unwrap();
    let (ok, out) = unseal(&m, &[&cid_small, "--no-wait"]);
    assert!(ok && out.contains("already queued"), "{out}");
    assert_eq!(task(&m, n, &cid_small)["worker"], "forger");
    let export = format!("/sectors/10000/{n}/export");
    let (_, exported) = m.rest(Method::GET, &export, None);
    assert_eq!(exported["Unsealing"], true, "damocles' mark: {exported}");

    // The unseal thread resumes only into its plan's states.
    let out = w.cli(&["resume", "--index", "1", "--state", "PC1Done"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("not handled by the unseal plan")
            && err.contains("Empty, Allocated, Unsealed, Finished, Aborted"),
        "{err}"
    );

    // Requeued, the unseal thread does it: the CLI waits and writes the client's bytes.
    assert!(w.cli(&["resume", "--index", "1"]).status.success());
    let out_file = d.join("out").join("small.bin");
    let (ok, out) = unseal(
        &m,
        &[
            &cid_small,
            "--requeue",
            "--output",
            out_file.to_str().unwrap(),
            "--timeout",
            "5m",
        ],
    );
    assert!(
        ok && out.contains("taken from the thread that held it") && out.contains("finished by w"),
        "{out}"
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), small, "byte for byte");
    // The forger's late word no longer counts.
    let late = m
        .rpc_as(
            "forger",
            "Venus.AchieveUnsealSector",
            json!([sid, piece, ""]),
        )
        .unwrap_err();
    assert_eq!(late["code"], 11001, "{late}");
    assert_eq!(task(&m, n, &cid_small)["state"], "finished");

    // The other piece, at offset 0, goes to a file on the worker's machine.
    let delivered = d.join("delivered").join("big.piece");
    let dest = format!("file://{}", delivered.display());
    let (ok, out) = unseal(
        &m,
        &[
            &cid_big, "--dest", &dest, "--actor", "10000", "--sector", &ns,
        ],
    );
    assert!(ok && out.contains("delivered to"), "{out}");
    let piece_bytes = std::fs::read(&delivered).unwrap();
    assert_eq!(piece_bytes.len(), 1016, "the whole piece, padding included");
    assert_eq!(&piece_bytes[..1000], big.as_slice(), "byte for byte");
    assert!(piece_bytes[1000..].iter().all(|b| *b == 0));

    let (ok, table) = cli(&m, &["util", "sealer", "sectors", "unseals"]);
    assert!(ok, "{table}");
    assert!(table.starts_with("Sector"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.contains("finished")).count(),
        2,
        "{table}"
    );
    let threads = w.list();
    let thread = threads.iter().find(|t| t["plan"] == "unseal").unwrap();
    assert!(thread["last_error"].is_null(), "{thread}");
    // The sector itself is untouched: still proven, still Finished.
    let after = m
        .sectors()
        .into_iter()
        .find(|s| s["sector_number"] == n)
        .unwrap();
    assert_eq!(
        (after["state"].as_str(), after["proof_state"].as_str()),
        (Some("Finished"), Some("Landed"))
    );
    let (_, audit) = m.rest(Method::GET, "/audit", None);
    let unseals = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "sector.unseal")
        .count();
    assert_eq!(unseals, 4, "{audit}");
    let (_, exported) = m.rest(Method::GET, &export, None);
    assert_eq!(exported["Unsealing"], false, "{exported}");
}
