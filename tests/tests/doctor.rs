//! `damocles-worker doctor` and `damocles-manager doctor` as an operator runs them on a new
//! machine: all ok on a ready one (exit 0, one line per check, in the operator's order), and on
//! a broken one a `FAIL` line naming each problem with its fix, and a non-zero exit.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use damocles_tests::*;

const WORKER: &str = "doctor-w";

fn worker_doctor(config: &Path, envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(bin("damocles-worker"));
    cmd.args(["doctor", "-c"]).arg(config);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The check names of the output's lines, in order (`location /x`, `manager`...).
fn checks(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter_map(|l| l.strip_prefix("ok   ").or_else(|| l.strip_prefix("FAIL ")))
        .map(|l| l.split(": ").next().unwrap().to_string())
        .collect()
}

/// The line of check `name`.
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l[5.min(l.len())..].starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no line for {name:?} in:\n{text}"))
}

#[test]
fn the_worker_doctor_passes_a_ready_machine_and_names_each_problem_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = Manager::start_with(d, None, free_port(), "[mock]\nauto_pledge = false\n");
    let port = free_port();
    let config = damocles_tests::worker_config(d, WORKER, &m, port, 2, "");
    let (store0, store1) = (
        d.join(format!("{WORKER}-store0")),
        d.join(format!("{WORKER}-store1")),
    );
    // The operator prepares the disks.
    for p in [&store0, &store1, &d.join("remote")] {
        std::fs::create_dir_all(p).unwrap();
    }

    let out = worker_doctor(&config, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.lines()
            .take(text.lines().count() - 1)
            .all(|l| l.starts_with("ok   ")),
        "{text}"
    );
    let names = checks(&out);
    let position = |prefix: &str| {
        names
            .iter()
            .position(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} check in:\n{text}"))
    };
    // In the order an operator sets a machine up.
    let order = [
        "config",
        &format!("location {}", store0.display()),
        &format!("location {}", store1.display()),
        "store remote (",
        "params snap-up update",
        "params PoRep (C2)",
        "manager",
        "store remote on the manager",
        "processor pc1#0",
        "processor c2#0",
        "management port",
    ];
    let at: Vec<usize> = order.iter().map(|p| position(p)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "out of order: {names:?}"
    );
    assert!(
        text.ends_with(&format!("all {} checks passed\n", names.len())),
        "{text}"
    );
    assert!(
        line(&text, "manager").contains("this worker's token"),
        "{text}"
    );
    let params = line(&text, &names[position("params PoRep (C2)")]);
    assert!(
        params.contains("this cluster's generator") || params.contains("published"),
        "{params}"
    );
    let location = line(&text, &format!("location {}", store0.display()));
    assert!(location.contains("free (a sector needs"), "{location}");

    // Now break it: a location whose disk is gone, a revoked token, a processor that is not
    // one, and the management port taken.
    std::fs::remove_dir(&store1).unwrap();
    let revoked = m.cli(&["util", "worker", "token", "revoke", WORKER]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    append_config(
        &config,
        "\n[[processors.pc1]]\nbin = \"/bin/echo\"\nargs = [\"hello\"]\n",
    );
    let _held = TcpListener::bind(format!("127.0.0.1:{port}")).unwrap();

    let out = worker_doctor(&config, &[]);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    // The revoked token also fails the attached store's check with the manager.
    assert!(stderr(&out).contains("5 of"), "{}", stderr(&out));
    let gone = line(&text, &format!("location {}", store1.display()));
    assert!(
        gone.starts_with("FAIL") && gone.contains("does not exist"),
        "{gone}"
    );
    assert!(
        gone.contains(&format!(
            "fix: mount its disk, or `mkdir -p {}`",
            store1.display()
        )),
        "{gone}"
    );
    let manager = line(&text, "manager");
    assert!(
        manager.starts_with("FAIL") && manager.contains("refused"),
        "{manager}"
    );
    assert!(manager.contains("token create"), "{manager}");
    let pc1 = line(&text, "processor pc1#0");
    assert!(
        pc1.starts_with("FAIL") && pc1.contains("printed \"hello\""),
        "{pc1}"
    );
    let port_line = line(&text, "management port");
    assert!(
        port_line.starts_with("FAIL") && port_line.contains("worker list"),
        "{port_line}"
    );
    // What still holds is still ok.
    assert!(
        line(&text, &format!("location {}", store0.display())).starts_with("ok"),
        "{text}"
    );
    assert!(line(&text, "config").starts_with("ok"), "{text}");

    // A config that does not parse stops at the first line.
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "[worker\nname = 1\n").unwrap();
    let out = worker_doctor(&bad, &[]);
    assert!(!out.status.success());
    assert_eq!(checks(&out), ["config"], "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("FAIL config: "),
        "{}",
        stdout(&out)
    );
}

