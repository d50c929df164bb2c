//! `damocles-manager util worker ...`: a client of the REST API that prints the seeds' tables.
//! The WindowPoSt job commands are in `cli/wdpost.rs`.

mod market;
mod proving;
mod sched;
mod sectors;
mod tokens;
mod unseal;
mod wdpost;

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};
use damocles_actors::wire::worker_api::{ThreadInfo, ThreadState};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tabwriter::TabWriter;

use crate::config::DEFAULT_LISTEN;
use crate::home;
use crate::rest::workers;

#[derive(Debug, Args)]
pub struct UtilCmd {
    /// The manager's address (host:port)
    #[arg(long, env = "DAMOCLES_MANAGER_LISTEN", default_value = DEFAULT_LISTEN, global = true)]
    listen: String,
    #[command(subcommand)]
    cmd: UtilSub,
}

#[derive(Debug, Subcommand)]
enum UtilSub {
    /// Workers and their threads
    Worker {
        #[command(subcommand)]
        cmd: WorkerSub,
    },
    /// Sectors of the sealer
    Sealer {
        #[command(subcommand)]
        cmd: sched::SealerSub,
    },
    /// The mock chain's market
    Mock {
        #[command(subcommand)]
        cmd: market::MockSub,
    },
}

#[derive(Debug, Subcommand)]
enum WorkerSub {
    /// Every worker that pinged this manager
    List {
        /// Mark workers whose last ping is older than this with (!)
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        expiration: Duration,
        #[arg(long)]
        json: bool,
    },
    /// The live threads of one worker
    Info {
        /// Worker name or address (host:port)
        worker: String,
        #[arg(long)]
        json: bool,
    },
    /// Pause one thread of a worker
    Pause {
        worker: String,
        index: String,
        #[arg(long)]
        json: bool,
    },
    /// Resume one thread of a worker, optionally from another state
    Resume {
        worker: String,
        index: String,
        state: Option<String>,
        /// Needed for Finished or Aborted, which drop the thread's work (an abort wipes the
        /// sector's files)
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// The workers' tokens: each worker calls the manager with its own
    Token {
        #[command(subcommand)]
        cmd: tokens::TokenSub,
    },
    /// Forget a worker that is gone
    Remove {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// A worker's stage limits and how many of each run; with stage=N (or stage=none), change
    /// them on the worker, which keeps them in its config file
    Limits {
        /// Worker name or address (host:port)
        worker: String,
        #[arg(value_parser = damocles_actors::limits::parse_assignment)]
        set: Vec<(String, Option<usize>)>,
        #[arg(long)]
        json: bool,
    },
    /// Give a worker no new sector or WindowPoSt job; its threads finish what they hold
    Drain { name: String },
    /// Let a drained worker take new work again
    Undrain { name: String },
    /// The scheduling decisions: every sector or job granted, every refusal and why
    SchedLog {
        /// Only this worker's
        #[arg(long)]
        worker: Option<String>,
        /// How far back
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        since: Duration,
        #[arg(long)]
        json: bool,
    },
    /// WindowPoSt jobs
    Wdpost {
        #[command(subcommand)]
        cmd: wdpost::WdpostSub,
    },
}

struct Api {
    base: String,
    listen: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Api {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    /// Sends raw bytes (a deal's data).
    async fn call_bytes(&self, method: Method, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let req = self
            .request(method, path)
            .header("Content-Type", "application/octet-stream")
            .body(body);
        self.send(req).await
    }

    /// Reads raw bytes (an unsealed piece); errors as [`Api::call`] reports them.
    async fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let resp = self.request(Method::GET, path).send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the manager at {}: {}",
                self.listen,
                damocles_actors::wire::jsonrpc::describe_reqwest(&e)
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp.bytes().await?.to_vec());
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let msg = body["error"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| body.to_string());
        anyhow::bail!("{msg} (HTTP {})", status.as_u16())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let body = self.send_raw(req).await?;
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// GETs `path` and reads the answer straight into `T`, with no tree of `Value`s in between
    /// (a list of 100,000 workers is 33 MB).
    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let body = self.send_raw(self.request(Method::GET, path)).await?;
        serde_json::from_slice(&body).map_err(|e| not_what_we_read(&format!("GET {path}"), e))
    }

    /// The body of a successful answer; any other status is an error with the manager's text.
    async fn send_raw(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the manager at {}: {}",
                self.listen,
                damocles_actors::wire::jsonrpc::describe_reqwest(&e)
            )
        })?;
        let status = resp.status();
        let raw = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        if status.is_success() {
            return Ok(raw);
        }
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let msg = body["error"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| body.to_string());
        if status == StatusCode::UNAUTHORIZED {
            anyhow::bail!("{msg} (set DAMOCLES_MANAGER_TOKEN or DAMOCLES_PATH)");
        }
        anyhow::bail!("{msg} (HTTP {})", status.as_u16())
    }
}

