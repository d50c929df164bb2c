//! The child side of the processor protocol (`damocles-worker processor <stage>`): prints the
//! ready line, then serves one JSON request per stdin line, each on its own thread, and answers
//! on stdout as soon as it is done (so answers may come out of order). Logs go to stderr. EOF on
//! stdin means the worker is gone: the child exits at once, even mid-task.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use damocles_actors::wire::processor::{ready_line, ProcessorRequest, ProcessorResponse, STAGES};
use tracing::{info, warn};

use crate::stages;

pub fn run(stage: &str) -> anyhow::Result<()> {
    if !STAGES.contains(&stage) && stage != "c1" {
        anyhow::bail!(
            "unknown stage {stage:?}; valid stages: c1, {}",
            STAGES.join(", ")
        );
    }
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    {
        let mut out = stdout
            .lock()
            .map_err(|_| anyhow::anyhow!("stdout lock poisoned"))?;
        writeln!(out, "{}", ready_line(stage))?;
        out.flush()?;
    }
    info!(stage, pid = std::process::id(), "processor ready");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let req: ProcessorRequest = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                warn!(stage, error = %e, "skipping a request line that does not parse");
                continue;
            }
        };
        let stdout = stdout.clone();
        let stage = stage.to_string();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let result = stages::run(&stage, req.task);
            let resp = match result {
                Ok(output) => ProcessorResponse {
                    id: req.id,
                    err_msg: None,
                    output: Some(output),
                },
                Err(e) => ProcessorResponse {
                    id: req.id,
                    err_msg: Some(format!("{e:#}")),
                    output: None,
                },
            };
            info!(stage, id = req.id, ok = resp.err_msg.is_none(), elapsed = ?started.elapsed(), "task done");
            if let (Ok(line), Ok(mut out)) = (serde_json::to_string(&resp), stdout.lock()) {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        });
    }
    info!(stage, "stdin closed: the worker is gone, exiting");
    std::process::exit(0)
}
