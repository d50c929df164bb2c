//! `HeartbeatWriter`: turns many `WorkerPing`s into few SQL statements. Pings that arrive while
//! a batch is being written wait for the next batch; each ping's caller is answered when its
//! batch is committed (or with the database error, so the worker retries at its next ping).

use std::collections::HashMap;

use actix::prelude::*;
use damocles_actors::wire::venus::WorkerInfo;
use tokio::sync::oneshot;
use tracing::warn;

use crate::db::{self, Db, DbError};

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 512;

pub struct HeartbeatWriter {
    db: Db,
    /// Pings waiting for the next batch, with the channel that answers each caller.
    pending: Vec<(WorkerInfo, oneshot::Sender<Result<(), String>>)>,
    writing: bool,
}

impl HeartbeatWriter {
    pub fn new(db: Db) -> Self {
        HeartbeatWriter {
            db,
            pending: Vec::new(),
            writing: false,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.pending.is_empty() {
            return;
        }
        self.writing = true;
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<_> = self.pending.drain(..take).collect();
        // Several pings of one worker in one batch: the last one wins.
        let mut latest: HashMap<String, WorkerInfo> = HashMap::new();
        let mut waiters = Vec::with_capacity(batch.len());
        for (info, tx) in batch {
            waiters.push(tx);
            latest.insert(info.name.clone(), info);
        }
        let mut rows: Vec<WorkerInfo> = latest.into_values().collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let db = self.db.clone();
        let write = async move {
            db.run(move |c| db::workers::upsert_pings(c, &rows, db::now()))
                .await
        };
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |res: Result<(), DbError>, act, ctx| {
                    let res = res.map_err(|e| {
                        warn!(error = %e, "cannot write heartbeats");
                        e.to_string()
                    });
                    for tx in waiters {
                        let _ = tx.send(res.clone());
                    }
                    act.writing = false;
                    act.flush(ctx);
                }),
        );
    }
}

impl Actor for HeartbeatWriter {
    type Context = Context<Self>;
}

/// One ping to record; resolves once it is in the database.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Ping(pub WorkerInfo);

impl Handler<Ping> for HeartbeatWriter {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: Ping, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.pending.push((msg.0, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("heartbeat writer stopped".into()))
        })
    }
}
