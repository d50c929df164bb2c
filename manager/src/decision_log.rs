//! `DecisionLog`: writes the scheduler's decisions to `sched_log` in batches, off the path of the
//! call that made them. A grant no longer waits for an insert of its own (that insert was a
//! quarter of a WindowPoSt claim's time); its row follows within a database round trip, in the
//! order the decisions were made, many rows per statement. While the database is down the rows
//! wait and are written when it is back; beyond `MAX_PENDING` the oldest are dropped and
//! counted, so a long outage cannot grow the manager's memory. Rows still waiting when the
//! manager stops are lost: the log explains decisions, it does not make them.

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;
use tracing::warn;

use crate::db::sched::Decision;
use crate::db::{Db, DbError};

/// Most rows written in one batch.
const MAX_BATCH: usize = 2_000;
/// Most rows waiting for the database.
const MAX_PENDING: usize = 100_000;
/// How long to wait before writing again after the database was unavailable.
const RETRY: Duration = Duration::from_secs(1);

pub struct DecisionLog {
    db: Db,
    pending: VecDeque<Decision>,
    /// A batch is being written, or a retry is due: flushes wait for it.
    busy: bool,
    /// Rows dropped because too many were waiting.
    dropped: u64,
}

impl DecisionLog {
    pub fn new(db: Db) -> Self {
        DecisionLog {
            db,
            pending: VecDeque::new(),
            busy: false,
            dropped: 0,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.pending.is_empty() {
            return;
        }
        self.busy = true;
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<Decision> = self.pending.drain(..take).collect();
        let db = self.db.clone();
        let write = async move {
            let rows = batch.clone();
            let res = db.run(move |c| crate::db::sched::record(c, &rows)).await;
            (batch, res)
        };
        ctx.spawn(write.into_actor(self).map(|(batch, res), act, ctx| match res {
            Ok(()) => {
                act.busy = false;
                act.flush(ctx);
            }
            Err(e @ DbError::Unavailable(_)) => {
                warn!(error = %e, rows = batch.len(), "cannot write the decision log; trying again");
                for d in batch.into_iter().rev() {
                    act.pending.push_front(d);
                }
                act.trim();
                ctx.run_later(RETRY, |act, ctx| {
                    act.busy = false;
                    act.flush(ctx);
                });
            }
            Err(e) => {
                // Rows the database refuses for what they hold will not be taken later either.
                warn!(error = %e, rows = batch.len(), "the database refused decision log rows");
                act.busy = false;
                act.flush(ctx);
            }
        }));
    }

    /// Drops the oldest rows beyond `MAX_PENDING`.
    fn trim(&mut self) {
        let over = self.pending.len().saturating_sub(MAX_PENDING);
        if over > 0 {
            self.pending.drain(..over);
            // One line per thousand dropped: an outage must not flood the log either.
            if (self.dropped + over as u64) / 1000 > self.dropped / 1000 || self.dropped == 0 {
                warn!(
                    dropped = self.dropped + over as u64,
                    "decision log rows dropped while the database was unavailable"
                );
            }
            self.dropped += over as u64;
        }
    }
}

impl Actor for DecisionLog {
    type Context = Context<Self>;
}

/// A decision to write; nobody waits for it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub Decision);

impl Handler<Record> for DecisionLog {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Self::Context) {
        self.pending.push_back(msg.0);
        self.trim();
        self.flush(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    #[actix_rt::test]
    async fn decisions_reach_the_table_in_order_in_few_statements() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = db::temp(&dir);
        let log = DecisionLog::new(db.clone()).start();
        let n: u32 = 5_000;
        let since = db::now() - chrono::Duration::hours(1);
        for i in 0..n {
            log.do_send(Record(Decision {
                at: db::now(),
                worker: format!("w{}", i % 7),
                thread: i.is_multiple_of(2).then_some(i % 64),
                decision: "granted",
                work: format!("wdpost job {i}"),
                reason: String::new(),
            }));
        }
        let mut rows = Vec::new();
        for _ in 0..200 {
            rows = db
                .run(move |c| db::sched::list(c, None, since, 10 * n as i64))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if rows.len() >= n as usize {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(rows.len(), n as usize);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(
                r.work,
                format!("wdpost job {i}"),
                "in the order they were made"
            );
            assert_eq!(
                r.thread_index,
                i.is_multiple_of(2).then_some((i % 64) as i32)
            );
        }
    }
}
