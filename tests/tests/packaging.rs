//! What packagers and operators install beside the binaries: `--version` naming the commit,
//! shell completions and man pages generated from the CLI definitions, and the systemd units in
//! `config-examples/`, whose commands the binaries take.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use damocles_tests::*;

const BINS: [&str; 2] = ["damocles-manager", "damocles-worker"];

fn run(bin_name: &str, args: &[&str]) -> String {
    let out = Command::new(bin(bin_name)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{bin_name} {args:?}: {}",
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn version_names_the_release_and_the_commit() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| stdout(&o).trim().to_string());
    for b in BINS {
        let text = run(b, &["--version"]);
        let release = format!("{b} {} (commit ", env!("CARGO_PKG_VERSION"));
        assert!(text.starts_with(&release), "{text}");
        if let Some(head) = &head {
            assert_eq!(text.trim(), format!("{release}{head})"));
        }
    }
}

#[test]
fn shell_completions_name_every_command_and_bash_reads_them() {
    for b in BINS {
        for shell in ["bash", "zsh", "fish"] {
            let script = run(b, &["completions", shell]);
            assert!(script.contains(b), "{b} {shell}");
            assert!(script.contains("daemon"), "{b} {shell}: no daemon command");
        }
        let script = run(b, &["completions", "bash"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("completion.bash");
        std::fs::write(&file, &script).unwrap();
        let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
        assert!(check.status.success(), "{b}: {}", stderr(&check));
    }
    let out = Command::new(bin("damocles-worker"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));
    assert!(
        run("damocles-manager", &["completions", "bash"]).contains("util"),
        "the operator commands complete too"
    );
}

#[test]
fn man_pages_cover_each_command() {
    let dir = tempfile::tempdir().unwrap();
    for b in BINS {
        let out = dir.path().join(b);
        run(b, &["man", out.to_str().unwrap()]);
        let page = std::fs::read_to_string(out.join(format!("{b}.1"))).unwrap();
        assert!(page.contains(&format!(".TH {b} 1")), "{page}");
        assert!(page.contains("daemon"), "{page}");
        let pages: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(pages.len() > 3, "{pages:?}");
    }
    let nested = dir
        .path()
        .join("damocles-manager")
        .join("damocles-manager-daemon-run.1");
    let page = std::fs::read_to_string(&nested).unwrap();
    assert!(page.contains("mock"), "{page}");
}

#[test]
fn the_systemd_units_run_commands_the_binaries_take() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config-examples");
    for b in BINS {
        let unit = std::fs::read_to_string(examples.join(format!("{b}.service"))).unwrap();
        for section in ["[Unit]", "[Service]", "[Install]"] {
            assert!(unit.contains(section), "{b}.service: no {section}");
        }
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        let mut words = exec.split_whitespace();
        let program = words.next().unwrap();
        assert_eq!(Path::new(program).file_name().unwrap(), b, "{exec}");
        let mut args: Vec<&str> = words.collect();
        args.push("--help");
        let help = run(b, &args);
        assert!(help.contains("Usage:"), "{exec}: {help}");
        // The log variable the unit sets is the one the binary reads.
        let log = if b == "damocles-manager" {
            "DAMOCLES_MANAGER_LOG"
        } else {
            "DAMOCLES_WORKER_LOG"
        };
        assert!(unit.contains(&format!("Environment={log}=")), "{b}.service");
    }
}
