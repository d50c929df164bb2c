//! `Processor`: owns one child process of a `[[processors.<stage>]]` entry and speaks the
//! line-JSON protocol with it. Requests carry ids and may be answered out of order; a child that
//! exits fails every request in flight with a readable error and is started again after a short
//! delay when `auto_restart` is set. Children live in their own process group, get SIGKILL when
//! the worker dies (parent-death signal) and see EOF on stdin when it exits.
//!
//! A child that misbehaves is killed (its whole process group) and then handled as one that
//! exited: a line of output longer than `max_line`, one that is not UTF-8, its output closed
//! while it runs, or a task not answered within its timeout.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, info_span, warn, Instrument, Span};

use crate::wire::processor::{ready_line, ProcessorRequest, ProcessorResponse};

mod os;
mod spec;

pub use os::{kill_group, parse_cpuset, pin_to_cpuset, Pinning};
use os::{read_line, set_parent_death_signal, truncate, Line};
pub use spec::{check_env, default_timeout, EnvOverlay, ProcessorSpec, StartAt};

/// Delay before a child that exited is started again.
pub const RESTART_DELAY: Duration = Duration::from_secs(3);

/// Longest line a child may print (a 32GiB C1 output is tens of megabytes of JSON).
pub const MAX_LINE: usize = 256 << 20;

/// Longest stderr line logged as one; longer ones are logged in pieces.
const MAX_LOG_LINE: usize = 64 << 10;

struct Child {
    pid: u32,
    /// Lines to write to the child's stdin; the writer task ends when this is dropped.
    stdin: mpsc::UnboundedSender<String>,
    ready: bool,
    /// Why the worker killed it, shown instead of the bare exit status.
    killed_because: Option<String>,
}

/// The actor that owns one processor child.
pub struct Processor {
    spec: ProcessorSpec,
    /// Bumped at every spawn, so late events of a previous child are ignored.
    generation: u64,
    child: Option<Child>,
    next_id: u64,
    inflight: HashMap<u64, oneshot::Sender<Result<Value, String>>>,
    /// Requests that arrived while the child was starting; sent once it is ready.
    queued: Vec<String>,
    /// The live child's pid (0 when none), read by callers to show `ext(pid: N)`.
    pid: Arc<AtomicU32>,
    restarts: u32,
    /// A new child is on its way: calls queue for it instead of failing.
    restart_pending: bool,
    /// A child was started since this actor (re)started: from then on only `auto_restart`
    /// starts another.
    ever_started: bool,
    shutting_down: bool,
    /// Every line this actor logs is inside this span: `processor{processor=pc1#0}`.
    span: Span,
}

/// A processor as logs and `worker list` name it: `pc1#0`.
fn name_of(spec: &ProcessorSpec) -> String {
    format!("{}#{}", spec.stage, spec.index)
}

impl Processor {
    /// An actor for `spec`; `pid` shows the running child's process id.
    pub fn new(spec: ProcessorSpec, pid: Arc<AtomicU32>) -> Self {
        let span = info_span!("processor", processor = %name_of(&spec));
        Processor {
            span,
            spec,
            generation: 0,
            child: None,
            next_id: 1,
            inflight: HashMap::new(),
            queued: Vec::new(),
            pid,
            restarts: 0,
            restart_pending: false,
            ever_started: false,
            shutting_down: false,
        }
    }

    fn name(&self) -> String {
        name_of(&self.spec)
    }