/// An answer read as the type its handler wrote: a field renamed on one side is an error that
/// says so, not a column of dashes.
fn decode<T: DeserializeOwned>(what: &str, v: Value) -> anyhow::Result<T> {
    serde_json::from_value(v).map_err(|e| not_what_we_read(what, e))
}

fn not_what_we_read(what: &str, e: serde_json::Error) -> anyhow::Error {
    anyhow::anyhow!("the manager's answer to {what} is not what this CLI reads ({e}): are the manager and the CLI the same version?")
}

/// A time as the REST API writes it (`2026-12-01T00:00:00`).
fn iso(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
}

/// Go's `time.Duration` text (`2.756922465s`, `13m42s`, `1h2m3.5s`, `1.5ms`), as damocles
/// prints it.
pub fn go_duration(d: Duration) -> String {
    let (total, nanos) = (d.as_secs(), d.subsec_nanos());
    // Digits after the point, without trailing zeros (Go's fmtFrac).
    let frac = |n: u32, width: usize| {
        let f = format!("{n:0width$}");
        let f = f.trim_end_matches('0');
        if f.is_empty() {
            String::new()
        } else {
            format!(".{f}")
        }
    };
    if total == 0 {
        return match nanos {
            0 => "0s".into(),
            n if n < 1_000 => format!("{n}ns"),
            n if n < 1_000_000 => format!("{}{}µs", n / 1_000, frac(n % 1_000, 3)),
            n => format!("{}{}ms", n / 1_000_000, frac(n % 1_000_000, 6)),
        };
    }
    let secs = format!("{}{}s", total % 60, frac(nanos, 9));
    match (total / 3600, (total / 60) % 60) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn table(header: &str, rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut tw = TabWriter::new(out).padding(2);
    writeln!(tw, "{header}")?;
    for r in rows {
        writeln!(tw, "{}", r.join("\t"))?;
    }
    tw.flush()?;
    Ok(())
}

/// What `worker list` prints of a worker in `GET /workers` (`workers::WorkerView`), read
/// without its flattened row: 100,000 of them are read in a tenth of the time.
#[derive(Deserialize)]
struct Listed {
    name: String,
    dest: String,
    threads: i32,
    empty_threads: i32,
    paused_threads: i32,
    error_threads: i32,
    last_ping_age_ns: i64,
    mode: workers::WorkerMode,
}

/// An optional cell: `-` when unset.
fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), T::to_string)
}

