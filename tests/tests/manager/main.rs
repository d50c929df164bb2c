//! The manager against SQLite and MariaDB: workers seen through pings, remote pause/resume,
//! expiry and removal, access control, bad input, and restarts that lose nothing.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use damocles_tests::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Threads that never get a sector: allocation asks for a miner the mock chain does not have.
mod bad_input;

const IDLE: &str = "sealing.allowed_miners = [1]";

fn audit(m: &Manager) -> Vec<Value> {
    let (status, body) = m.rest(Method::GET, "/audit", None);
    assert_eq!(status, 200);
    body.as_array().cloned().unwrap_or_default()
}

fn workers_are_seen_steered_expired_and_removed(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), db);
    let mut w = Worker::start(dir.path(), "worker-a", &m, 2, IDLE);

    let list = wait_for(
        Duration::from_secs(30),
        "the worker in util worker list",
        || {
            let out = m.cli(&["util", "worker", "list"]);
            let text = stdout(&out);
            text.contains("worker-a").then_some(text)
        },
    );
    let mut lines = list.lines();
    let header = lines.next().unwrap();
    let columns: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Dest",
            "Threads",
            "Empty",
            "Paused",
            "Errors",
            "LastPing(with ! if expired)",
            "Mode"
        ],
        "the seed's columns in the seed's order, ours after: {header}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..6],
        [
            "worker-a",
            &format!("127.0.0.1:{}", w.port),
            "2",
            "2",
            "0",
            "0"
        ],
        "{list}"
    );
    assert!(!list.contains("(!)"));
    // LastPing to the nanosecond, as the seed prints it (`2.756922465s`).
    assert!(
        row[6].contains('.') && row[6].ends_with('s') && row[7] == "active",
        "{list}"
    );

    // info: the live threads in the seed's columns.
    let out = m.cli(&["util", "worker", "info", "worker-a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = stdout(&out);
    assert!(info.starts_with("Index  Loc"), "{info}");
    assert!(
        info.contains("SectorID") && info.contains("PausedElapsed") && info.contains("LastErr")
    );
    assert_eq!(info.lines().count(), 3, "{info}");

    // REST pause of thread 1: the worker's own list shows it paused.
    let (status, body) = m.rest(Method::POST, "/workers/worker-a/threads/1/pause", None);
    assert_eq!(status, 200, "{body}");
    let t1 = w.list().into_iter().find(|t| t["index"] == 1).unwrap();
    assert_eq!(t1["thread_state"]["state"], "Paused");
    assert!(w
        .list_lines()
        .lines()
        .nth(1)
        .unwrap()
        .contains("paused=true"));
    wait_for(
        Duration::from_secs(15),
        "Paused = 1 in util worker list",
        || {
            let text = stdout(&m.cli(&["util", "worker", "list"]));
            let row: Vec<String> = text
                .lines()
                .nth(1)?
                .split_whitespace()
                .map(String::from)
                .collect();
            (row.get(4).map(String::as_str) == Some("1")).then_some(())
        },
    );

    // REST resume with a state continues from that state.
    let (status, body) = m.rest(
        Method::POST,
        "/workers/worker-a/threads/1/resume",
        Some(r#"{"state": "Empty"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let t1 = w.list().into_iter().find(|t| t["index"] == 1).unwrap();
    assert_ne!(t1["thread_state"]["state"], "Paused");
    // The thread's span names it: `thread{thread=1 plan=sealer ...}: ... resumed ...`.
    assert!(w
        .proc
        .log_text()
        .lines()
        .any(|l| l.contains("thread{thread=1 ")
            && l.contains("resumed with a new state state=Empty")));

    // The CLI does the same, through the REST API.
    let out = m.cli(&["util", "worker", "pause", "worker-a", "0"]);
    assert_eq!(
        stdout(&out).trim(),
        "thread #0 of worker-a paused",
        "{}",
        stderr(&out)
    );
    let out = m.cli(&["util", "worker", "resume", "worker-a", "0"]);
    assert_eq!(
        stdout(&out).trim(),
        "thread #0 of worker-a resumed",
        "{}",
        stderr(&out)
    );

    let actions: Vec<String> = audit(&m)
        .iter()
        .map(|a| format!("{} {} {}", a["action"], a["target"], a["result"]))
        .collect();
    for want in [
        "\"thread.pause\" \"worker-a#1\" \"paused\"",
        "\"thread.resume\" \"worker-a#1\" \"resumed\"",
        "\"thread.pause\" \"worker-a#0\" \"paused\"",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }

    // The worker goes away: its ping expires, and calls to it say which worker, where, why.
    w.proc.signal(nix::sys::signal::Signal::SIGKILL);
    w.proc.wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(7));
    let text = stdout(&m.cli(&["util", "worker", "list", "--expiration", "5s"]));
    let row = text.lines().nth(1).unwrap();
    assert!(row.contains("s (!)") && row.ends_with("active"), "{text}");
    let text = stdout(&m.cli(&["util", "worker", "list"]));
    assert!(!text.contains("(!)"), "default expiration is 10m: {text}");
    let (status, body) = m.rest(Method::GET, "/workers/worker-a", None);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["worker"], "worker-a");
    assert_eq!(body["addr"], format!("127.0.0.1:{}", w.port));
    assert!(!body["reason"].as_str().unwrap().is_empty());
    let out = m.cli(&["util", "worker", "info", "worker-a"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("worker-a") && err.contains("cannot be reached") && err.contains("502"),
        "{err}"
    );

    // remove forgets it; a second remove is an error.
    let out = m.cli(&["util", "worker", "remove", "worker-a"]);
    assert_eq!(
        stdout(&out).trim(),
        "'worker-a' removed",
        "{}",
        stderr(&out)
    );
    let text = stdout(&m.cli(&["util", "worker", "list"]));
    assert_eq!(text.lines().count(), 1, "{text}");
    let out = m.cli(&["util", "worker", "remove", "worker-a"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"));
    assert!(audit(&m)
        .iter()
        .any(|a| a["action"] == "worker.remove" && a["result"] == "removed"));
}

#[test]
fn workers_are_seen_steered_expired_and_removed_sqlite() {
    workers_are_seen_steered_expired_and_removed(None);
}

#[test]
fn workers_are_seen_steered_expired_and_removed_mysql() {
    if let Some(db) = mysql_database("steer") {
        workers_are_seen_steered_expired_and_removed(Some(db));
    }
}

fn allocate(m: &Manager) -> u64 {
    let r = m
        .rpc_as(
            "tester",
            "Venus.AllocateSector",
            json!([{"AllowedMiners": [10000], "AllowedProofTypes": [5]}]),
        )
        .unwrap();
    r["ID"]["Number"].as_u64().unwrap()
}

fn a_restarted_manager_loses_nothing(db: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let m = Manager::start_on(dir.path(), db.clone(), port);
    let w = Worker::start(dir.path(), "worker-c", &m, 1, IDLE);
    m.wait_for_workers(1);
    assert_eq!((allocate(&m), allocate(&m)), (1, 2));
    // A miner or proof type the chain does not have gets nothing.
    assert_eq!(
        m.rpc_as(
            "tester",
            "Venus.AllocateSector",
            json!([{"AllowedMiners": [7], "AllowedProofTypes": null}])
        )
        .unwrap(),
        Value::Null
    );
    let token = m.token();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(m.home.join("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "only its owner may read the admin token"
    );
    drop(m);
    // A token file left readable by others is made 0600 again at the next start.
    std::fs::set_permissions(
        dir.path().join("manager-home/token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let m = Manager::start_on(dir.path(), db, port);
    assert_eq!(m.token(), token, "the token survives restarts");
    let mode = std::fs::metadata(m.home.join("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "made private again");
    let (_, body) = m.rest(Method::GET, "/workers", None);
    assert_eq!(
        body[0]["name"], "worker-c",
        "workers are remembered: {body}"
    );
    assert_eq!(allocate(&m), 3, "numbering continues");
    let numbers: Vec<u64> = m
        .sectors()
        .iter()
        .map(|s| s["sector_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    // The worker keeps pinging the restarted manager.
    wait_for(
        Duration::from_secs(15),
        "a fresh ping after the restart",
        || {
            let (_, body) = m.rest(Method::GET, "/workers", None);
            (body[0]["last_ping_age_secs"].as_i64()? <= 2).then_some(())
        },
    );
    drop(w);
}

#[test]
fn a_restarted_manager_loses_nothing_sqlite() {
    a_restarted_manager_loses_nothing(None);
}

#[test]
fn a_restarted_manager_loses_nothing_mysql() {
    if let Some(db) = mysql_database("restart") {
        a_restarted_manager_loses_nothing(Some(db));
    }
}

#[test]
fn a_garbage_proof_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let n = allocate(&m);
    let id = json!({"Miner": 10000, "Number": n});
    let ticket = m
        .rpc_as("tester", "Venus.AssignTicket", json!([id]))
        .unwrap();
    // A CC sector's CommD is the empty sector's: anything else is refused at pre-commit.
    let empty = damocles_proof_types::sector_comm_d(5, &[]).unwrap();
    let info = json!({"CommR": vec![1u8; 32], "CommD": empty, "Ticket": ticket});
    let r = m
        .rpc_as(
            "tester",
            "Venus.SubmitPreCommit",
            json!([{"ID": id, "ProofType": 5}, info, false]),
        )
        .unwrap();
    assert_eq!(r["Res"], 1);
    let seed = m
        .rpc_as("tester", "Venus.WaitSeed", json!([id, 5]))
        .unwrap();
    assert_eq!(seed["ShouldWait"], false);
    let r = m
        .rpc_as(
            "tester",
            "Venus.SubmitProof",
            json!([id, {"Proof": "AAAA"}, false]),
        )
        .unwrap();
    assert_eq!(r["Res"], 4, "{r}");
    let r = m
        .rpc_as("tester", "Venus.PollProofState", json!([id]))
        .unwrap();
    assert_eq!(r["State"], 7, "ShouldAbort: {r}");
}

/// The database goes away under a running manager: operators get 503 (not 500, not a hang),
/// workers get a retryable error, and everything works again once it is back.
#[test]
fn a_database_outage_is_503_and_the_manager_recovers_mysql() {
    let Some(root_url) = mysql_database("outage") else {
        return;
    };
    let (server, db) = root_url.rsplit_once('/').unwrap();
    let hostport = server.rsplit('@').next().unwrap();
    let mysql_admin = |sql: &str| mysql_exec(&root_url, sql);
    let user = format!("dmgr{}", std::process::id());
    mysql_admin(&format!(
        "DROP USER IF EXISTS '{user}'@'%'; CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT ALL ON {db}.* TO '{user}'@'%';"
    ));
    let url = format!("mysql://{user}:pw@{hostport}/{db}");
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), Some(url.clone()));
    let w = Worker::start(dir.path(), "worker-d", &m, 1, IDLE);
    m.wait_for_workers(1);

    // Outage: the account is locked and its connections are cut.
    mysql_admin(&format!("ALTER USER '{user}'@'%' ACCOUNT LOCK;"));
    for id in mysql_admin(&format!(
        "SELECT id FROM information_schema.processlist WHERE user = '{user}'"
    ))
    .split_whitespace()
    {
        let _ = std::panic::catch_unwind(|| mysql_admin(&format!("KILL {id}")));
    }
    let (status, body) = m.rest(Method::GET, "/workers", None);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("database unavailable"),
        "{body}"
    );
    let client = reqwest::blocking::Client::new();
    assert_eq!(
        client
            .get(m.url("/healthz"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    // (The worker's token is known from before the outage.)
    let e = m
        .rpc_as(
            "worker-d",
            "Venus.AllocateSector",
            json!([{"AllowedMiners": [10000], "AllowedProofTypes": [5]}]),
        )
        .unwrap_err();
    assert_eq!(e["code"], -32003, "a retryable error for workers: {e}");

    // Back: everything answers again and nothing was lost.
    mysql_admin(&format!("ALTER USER '{user}'@'%' ACCOUNT UNLOCK;"));
    wait_for(
        Duration::from_secs(30),
        "the manager to use the database again",
        || {
            let (status, body) = m.rest(Method::GET, "/workers", None);
            (status == 200 && body[0]["name"] == "worker-d").then_some(())
        },
    );
    assert_eq!(allocate(&m), 1, "numbering starts where it was");

    // A manager that starts while its database is down waits for it instead of exiting.
    let port = m.port;
    drop(m);
    mysql_admin(&format!("ALTER USER '{user}'@'%' ACCOUNT LOCK;"));
    let unlock = format!("ALTER USER '{user}'@'%' ACCOUNT UNLOCK;");
    let admin_url = root_url.clone();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        mysql_exec(&admin_url, &unlock);
    });
    let m = Manager::start_on(dir.path(), Some(url), port);
    opener.join().unwrap();
    assert!(m
        .proc
        .log_text()
        .contains("database not reachable yet; retrying in 5s"));
    assert_eq!(allocate(&m), 2);
    drop(w);
    mysql_admin(&format!("DROP USER '{user}'@'%';"));
}

#[test]
fn an_idle_connection_outlives_the_clients_idle_timeout() {
    use damocles_actors::wire::jsonrpc::{CLIENT_IDLE, SERVER_KEEP_ALIVE};
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", m.port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: manager\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let answered = std::time::Instant::now();
    s.set_read_timeout(Some(SERVER_KEEP_ALIVE * 2)).unwrap();
    // The manager closes the idle connection; until then a worker's client may use it.
    while s.read(&mut buf).unwrap() > 0 {}
    let open = answered.elapsed();
    assert!(
        open > CLIENT_IDLE + Duration::from_secs(1) && open <= SERVER_KEEP_ALIVE + Duration::from_millis(500),
        "the manager kept an idle connection open {open:?}: a client drops one after {CLIENT_IDLE:?}, and the manager's keep-alive is {SERVER_KEEP_ALIVE:?}"
    );
}