    fn spawn_child(&mut self, ctx: &mut Context<Self>) {
        let _span = self.span.clone().entered();
        self.restart_pending = false;
        self.ever_started = true;
        self.generation += 1;
        let generation = self.generation;
        let spec = &self.spec;
        let mut cmd = tokio::process::Command::new(&spec.bin);
        cmd.args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if spec.inherit_envs {
            if let Ok(overlay) = spec.env_overlay.read() {
                for (k, v) in overlay.iter() {
                    match v {
                        Some(v) => cmd.env(k, v),
                        None => cmd.env_remove(k),
                    };
                }
            }
        } else {
            cmd.env_clear();
        }
        cmd.envs(&spec.envs);
        set_parent_death_signal(&mut cmd);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                error!(bin = %spec.bin.display(), error = %e, "cannot start processor");
                self.schedule_restart(ctx);
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        self.pid.store(pid, Ordering::Relaxed);
        if let Some(cpuset) = &spec.cpuset {
            pin_to_cpuset(&spec.cgroup_root, &self.name(), pid, cpuset);
        }
        info!(pid, bin = %spec.bin.display(), "processor started");

        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        if let Some(mut stdin) = child.stdin.take() {
            tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    if stdin.write_all(line.as_bytes()).await.is_err()
                        || stdin.write_all(b"\n").await.is_err()
                        || stdin.flush().await.is_err()
                    {
                        break;
                    }
                }
            });
        }
        let addr = ctx.address();
        if let Some(stdout) = child.stdout.take() {
            let addr = addr.clone();
            let max = spec.max_line;
            tokio::spawn(async move {
                let mut out = BufReader::new(stdout);
                let mut buf = Vec::new();
                let reason = loop {
                    match read_line(&mut out, max, &mut buf).await {
                        Ok(Line::Whole) => match String::from_utf8(std::mem::take(&mut buf)) {
                            Ok(line) => addr.do_send(ChildLine { generation, line }),
                            Err(e) => {
                                break format!(
                                    "it printed a line that is not UTF-8 (invalid byte at {})",
                                    e.utf8_error().valid_up_to()
                                )
                            }
                        },
                        Ok(Line::TooLong) => {
                            break format!("it printed a line longer than {max} bytes")
                        }
                        Ok(Line::Eof) => {
                            addr.do_send(ChildEof { generation });
                            return;
                        }
                        Err(e) => break format!("cannot read its output: {e}"),
                    }
                };
                addr.do_send(ChildBroken { generation, reason });
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let span = self.span.clone();
            tokio::spawn(
                async move {
                    // Always drained, whatever it holds: a child blocked on a full pipe would hang.
                    let mut err = BufReader::new(stderr);
                    let mut buf = Vec::new();
                    while let Ok(Line::Whole | Line::TooLong) =
                        read_line(&mut err, MAX_LOG_LINE, &mut buf).await
                    {
                        let line = String::from_utf8_lossy(&buf);
                        info!(target: "processor", pid, "{line}");
                        buf.clear();
                    }
                }
                .instrument(span),
            );
        }
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            addr.do_send(ChildExited { generation, status });
        });
        self.child = Some(Child {
            pid,
            stdin: tx,
            ready: false,
            killed_because: None,
        });
        ctx.run_later(self.spec.stable_wait, move |act, _ctx| {
            let _span = act.span.clone().entered();
            let late = act.generation == generation
                && act.child.as_ref().is_some_and(|c| !c.ready);
            if late {
                error!(pid, stable_wait = ?act.spec.stable_wait, "timeout exceeded before child got ready; killing it");
                let why = format!("it was not ready within stable_wait ({:?})", act.spec.stable_wait);
                act.kill_child_because(why);
            }
        });
    }

    fn schedule_restart(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down || !self.spec.auto_restart {
            return;
        }
        self.restarts += 1;
        self.restart_pending = true;
        crate::metrics::inc(
            "damocles_worker_processor_restarts_total",
            &[("stage", self.spec.stage.name())],
        );
        warn!(restarts = self.restarts, delay = ?RESTART_DELAY, "restarting processor");
        ctx.run_later(RESTART_DELAY, |act, ctx| {
            if act.child.is_none() && !act.shutting_down {
                act.spawn_child(ctx);
            }
        });
    }

    fn kill_child(&mut self) {
        if let Some(c) = &self.child {
            kill_group(c.pid);
        }
    }

    /// Kills the child for `why`; its exit then fails the calls in flight with that reason.
    fn kill_child_because(&mut self, why: String) {
        if let Some(c) = &mut self.child {
            c.killed_because.get_or_insert(why);
            kill_group(c.pid);
        }
    }

    fn fail_all(&mut self, reason: &str) {
        for (_, tx) in self.inflight.drain() {
            let _ = tx.send(Err(reason.to_string()));
        }
        self.queued.clear();
    }
}

impl Actor for Processor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        if self.spec.start == StartAt::Startup {
            self.spawn_child(ctx);
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.kill_child();
    }
}

impl Supervised for Processor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        let _span = self.span.clone().entered();
        warn!("processor actor restarting");
        self.kill_child();
        self.child = None;
        self.ever_started = false;
        self.fail_all("processor actor restarted");
    }
}

/// Starts the first child if none was started yet (`StartAt::FirstTask`); answers the live
/// child's pid (0 when none). A child that exited is started again only by `auto_restart`.
#[derive(Message)]
#[rtype(result = "u32")]
pub struct EnsureStarted;

impl Handler<EnsureStarted> for Processor {
    type Result = u32;

    fn handle(&mut self, _msg: EnsureStarted, ctx: &mut Self::Context) -> u32 {
        if !self.ever_started && !self.shutting_down {
            self.spawn_child(ctx);
        }
        self.pid.load(Ordering::Relaxed)
    }
}

/// Run one task on this child; resolves with the child's output or its error message. A task
/// not answered within `timeout` gets its child killed.
#[derive(Message)]
#[rtype(result = "Result<Value, String>")]
pub struct Call {
    /// The task, as the stage's JSON.
    pub task: Value,
    /// How long the child has to answer before it is killed.
    pub timeout: Duration,
}

impl Handler<Call> for Processor {
    type Result = ResponseFuture<Result<Value, String>>;