impl UtilCmd {
    pub async fn run(self) -> anyhow::Result<()> {
        let api = Api {
            base: format!("http://{}", self.listen),
            listen: self.listen.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            token: home::read_token(),
        };
        let cmd = match self.cmd {
            UtilSub::Worker { cmd } => cmd,
            UtilSub::Sealer { cmd } => return cmd.run(&api).await,
            UtilSub::Mock { cmd } => return cmd.run(&api).await,
        };
        match cmd {
            WorkerSub::Wdpost { cmd } => cmd.run(&api).await,
            WorkerSub::SchedLog {
                worker,
                since,
                json,
            } => sched::sched_log(&api, worker, since, json).await,
            WorkerSub::Drain { name } => {
                api.call(Method::POST, &format!("/workers/{name}/drain"), None)
                    .await?;
                println!("worker {name} is draining: it gets no new sector or job; `util worker list` shows drained once it holds nothing");
                Ok(())
            }
            WorkerSub::Undrain { name } => {
                api.call(Method::POST, &format!("/workers/{name}/undrain"), None)
                    .await?;
                println!("worker {name} is active again");
                Ok(())
            }
            WorkerSub::Limits { worker, set, json } => {
                let path = format!("/workers/{worker}/limits");
                let r = if set.is_empty() {
                    api.call(Method::GET, &path, None).await?
                } else {
                    let changes: serde_json::Map<String, Value> =
                        set.into_iter().map(|(k, v)| (k, json!(v))).collect();
                    api.call(Method::POST, &path, Some(Value::Object(changes)))
                        .await?
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    let r: workers::Limits = decode(&path, r)?;
                    print!("{}", damocles_actors::limits::limits_table(&r.limits));
                }
                Ok(())
            }
            WorkerSub::List { expiration, json } => {
                if json {
                    let list = api.call(Method::GET, "/workers", None).await?;
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    return Ok(());
                }
                let list: Vec<Listed> = api.get("/workers").await?;
                let rows = list
                    .into_iter()
                    .map(|w| {
                        let ns = u64::try_from(w.last_ping_age_ns).unwrap_or(0);
                        let age = Duration::from_nanos(ns);
                        let mut ping = go_duration(age);
                        if age > expiration {
                            ping.push_str(" (!)");
                        }
                        vec![
                            w.name,
                            w.dest,
                            w.threads.to_string(),
                            w.empty_threads.to_string(),
                            w.paused_threads.to_string(),
                            w.error_threads.to_string(),
                            ping,
                            w.mode.name().to_string(),
                        ]
                    })
                    .collect();
                table(
                    // The seed's columns in the seed's order; ours after them.
                    "Name\tDest\tThreads\tEmpty\tPaused\tErrors\tLastPing(with ! if expired)\tMode",
                    rows,
                )
            }
            WorkerSub::Info { worker, json } => {
                let path = format!("/workers/{worker}");
                let info = api.call(Method::GET, &path, None).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&info)?);
                    return Ok(());
                }
                let info: workers::WorkerThreads = decode(&path, info)?;
                let rows = info.threads.iter().map(thread_row).collect();
                table(
                    "Index\tLoc\tSectorID\tPaused\tPausedElapsed\tState\tLastErr",
                    rows,
                )
            }
            WorkerSub::Pause {
                worker,
                index,
                json,
            } => {
                let r = api
                    .call(
                        Method::POST,
                        &format!("/workers/{worker}/threads/{index}/pause"),
                        None,
                    )
                    .await?;
                if json {
                    println!("{r}");
                    return Ok(());
                }
                let r: workers::Paused = decode("pause", r)?;
                if r.paused {
                    println!("thread #{index} of {} paused", r.worker);
                } else {
                    println!("thread #{index} of {} was already paused", r.worker);
                }
                Ok(())
            }
            WorkerSub::Token { cmd } => cmd.run(&api).await,
            WorkerSub::Resume {
                worker,
                index,
                state,
                force,
                json,
            } => {
                let r = api
                    .call(
                        Method::POST,
                        &format!("/workers/{worker}/threads/{index}/resume"),
                        Some(json!({"state": state, "force": force})),
                    )
                    .await?;
                if json {
                    println!("{r}");
                    return Ok(());
                }
                let r: workers::Resumed = decode("resume", r)?;
                match (r.resumed, r.state) {
                    (false, _) => println!(
                        "thread #{index} of {} was not paused: nothing to resume",
                        r.worker
                    ),
                    (true, Some(st)) => {
                        println!("thread #{index} of {} resumed from state {st}", r.worker)
                    }
                    (true, None) => println!("thread #{index} of {} resumed", r.worker),
                }
                Ok(())
            }
            WorkerSub::Remove { name, json } => {
                let r = api
                    .call(Method::DELETE, &format!("/workers/{name}"), None)
                    .await?;
                if json {
                    println!("{r}");
                } else {
                    println!("'{name}' removed");
                }
                Ok(())
            }
        }
    }
}

/// One line of `util worker info`.
fn thread_row(t: &ThreadInfo) -> Vec<String> {
    let paused = matches!(t.thread_state, ThreadState::Paused { .. });
    let elapsed = match t.thread_state {
        ThreadState::Paused { elapsed } => go_duration(Duration::from_secs(elapsed)),
        _ => "-".into(),
    };
    let mut state = match t.job_state.as_str() {
        "" => "Empty".to_string(),
        st => st.to_string(),
    };
    // Why a thread waits (a stage limit, parameters, the disk quota).
    if let ThreadState::Waiting {
        reason: Some(why), ..
    } = &t.thread_state
    {
        state = format!("{state} (waiting: {why})");
    }
    if t.pausing {
        state += " (pausing)";
    }
    vec![
        t.index.to_string(),
        t.location.clone(),
        opt(&t.job_id),
        paused.to_string(),
        elapsed,
        state,
        opt(&t.last_error),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (Duration::from_nanos(2_756_922_465), "2.756922465s"),
            (Duration::from_secs(3), "3s"),
            (Duration::from_secs(13 * 60 + 42), "13m42s"),
            (Duration::from_secs(3723), "1h2m3s"),
            (Duration::ZERO, "0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(63_500), "1m3.5s"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_micros(500), "500µs"),
            (Duration::from_nanos(42), "42ns"),
            (Duration::from_secs(25 * 3600), "25h0m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
    }
}
