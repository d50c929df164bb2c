//! `ClaimBatcher`: WindowPoSt claims that arrive while one batch is in the database go
//! together in the next, so that a busy manager makes one claim transaction for many claimers
//! (`db::wdpost::claim_for`) instead of one each. An idle manager claims at once: a batch of
//! one. Each caller is answered with its own jobs, or with the error of its batch.

use std::sync::Arc;

use actix::prelude::*;
use damocles_actors::wire::jsonrpc::{RpcError, SERVICE_UNAVAILABLE};
use tokio::sync::oneshot;

use crate::db::wdpost::{Ask, ClaimFilter, JobRow};
use crate::db::{self, Db};
use crate::error::db_error;
use crate::sched::Scheduler;

/// Most jobs asked for in one batch; the rest wait for the next.
const MAX_BATCH_JOBS: usize = 256;

/// Most claims waiting for a batch; more are answered "busy" at once (retryable).
const MAX_PENDING: usize = 10_000;

type Reply = oneshot::Sender<Result<Vec<JobRow>, RpcError>>;

pub struct ClaimBatcher {
    db: Db,
    sched: Arc<Scheduler>,
    pending: Vec<(Claim, Reply)>,
    claiming: bool,
}

impl ClaimBatcher {
    pub fn new(db: Db, sched: Arc<Scheduler>) -> Self {
        ClaimBatcher {
            db,
            sched,
            pending: Vec::new(),
            claiming: false,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.claiming || self.pending.is_empty() {
            return;
        }
        self.claiming = true;
        let (mut jobs, mut take) = (0, 0);
        for (c, _) in &self.pending {
            if take > 0 && jobs + c.n > MAX_BATCH_JOBS {
                break;
            }
            jobs += c.n;
            take += 1;
        }
        let (claims, replies): (Vec<Claim>, Vec<Reply>) = self.pending.drain(..take).unzip();
        let (db, sched) = (self.db.clone(), self.sched.clone());
        let (at, mode) = (db.now(), db.claim);
        let run = async move {
            let res = db
                .run(move |c| {
                    // A draining worker gets no job: one query for the whole batch.
                    let names: Vec<String> = claims.iter().map(|c| c.worker.clone()).collect();
                    let draining = sched.refuse_those_draining(c, &names, "wdpost job")?;
                    let mut got = vec![Ok(Vec::new()); claims.len()];
                    for (filter, members) in by_filter(&claims) {
                        let asks: Vec<Ask> = members
                            .iter()
                            .map(|&i| Ask {
                                worker: claims[i].worker.clone(),
                                n: if draining.contains(&claims[i].worker) {
                                    0
                                } else {
                                    claims[i].n
                                },
                            })
                            .collect();
                        // One filter's failure is its claimers' alone.
                        match db::wdpost::claim_for(c, mode, filter, &asks, at) {
                            Ok(lists) => {
                                for (&i, list) in members.iter().zip(lists) {
                                    got[i] = Ok(list);
                                }
                            }
                            Err(e) => {
                                let e = db_error(e);
                                for &i in &members {
                                    got[i] = Err(e.clone());
                                }
                            }
                        }
                    }
                    Ok(got)
                })
                .await;
            (replies, res)
        };
        ctx.spawn(run.into_actor(self).map(|(replies, res), act, ctx| {
            match res {
                Ok(got) => {
                    for (tx, r) in replies.into_iter().zip(got) {
                        let _ = tx.send(r);
                    }
                }
                Err(e) => {
                    let e = db_error(e);
                    for tx in replies {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
            act.claiming = false;
            act.flush(ctx);
        }));
    }
}

/// The batch's claims grouped by filter, in order of first appearance: each group is one
/// `claim_for`.
fn by_filter(claims: &[Claim]) -> Vec<(&ClaimFilter, Vec<usize>)> {
    let mut groups: Vec<(&ClaimFilter, Vec<usize>)> = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        match groups.iter_mut().find(|(f, _)| **f == c.filter) {
            Some((_, members)) => members.push(i),
            None => groups.push((&c.filter, vec![i])),
        }
    }
    groups
}

impl Actor for ClaimBatcher {
    type Context = Context<Self>;
}

/// Up to `n` ready jobs for `worker` that pass `filter`; resolves with the claimed rows.
#[derive(Message)]
#[rtype(result = "Result<Vec<JobRow>, RpcError>")]
pub struct Claim {
    pub filter: ClaimFilter,
    pub n: usize,
    pub worker: String,
}

impl Handler<Claim> for ClaimBatcher {
    type Result = ResponseFuture<Result<Vec<JobRow>, RpcError>>;

    fn handle(&mut self, msg: Claim, ctx: &mut Self::Context) -> Self::Result {
        if self.pending.len() >= MAX_PENDING {
            return Box::pin(async {
                Err(RpcError::new(
                    SERVICE_UNAVAILABLE,
                    format!("busy: {MAX_PENDING} claims wait for the database; ask again later"),
                ))
            });
        }
        let (tx, rx) = oneshot::channel();
        self.pending.push((msg, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(RpcError::new(SERVICE_UNAVAILABLE, "claim batcher stopped"))
            })
        })
    }
}
