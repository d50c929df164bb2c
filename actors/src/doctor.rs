//! What both `doctor` commands print: one line per check, `ok` with what was found, or `FAIL`
//! with the problem and its fix; the command fails when any check did.

use std::fmt::Display;

/// A failed check: what is wrong, and what the operator does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub what: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    /// A problem and its fix.
    pub fn new(what: impl Display, fix: impl Display) -> Self {
        Problem {
            what: what.to_string(),
            fix: fix.to_string(),
        }
    }
}

/// The checks so far, printed as they are made.
#[derive(Debug, Default)]
pub struct Report {
    failed: usize,
    passed: usize,
}

impl Report {
    /// Prints one check's line: `ok   <check>: <found>` or `FAIL <check>: <problem>; fix: <fix>`.
    pub fn check(&mut self, name: &str, outcome: Result<String, Problem>) -> bool {
        println!("{}", line(name, &outcome));
        match outcome {
            Ok(_) => self.passed += 1,
            Err(_) => self.failed += 1,
        }
        self.failed == 0
    }

    /// The verdict: an error (the command exits non-zero) when any check failed.
    pub fn finish(self) -> Result<(), String> {
        if self.failed == 0 {
            println!("all {} checks passed", self.passed);
            Ok(())
        } else {
            Err(format!(
                "{} of {} checks failed",
                self.failed,
                self.failed + self.passed
            ))
        }
    }
}

/// Nothing listens on `addr` yet (a daemon's address); `fix` says what to do when something does.
pub fn address_free(addr: &str, fix: &str) -> Result<String, Problem> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(format!("{addr} is free")),
        Err(e) => Err(Problem::new(format!("cannot listen on {addr}: {e}"), fix)),
    }
}

/// One check's line.
pub fn line(name: &str, outcome: &Result<String, Problem>) -> String {
    match outcome {
        Ok(found) => format!("ok   {name}: {found}"),
        Err(p) => format!("FAIL {name}: {}; fix: {}", p.what, p.fix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_fails_the_report_and_says_its_fix() {
        let mut r = Report::default();
        assert!(r.check("a", Ok("fine".into())));
        let p = Problem::new("missing", "create it");
        assert_eq!(
            line("b", &Err(p.clone())),
            "FAIL b: missing; fix: create it"
        );
        assert!(!r.check("b", Err(p)));
        assert_eq!(r.finish(), Err("1 of 2 checks failed".into()));
        let mut ok = Report::default();
        ok.check("a", Ok("fine".into()));
        assert_eq!(ok.finish(), Ok(()));
    }
}