    fn handle(&mut self, msg: Call, ctx: &mut Self::Context) -> Self::Result {
        let _span = self.span.clone().entered();
        let (tx, rx) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        let timeout = msg.timeout;
        ctx.run_later(timeout, move |act, _ctx| {
            if act.inflight.contains_key(&id) {
                let _span = act.span.clone().entered();
                let why = format!(
                    "task {id} did not answer within {} (processors.{}[{}].timeout)",
                    humantime::format_duration(timeout),
                    act.spec.stage,
                    act.spec.index
                );
                error!("{why}; killing the child");
                act.kill_child_because(why);
            }
        });
        let line = serde_json::to_string(&ProcessorRequest { id, task: msg.task });
        let name = self.name();
        match (line, &self.child) {
            (Err(e), _) => {
                let _ = tx.send(Err(format!("cannot encode task: {e}")));
            }
            (Ok(line), Some(child)) => {
                self.inflight.insert(id, tx);
                if child.ready {
                    let _ = child.stdin.send(line);
                } else {
                    self.queued.push(line);
                }
            }
            (Ok(line), None) if self.restart_pending => {
                // The next child gets it once ready.
                self.inflight.insert(id, tx);
                self.queued.push(line);
            }
            (Ok(_), None) => {
                let _ = tx.send(Err(format!(
                    "processor {name} is not running (restarting or failed to start)"
                )));
            }
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(format!("processor {name} dropped the request")))
        })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct ChildLine {
    generation: u64,
    line: String,
}

impl Handler<ChildLine> for Processor {
    type Result = ();

    fn handle(&mut self, msg: ChildLine, _ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        if msg.generation != self.generation {
            return;
        }
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if !child.ready {
            if msg.line.trim() == ready_line(self.spec.stage) {
                child.ready = true;
                info!(pid = child.pid, "processor ready");
                for line in self.queued.drain(..) {
                    let _ = child.stdin.send(line);
                }
            } else {
                error!(line = %truncate(&msg.line), "unexpected first line from processor; killing it");
                let why = format!("its first line was not {:?}", ready_line(self.spec.stage));
                self.kill_child_because(why);
            }
            return;
        }
        let resp: ProcessorResponse = match serde_json::from_str(&msg.line) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, line = %truncate(&msg.line), "skipping a line that is not a response");
                return;
            }
        };
        let Some(tx) = self.inflight.remove(&resp.id) else {
            warn!(id = resp.id, "response for an unknown request");
            return;
        };
        let result = match (resp.err_msg, resp.output) {
            (Some(err), _) => Err(err),
            (None, Some(out)) => Ok(out),
            (None, None) => Err("output field lost".to_string()),
        };
        let _ = tx.send(result);
    }
}

/// The child's output can no longer be trusted (see `read_line`): it is killed.
#[derive(Message)]
#[rtype(result = "()")]
struct ChildBroken {
    generation: u64,
    reason: String,
}

impl Handler<ChildBroken> for Processor {
    type Result = ();

    fn handle(&mut self, msg: ChildBroken, _ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        if msg.generation != self.generation || self.child.is_none() || self.shutting_down {
            return;
        }
        error!(reason = %msg.reason, "processor output is broken; killing it");
        self.kill_child_because(msg.reason);
    }
}

/// The child closed its stdout: normal when it is exiting, so it gets a moment to do so before
/// it is killed as broken.
#[derive(Message)]
#[rtype(result = "()")]
struct ChildEof {
    generation: u64,
}

impl Handler<ChildEof> for Processor {
    type Result = ();

    fn handle(&mut self, msg: ChildEof, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        ctx.notify_later(
            ChildBroken {
                generation: msg.generation,
                reason: "it closed its output but kept running".into(),
            },
            Duration::from_secs(1),
        );
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct ChildExited {
    generation: u64,
    status: String,
}

impl Handler<ChildExited> for Processor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        if msg.generation != self.generation {
            return;
        }
        let pid = self.child.as_ref().map_or(0, |c| c.pid);
        let killed_because = self.child.take().and_then(|c| c.killed_because);
        // Other processes of its group (helpers it started) go with it.
        kill_group(pid);
        self.pid.store(0, Ordering::Relaxed);
        let reason = match killed_because {
            Some(why) => format!(
                "processor {} was killed: {why} (pid {pid}, {})",
                self.name(),
                msg.status
            ),
            None => format!(
                "child process exited: {} (pid {pid}, {})",
                self.spec.stage, msg.status
            ),
        };
        if self.shutting_down {
            info!(pid, status = %msg.status, "processor stopped");
        } else {
            warn!(pid, status = %msg.status, in_flight = self.inflight.len(), "processor exited");
        }
        self.fail_all(&reason);
        self.schedule_restart(ctx);
    }
}

/// Stop the child for good (worker shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Processor {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        // Not ctx.stop(): the supervisor would start the actor, and a child, again.
        self.shutting_down = true;
        self.kill_child();
        self.fail_all("worker is shutting down");
    }
}

#[cfg(test)]
mod tests;
