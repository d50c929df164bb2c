//! `HeartbeatWriter`: turns many `WorkerPing`s into few SQL statements. Pings that arrive while
//! batches are being written (one at a time on SQLite, two on MySQL) wait for the next batch;
//! each ping's caller is answered when its batch is committed (or with the database error, so
//! the worker retries at its next ping).
//! A batch the database refuses for what it holds (not for being down) is written again one
//! ping at a time, so only a bad ping is refused. While a write hangs, at most `MAX_PENDING`
//! pings wait; later ones are answered "busy" at once and the workers ping again later.

use std::collections::HashMap;

use actix::prelude::*;
use damocles_actors::wire::venus::WorkerInfo;
use tokio::sync::oneshot;
use tracing::warn;

use damocles_actors::wire::jsonrpc::{RpcError, SERVER_ERROR, SERVICE_UNAVAILABLE};

use crate::db::{self, Db, DbError};

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 512;

/// Most pings waiting for a batch; more are refused as busy (retryable).
pub const MAX_PENDING: usize = 20_000;

pub struct HeartbeatWriter {
    db: Db,
    /// Pings waiting for the next batch, with the channel that answers each caller.
    pending: Vec<(WorkerInfo, oneshot::Sender<Result<(), RpcError>>)>,
    /// Batches in the database now.
    writing: usize,
    /// At most this many at once: on MySQL a batch fills while the last one commits (rows are
    /// written in name order, so two batches never wait on each other in a cycle); SQLite
    /// writes one transaction at a time anyway.
    max_writing: usize,
}

impl HeartbeatWriter {
    pub fn new(db: Db) -> Self {
        let max_writing = if db.backend == "sqlite" { 1 } else { 2 };
        HeartbeatWriter {
            db,
            pending: Vec::new(),
            writing: 0,
            max_writing,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing >= self.max_writing || self.pending.is_empty() {
            return;
        }
        self.writing += 1;
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<_> = self.pending.drain(..take).collect();
        // Several pings of one worker in one batch: the last one wins.
        let mut latest: HashMap<String, WorkerInfo> = HashMap::new();
        let mut waiters = Vec::with_capacity(batch.len());
        for (info, tx) in batch {
            waiters.push((info.name.clone(), tx));
            latest.insert(info.name.clone(), info);
        }
        let mut rows: Vec<WorkerInfo> = latest.into_values().collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let db = self.db.clone();
        let write = async move { write_batch(&db, rows).await };
        ctx.spawn(write.into_actor(self).map(move |results, act, ctx| {
            for (name, tx) in waiters {
                let res = match &results {
                    Outcome::All(r) => r.clone(),
                    Outcome::Each(by_name) => by_name.get(&name).cloned().unwrap_or_else(|| {
                        Err(RpcError::new(SERVER_ERROR, "ping lost in its batch"))
                    }),
                };
                let _ = tx.send(res);
            }
            act.writing -= 1;
            act.flush(ctx);
        }));
    }
}

/// A ping the database did not take: "try again" when it is down, a server error (a value that
/// `intake` let through but the database refused) otherwise.
fn refusal(e: DbError) -> RpcError {
    let code = match e {
        DbError::Unavailable(_) => SERVICE_UNAVAILABLE,
        _ => SERVER_ERROR,
    };
    RpcError::new(code, e.to_string())
}

/// How a batch went: one answer for every ping, or one per worker.
enum Outcome {
    All(Result<(), RpcError>),
    Each(HashMap<String, Result<(), RpcError>>),
}

/// Writes `rows` in one transaction; if the database refuses them for what they hold, writes
/// each alone so that only the bad one is refused.
async fn write_batch(db: &Db, rows: Vec<WorkerInfo>) -> Outcome {
    let at = db::now();
    let single = rows.len() == 1;
    let (rows, res) = db
        .run(move |c| {
            let res = db::workers::upsert_pings(c, &rows, at);
            Ok((rows, res))
        })
        .await
        .unwrap_or_else(|e| (Vec::new(), Err(e)));
    match res {
        Ok(()) => Outcome::All(Ok(())),
        Err(e @ DbError::Unavailable(_)) => {
            warn!(error = %e, "cannot write heartbeats");
            Outcome::All(Err(refusal(e)))
        }
        Err(e) if single || rows.is_empty() => {
            warn!(error = %e, "cannot write heartbeats");
            Outcome::All(Err(refusal(e)))
        }
        Err(e) => {
            warn!(error = %e, pings = rows.len(), "a batch of heartbeats was refused; writing them one by one");
            let each = db
                .run(move |c| {
                    Ok(rows
                        .iter()
                        .map(|r| {
                            let res = db::workers::upsert_pings(c, std::slice::from_ref(r), at);
                            if let Err(e) = &res {
                                warn!(worker = %r.name, error = %e, "heartbeat refused");
                            }
                            (r.name.clone(), res.map_err(refusal))
                        })
                        .collect())
                })
                .await;
            match each {
                Ok(by_name) => Outcome::Each(by_name),
                Err(e) => Outcome::All(Err(refusal(e))),
            }
        }
    }
}

impl Actor for HeartbeatWriter {
    type Context = Context<Self>;
}

/// One ping to record; resolves once it is in the database.
#[derive(Message)]
#[rtype(result = "Result<(), RpcError>")]
pub struct Ping(pub WorkerInfo);

impl Handler<Ping> for HeartbeatWriter {
    type Result = ResponseFuture<Result<(), RpcError>>;

    fn handle(&mut self, msg: Ping, ctx: &mut Self::Context) -> Self::Result {
        if self.pending.len() >= MAX_PENDING {
            return Box::pin(async {
                Err(RpcError::new(
                    SERVICE_UNAVAILABLE,
                    format!(
                        "busy: {MAX_PENDING} heartbeats wait for the database; ping again later"
                    ),
                ))
            });
        }
        let (tx, rx) = oneshot::channel();
        self.pending.push((msg.0, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(RpcError::new(
                    SERVICE_UNAVAILABLE,
                    "heartbeat writer stopped",
                ))
            })
        })
    }
}
