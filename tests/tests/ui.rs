//! The operator's console (`/ui/`) in a real browser (headless chromium through chromedriver)
//! against a real manager and worker: a wrong token is refused, the admin token logs in, the
//! page shows the worker and its threads, a thread paused from the page is paused on the
//! worker, a stage limit set from the page holds on the worker, a failed WindowPoSt job is reset
//! from the page, a change without the page's CSRF token is refused, and a forged session shows
//! the login again. With `DAMOCLES_UI_SCREENSHOTS=<dir>` it keeps a PNG of each main page there
//! (those in `docs/ui/` come from such a run).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use damocles_tests::*;
use reqwest::Method;
use serde_json::Value;

const WORKER: &str = "ui-worker";

/// Where this run keeps its screenshots.
fn shots(tmp: &Path) -> PathBuf {
    let dir = std::env::var("DAMOCLES_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| tmp.join("screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn thread_state(w: &Worker, index: u64) -> String {
    let list = w.list();
    let t = list.iter().find(|t| t["index"] == index).unwrap();
    t["thread_state"]["state"].as_str().unwrap().to_string()
}

#[test]
fn the_console_logs_in_shows_the_cluster_and_steers_it_from_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(b) = Browser::start(d) else { return };
    let shots = shots(d);
    let db = mysql_database("ui");
    let m = Manager::start_with(d, db.clone(), free_port(), "[mock]\nauto_pledge = false\n");
    let w = Worker::start(d, WORKER, &m, 2, "");
    m.wait_for_workers(1);

    // Without a session the console is its login page; a wrong token is refused there.
    b.goto(&m.url("/ui/"));
    b.wait("form#login input#token");
    b.screenshot(&shots.join("login.png"));
    b.type_into("#token", "not-the-admin-token");
    b.click("form#login button");
    b.wait_text(".error", "the refusal", |t| {
        t.contains("not this manager's admin token")
    });
    assert!(b.cookies().iter().all(|c| c["name"] != "damocles_session"));
    let script = reqwest::blocking::get(m.url("/ui/app.js")).unwrap();
    assert_eq!(script.status(), 401, "the console's script needs a session");

    // The admin token logs in: an HttpOnly, SameSite=Strict session cookie, and the workers.
    b.type_into("#token", &m.token());
    b.click("form#login button");
    b.wait("table#workers");
    let cookie = b
        .cookies()
        .into_iter()
        .find(|c| c["name"] == "damocles_session")
        .expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    let session = cookie["value"].as_str().unwrap().to_string();
    let row = b.wait_text(
        &format!("tr[data-worker=\"{WORKER}\"]"),
        "the worker, active, with its 2 threads",
        |t| t.contains(WORKER) && t.contains("active") && t.contains(" 2 "),
    );
    assert!(row.contains("ago"), "{row}");
    b.screenshot(&shots.join("workers.png"));

    // Its threads; thread 0 paused from the page is paused on the worker, thread 1 is not.
    b.click(&format!("tr[data-worker=\"{WORKER}\"] a"));
    b.wait("table#threads tr[data-thread=\"1\"]");
    b.click("tr[data-thread=\"0\"] button[data-act=\"pause\"]");
    b.wait_text("tr[data-thread=\"0\"] td.tstate", "Paused", |t| {
        t == "Paused"
    });
    assert_eq!(thread_state(&w, 0), "Paused");
    assert_ne!(thread_state(&w, 1), "Paused");
    let lines = w.list_lines();
    assert!(
        lines.lines().filter(|l| l.contains("paused=true")).count() == 1,
        "{lines}"
    );
    b.wait_text("#notice", "the pause's outcome", |t| {
        t.contains("pause thread 0: paused")
    });

    // A stage limit set from the page holds on the worker.
    b.type_into("tr[data-stage=\"pc1\"] input.limit", "3");
    b.click("tr[data-stage=\"pc1\"] button[data-act=\"limit\"]");
    b.wait_text("#notice", "the limit's outcome", |t| {
        t.contains("limit of pc1: set to 3")
    });
    let (status, limits) = m.rest(Method::GET, &format!("/workers/{WORKER}/limits"), None);
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["limits"]["pc1"]["limit"], 3, "{limits}");
    b.screenshot(&shots.join("worker.png"));

    // The paused thread's picker offers its plan's states; resumed from the page (where it
    // stopped), it runs again.
    let options = b.find_all("tr[data-thread=\"0\"] select[data-pick] option");
    let texts: Vec<String> = options.iter().filter_map(|o| b.text(o).ok()).collect();
    assert!(
        texts.iter().any(|t| t == "PC1Done") && texts.iter().any(|t| t == "Finished"),
        "{texts:?}"
    );
    b.click("tr[data-thread=\"0\"] button[data-act=\"resume\"]");
    b.wait_text("tr[data-thread=\"0\"] td.tstate", "not Paused", |t| {
        !t.is_empty() && t != "Paused"
    });
    assert_ne!(thread_state(&w, 0), "Paused");

    // Drained from the page, the worker takes no new work (and holds none: drained); undrained,
    // it is active again.
    b.click("button[data-act=\"drain\"]");
    b.wait_text("#notice", "the drain", |t| t.contains("takes no new work"));
    let mode = |m: &Manager| {
        let (_, ws) = m.rest(Method::GET, "/workers", None);
        ws[0]["mode"].as_str().unwrap().to_string()
    };
    assert_eq!(mode(&m), "drained");
    b.click("button[data-act=\"undrain\"]");
    b.wait_text("#notice", "the undrain", |t| t.contains("takes new work"));
    assert_eq!(mode(&m), "active");

    // Every change from the page is in the audit log, under the console.
    let (_, audit) = m.rest(Method::GET, "/audit", None);
    let by_console = |action: &str, target: &str| {
        audit.as_array().unwrap().iter().any(|a| {
            a["action"] == action
                && a["target"] == target
                && a["actor"].as_str().unwrap().starts_with("console@")
        })
    };
    assert!(
        by_console("thread.pause", &format!("{WORKER}#0")),
        "{audit}"
    );
    assert!(
        by_console("thread.resume", &format!("{WORKER}#0")),
        "{audit}"
    );
    assert!(by_console("worker.limits", WORKER), "{audit}");
    assert!(by_console("worker.drain", WORKER), "{audit}");
    b.goto(&m.url("/ui/#/audit"));
    b.wait_text("table#audit tbody", "the pause", |t| {
        t.contains("thread.pause")
    });
    b.screenshot(&shots.join("audit.png"));

    // A WindowPoSt job that failed on both tries is reset from the page.
    if let Some(url) = &db {
        let input = r#"{"Sectors":[],"MinerId":10000,"ProofType":"StackedDrgWindow2KiBV1_2"}"#;
        mysql_exec(
            url,
            &format!(
                "INSERT INTO wdpost_jobs (id, miner_id, deadline_idx, partitions, proof_type, sectors, state, try_num, worker_name, error_reason, deadline_open_at, created_at, started_at, finished_at, updated_at, input) \
                 VALUES ('ui-failed', 10000, 47, '0', 'StackedDrgWindow2KiBV1_2', 1, 'Failed', 2, '{WORKER}', 'window_post: no replica for sector 7', NOW(), NOW(), NOW(), NOW(), NOW(), '{input}');"
            ),
        );
        b.goto(&m.url("/ui/#/wdpost"));
        let failed = b.wait_text("tr[data-job=\"ui-failed\"]", "the failed job", |t| {
            t.contains("Failed") && t.contains("no replica for sector 7")
        });
        assert!(failed.contains("2/"), "{failed}");
        b.screenshot(&shots.join("wdpost.png"));
        b.click("tr[data-job=\"ui-failed\"] button[data-act=\"reset\"]");
        b.wait_text("tr[data-job=\"ui-failed\"] td.jstate", "ReadyToRun", |t| {
            t == "ReadyToRun"
        });
        let (_, jobs) = m.rest(Method::GET, "/wdpost/jobs?all=true", None);
        let job = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == "ui-failed")
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(
            (job["state"].as_str(), job["try_num"].as_i64()),
            (Some("ReadyToRun"), Some(0)),
            "{job}"
        );
    }

    // The session without the page's CSRF token cannot change anything; reading works.
    let http = reqwest::blocking::Client::new();
    let cookie_header = format!("damocles_session={session}");
    let res = http
        .post(m.url(&format!("/workers/{WORKER}/threads/1/pause")))
        .header("Cookie", &cookie_header)
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().unwrap().contains("X-CSRF-Token"));
    assert_ne!(thread_state(&w, 1), "Paused");
    let res = http
        .get(m.url("/workers"))
        .header("Cookie", &cookie_header)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);

    // A forged or expired session shows the login again, and the API refuses it.
    b.delete_cookies();
    b.set_cookie("damocles_session", "9999999999.00");
    b.goto(&m.url("/ui/"));
    b.wait("form#login input#token");
    b.wait_text(".error", "why the session ended", |t| {
        t.contains("Your session has ended")
    });
    let res = http
        .get(m.url("/workers"))
        .header("Cookie", "damocles_session=9999999999.00")
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);

    // Logging out ends the page's session.
    b.delete_cookies();
    b.set_cookie("damocles_session", &session);
    b.goto(&m.url("/ui/"));
    b.wait("table#workers");
    b.click("form.logout button");
    b.wait("form#login input#token");
    assert!(b.cookies().iter().all(|c| c["name"] != "damocles_session"));
}
