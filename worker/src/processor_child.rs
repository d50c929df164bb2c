//! The child side of the processor protocol (`damocles-worker processor <stage>`): prints the
//! ready line, then serves one JSON request per stdin line, each on its own thread, and answers
//! on stdout as soon as it is done (so answers may come out of order). Logs go to stderr. EOF on
//! stdin means the worker is gone: the child exits at once, even mid-task. A task that panics is
//! answered with the panic's message as its error, so its caller never waits for an answer that
//! cannot come.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use damocles_actors::wire::processor::{ready_line, ProcessorRequest, ProcessorResponse, Stage};
use tracing::{info, warn};

use crate::stages;

pub fn run(stage: &str) -> anyhow::Result<()> {
    let stage: Stage = stage.parse().map_err(anyhow::Error::msg)?;
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    {
        let mut out = stdout
            .lock()
            .map_err(|_| anyhow::anyhow!("stdout lock poisoned"))?;
        writeln!(out, "{}", ready_line(stage))?;
        out.flush()?;
    }
    info!(%stage, pid = std::process::id(), "processor ready");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let req: ProcessorRequest = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                warn!(%stage, error = %e, "skipping a request line that does not parse");
                continue;
            }
        };
        let stdout = stdout.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let task = req.task;
            let resp = respond(req.id, || stages::run(stage, task));
            info!(%stage, id = req.id, ok = resp.err_msg.is_none(), elapsed = ?started.elapsed(), "task done");
            if let (Ok(line), Ok(mut out)) = (serde_json::to_string(&resp), stdout.lock()) {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        });
    }
    info!(%stage, "stdin closed: the worker is gone, exiting");
    std::process::exit(0)
}

/// Runs one task and makes its answer; a panic becomes the task's error.
fn respond(id: u64, run: impl FnOnce() -> anyhow::Result<serde_json::Value>) -> ProcessorResponse {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
        .unwrap_or_else(|p| Err(anyhow::anyhow!("panicked: {}", panic_message(&*p))));
    match result {
        Ok(output) => ProcessorResponse {
            id,
            err_msg: None,
            output: Some(output),
        },
        Err(e) => ProcessorResponse {
            id,
            err_msg: Some(format!("{e:#}")),
            output: None,
        },
    }
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_message_is_read_from_either_payload() {
        let p = std::panic::catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(super::panic_message(&*p), "static text");
        let n = 7;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(super::panic_message(&*p), "formatted 7");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(super::panic_message(&*p), "a panic without a message");
    }

    #[test]
    fn a_task_that_panics_is_answered_with_the_panic() {
        let r = super::respond(3, || panic!("index out of bounds"));
        assert_eq!(r.id, 3);
        assert_eq!(r.err_msg.as_deref(), Some("panicked: index out of bounds"));
        assert!(r.output.is_none());
        let ok = super::respond(4, || Ok(serde_json::json!(1)));
        assert_eq!((ok.err_msg, ok.output), (None, Some(serde_json::json!(1))));
    }
}