/// A worker with one WindowPoSt slot and no manager (the parameter check needs none).
fn wdpost_only(d: &Path) -> PathBuf {
    let path = d.join("post.toml");
    let text = "[sector_manager]\nrpc_client.addr = \"/ip4/127.0.0.1/tcp/1\"\n\n\
                [sealing]\nallowed_sizes = [\"2KiB\"]\n\n[[sealing_thread]]\nplan = \"wdpost\"\n";
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_worker_doctor_checks_each_parameter_file_against_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = wdpost_only(d);
    // The machine's cache, which the test run prepared, passes.
    let out = worker_doctor(&config, &[]);
    let text = stdout(&out);
    let params = line(&text, "params WindowPoSt StackedDrgWindow2KiBV1_2").to_string();
    assert!(params.starts_with("ok"), "{text}");
    let file = PathBuf::from(
        params
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap(),
    );
    let vk = file.with_extension("vk");

    // A cache of its own with copies of those two files passes too...
    let cache = d.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let (copy, copy_vk) = (
        cache.join(file.file_name().unwrap()),
        cache.join(vk.file_name().unwrap()),
    );
    std::fs::copy(&file, &copy).unwrap();
    std::fs::copy(&vk, &copy_vk).unwrap();
    let env = [("FIL_PROOFS_PARAMETER_CACHE", cache.as_path())];
    let out = worker_doctor(&config, &env);
    let text = stdout(&out);
    assert!(
        line(&text, "params WindowPoSt StackedDrgWindow2KiBV1_2").starts_with("ok"),
        "{text}"
    );

    // ...but not once a byte of it changed: its digest is no known one.
    let mut bytes = std::fs::read(&copy).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&copy, &bytes).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = worker_doctor(&config, &env);
    let text = stdout(&out);
    assert!(!out.status.success());
    let damaged = line(&text, "params WindowPoSt StackedDrgWindow2KiBV1_2");
    assert!(
        damaged.starts_with("FAIL") && damaged.contains("has digest"),
        "{damaged}"
    );
    assert!(
        damaged.contains(
            "fix: delete it, then `damocles-worker params --sector-size 2KiB` makes them"
        ),
        "{damaged}"
    );

    // A missing verifying key is named.
    std::fs::copy(&file, &copy).unwrap();
    std::fs::remove_file(&copy_vk).unwrap();
    let out = worker_doctor(&config, &env);
    let missing = line(&stdout(&out), "params WindowPoSt StackedDrgWindow2KiBV1_2").to_string();
    assert!(
        missing.contains(&format!("{} is missing", copy_vk.display())),
        "{missing}"
    );
}

fn manager_doctor(home: &Path, config: &Path) -> Output {
    Command::new(bin("damocles-manager"))
        .env("DAMOCLES_PATH", home)
        .args(["doctor", "-c"])
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn the_manager_doctor_checks_the_database_its_migrations_the_token_and_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let home = d.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = d.join("manager.toml");
    let db = d.join("manager.sqlite");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{listen}\"\n\n[db]\nurl = \"{}\"\n",
            db.display()
        ),
    )
    .unwrap();

    // A new machine: nothing applied yet, no token yet; both are made at the first start.
    let out = manager_doctor(&home, &config);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert_eq!(
        checks(&out),
        [
            "config",
            "database",
            "migrations",
            "admin token",
            "listen address"
        ],
        "{text}"
    );
    assert!(line(&text, "database").contains("sqlite"), "{text}");
    assert!(line(&text, "migrations").contains("0 applied"), "{text}");
    assert!(
        line(&text, "admin token").contains("does not exist yet"),
        "{text}"
    );
    assert!(line(&text, "listen address").contains("is free"), "{text}");

    let migrate = Command::new(bin("damocles-manager"))
        .env("DAMOCLES_PATH", &home)
        .args(["db", "migrate", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    let out = manager_doctor(&home, &config);
    assert!(
        line(&stdout(&out), "migrations").contains("all "),
        "{}",
        stdout(&out)
    );

    // A token others can read, and the address taken.
    let token = home.join("token");
    std::fs::write(&token, "secret").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _held = TcpListener::bind(&listen).unwrap();
    let out = manager_doctor(&home, &config);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        stderr(&out).contains("2 of 5 checks failed"),
        "{}",
        stderr(&out)
    );
    let t = line(&text, "admin token");
    assert!(
        t.starts_with("FAIL") && t.contains(&format!("`chmod 600 {}`", token.display())),
        "{t}"
    );
    assert!(line(&text, "listen address").starts_with("FAIL"), "{text}");

    // A database that cannot be reached.
    for url in ["/nonexistent-dir/m.sqlite", "mysql://root@127.0.0.1:1/test"] {
        std::fs::write(&config, format!("[db]\nurl = \"{url}\"\n")).unwrap();
        let out = manager_doctor(&home, &config);
        let text = stdout(&out);
        assert!(!out.status.success(), "{text}");
        assert!(line(&text, "database").starts_with("FAIL"), "{url}: {text}");
    }
}
