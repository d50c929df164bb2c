//! The worker daemon on its own: bad configs refuse to start, and no processor outlives it.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use damocles_tests::*;

#[test]
fn bad_configs_exit_non_zero_with_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = worker_config_at(dir.path(), "w", 1789, None, free_port(), 1, "");
    let base = std::fs::read_to_string(&good).unwrap();
    let cases = [
        (
            "unknown-key",
            base.replace("ping_interval = \"1s\"", "ping_intervall = \"1s\""),
            "worker.ping_intervall",
            "unknown field `ping_intervall`",
        ),
        (
            "bad-duration",
            base.replace("ping_interval = \"1s\"", "ping_interval = \"1 parsec\""),
            "worker.ping_interval",
            "expected a duration",
        ),
        (
            "wrong-type",
            base.replace("max_retries = 2", "max_retries = \"two\""),
            "sealing.max_retries",
            "invalid type",
        ),
        (
            "no-location",
            format!("{base}\n[[sealing_thread]]\nplan = \"sealer\"\n"),
            "sealing_thread[1].location",
            "needs a location",
        ),
        (
            "bad-start",
            format!("{base}\n[processors]\nstart = \"never\"\n"),
            "processors.start",
            "expected `first_task` or `startup`",
        ),
        (
            "bad-manager",
            base.replace("/ip4/127.0.0.1/tcp/1789", "somewhere"),
            "sector_manager.rpc_client.addr",
            "not a manager address",
        ),
    ];
    for (name, text, key, reason) in cases {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(bin("damocles-worker"))
            .arg("daemon")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} must not start");
        let err = stderr(&out);
        let file = path.display().to_string();
        assert!(
            err.contains(&format!("{file}: {key}: ")) && err.contains(reason),
            "{name}: {err}"
        );
    }
    let missing = std::process::Command::new(bin("damocles-worker"))
        .args(["daemon", "-c", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("/nonexistent.toml: -: cannot read the file"),
        "{}",
        stderr(&missing)
    );

    // The manager follows the same rules.
    let path = dir.path().join("manager.toml");
    std::fs::write(&path, "[db]\nidle_timeout = \"soon\"\n").unwrap();
    let out = std::process::Command::new(bin("damocles-manager"))
        .env("DAMOCLES_PATH", dir.path().join("home"))
        .args(["daemon", "run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("{}: db.idle_timeout: ", path.display())),
        "{}",
        stderr(&out)
    );
    let out = std::process::Command::new(bin("damocles-manager"))
        .env("DAMOCLES_PATH", dir.path().join("home"))
        .args(["daemon", "run", "--mock", "--sector-size", "3KiB"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("valid sizes"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_worker_is_one_line_and_a_non_zero_exit() {
    let port = free_port();
    let out = std::process::Command::new(bin("damocles-worker"))
        .args(["worker", "--host", &format!("127.0.0.1:{port}"), "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot reach the worker at 127.0.0.1:{port}: connection failed"
        )),
        "{err}"
    );
}

fn processors_of(w: &Worker) -> Vec<i32> {
    wait_for(Duration::from_secs(30), "six processor children", || {
        let c = w.children();
        (c.len() >= 6).then_some(c)
    })
}

#[test]
fn no_processor_outlives_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), None);
    // By default a stage's child starts at its first task: an idle worker has none.
    let idle = Worker::start(dir.path(), "w-idle", &m, 1, "sealing.allowed_miners = [1]");
    m.wait_for_workers(1);
    assert_eq!(
        idle.children(),
        Vec::<i32>::new(),
        "children of an idle worker"
    );
    drop(idle);

    for sig in [
        nix::sys::signal::Signal::SIGKILL,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let (name, port) = (format!("w-{sig}"), free_port());
        let config = worker_config(
            dir.path(),
            &name,
            &m,
            port,
            1,
            "sealing.allowed_miners = [1]",
        );
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            format!("{text}\n[processors]\nstart = \"startup\"\n"),
        )
        .unwrap();
        let mut w = Worker::start_config(dir.path(), &name, config, port);
        let children = processors_of(&w);
        assert!(children.iter().all(|p| alive(*p)));
        w.proc.signal(sig);
        let status = w
            .proc
            .wait_exit(Duration::from_secs(15))
            .expect("the daemon exits");
        if sig == nix::sys::signal::Signal::SIGTERM {
            assert!(status.success(), "SIGTERM is a clean shutdown: {status}");
            assert!(w.proc.log_text().contains("worker stopped"));
        }
        wait_for(Duration::from_secs(10), "every processor gone", || {
            children.iter().all(|p| !alive(*p)).then_some(())
        });
    }
}
