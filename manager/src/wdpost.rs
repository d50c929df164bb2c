//! The WindowPoSt job queue as workers see it (`Venus.WdPoSt*`): claim, heartbeat, finish. A
//! returned proof is verified with the real verifier before its job succeeds; an attempt that
//! fails for any reason counts as a try. Refusals carry `NOT_YOURS`, so the worker drops
//! the job instead of retrying.

use std::sync::Arc;

use actix::Addr;
use damocles_actors::wire::jsonrpc::{RpcError, NOT_YOURS, SERVER_ERROR, SERVICE_UNAVAILABLE};
use damocles_actors::wire::processor::WindowPoStOutput;
use damocles_actors::wire::venus_post::{AllocatePoStSpec, AllocatedPoStJob, PoStInput};
use tracing::{info, warn};

use crate::auth::{Authenticator, Caller};
use crate::claim_batcher::{Claim, ClaimBatcher};
use crate::db::wdpost::{split_wire_id, ClaimFilter, Finish, JobRow, JobState};
use crate::db::{self, Db};
use crate::error::db_error;
use crate::sched::Scheduler;

/// Most jobs one `WdPoStAllocateJobs` call may take.
const MAX_CLAIM: u32 = 64;

/// The job id: base58 of the little-endian xxhash64 of the input's JSON, as damocles makes it,
/// so the same input always gives the same id.
pub fn job_id(input_json: &str) -> String {
    let h = xxhash_rust::xxh64::xxh64(input_json.as_bytes(), 0);
    bs58::encode(h.to_le_bytes()).into_string()
}

#[derive(Clone)]
pub struct JobQueue {
    pub db: Db,
    pub sched: Arc<Scheduler>,
    /// Claims go through it, in batches when they come together.
    pub claims: Addr<ClaimBatcher>,
}

fn not_owned(msg: String) -> RpcError {
    RpcError::new(NOT_YOURS, msg)
}

fn input_of(row: &JobRow) -> Result<PoStInput, RpcError> {
    serde_json::from_str(&row.input).map_err(|e| {
        RpcError::new(
            SERVER_ERROR,
            format!("wdpost job {} has an unreadable input: {e}", row.id),
        )
    })
}

/// The failure of an attempt that ends at `at`, after its job's window closed.
fn late(row: &JobRow, at: chrono::NaiveDateTime) -> Option<Finish> {
    let close = row.deadline_close_at.filter(|c| *c <= at)?;
    Some(Finish {
        succeeded: false,
        error: Some(format!(
            "deadline closed: the result came {}s after the window closed at {}",
            (at - close).num_seconds(),
            close.format("%Y-%m-%d %H:%M:%S")
        )),
        output: None,
    })
}

impl JobQueue {
    pub async fn allocate(
        &self,
        spec: AllocatePoStSpec,
        num: u32,
        worker: String,
        thread: Option<u32>,
    ) -> Result<Vec<AllocatedPoStJob>, RpcError> {
        if worker.is_empty() {
            return Err(RpcError::invalid_params(
                "WdPoStAllocateJobs: parameter 2 (worker name) is required",
            ));
        }
        if num > MAX_CLAIM {
            return Err(RpcError::invalid_params(format!(
                "WdPoStAllocateJobs: num {num} is too many; ask for 1 to {MAX_CLAIM}"
            )));
        }
        let filter = ClaimFilter {
            miners: spec.allowed_miners,
            proof_types: spec.allowed_proof_types,
        };
        let claim = Claim {
            filter,
            n: num as usize,
            worker: worker.clone(),
        };
        let rows = self.claims.send(claim).await.map_err(|e| {
            RpcError::new(
                SERVICE_UNAVAILABLE,
                format!("claim batcher unreachable: {e}"),
            )
        })??;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            info!(job = %row.id, worker = %worker, try_num = row.try_num, deadline = row.deadline_idx, "wdpost job claimed");
            self.sched
                .granted(&worker, thread, &format!("wdpost job {}", row.id));
            jobs.push(AllocatedPoStJob {
                input: input_of(&row)?,
                id: row.wire_id(),
            });
        }
        Ok(jobs)
    }

    pub async fn heartbeat(&self, ids: Vec<String>, worker: String) -> Result<(), RpcError> {
        if worker.is_empty() {
            return Err(RpcError::invalid_params(
                "WdPoStHeartbeatJobs: parameter 1 (worker name) is required",
            ));
        }
        let at = self.db.now();
        let refused = self
            .db
            .run(move |c| db::wdpost::heartbeat(c, &ids, &worker, at))
            .await
            .map_err(db_error)?;
        if refused.is_empty() {
            Ok(())
        } else {
            Err(not_owned(refused.join("; ")))
        }
    }

    /// Ends the caller's attempt (`id` is `<id>@<attempt>`, as the claim gave it): the job must
    /// be running that attempt, held by the caller. A caller without a token (damocles
    /// semantics) may finish a running job unless the worker holding it has a token.
    pub async fn finish(
        &self,
        id: String,
        output: Option<WindowPoStOutput>,
        error: String,
        who: &Caller,
        auth: &Arc<Authenticator>,
    ) -> Result<(), RpcError> {
        let wire = id;
        let (id, attempt) = split_wire_id(&wire);
        let (id, attempt) = (id.to_string(), attempt.map(String::from));
        let i = id.clone();
        let worker = who.name().map(String::from);
        let row = self
            .db
            .run(move |c| db::wdpost::get(c, &i))
            .await
            .map_err(db_error)?;
        let holder = row.as_ref().and_then(|r| r.worker_name.clone());
        let owner_ok = match (who, &holder) {
            (Caller::Worker(n), Some(h)) => n == h,
            (Caller::Worker(_), None) => false,
            (Caller::Anonymous, Some(h)) => !auth.has_token(h).await?,
            (Caller::Anonymous, None) => true,
        };
        let in_force = |r: &JobRow| r.attempt.is_some() && r.attempt == attempt;
        let Some(row) = row.filter(|r| r.state == JobState::Running && owner_ok && in_force(r))
        else {
            return Err(self.refusal(&wire, worker).await);
        };
        // A proof handed in after the window closed does not count: not even verified.
        let outcome = match late(&row, self.db.now()) {
            Some(late) => late,
            None => {
                let judged = self.judge(&row, output, error).await?;
                late(&row, self.db.now()).unwrap_or(judged)
            }
        };
        let (succeeded, reason) = (outcome.succeeded, outcome.error.clone());
        let (i, owner, try_num) = (
            id.clone(),
            row.worker_name.clone().unwrap_or_default(),
            row.try_num,
        );
        let attempt = row.attempt.clone().unwrap_or_default();
        let at = self.db.now();
        let (miner, covered) = (row.miner_id as u64, db::wdpost::job_sectors(&row));
        let done = self
            .db
            .run(move |c| {
                db::write_transaction(c, |c| {
                    let done = db::wdpost::finish(c, &i, &owner, &attempt, outcome, at)?;
                    // A verified proof of a faulty sector recovers it, in the same change.
                    if done && succeeded {
                        db::sectors::recover(c, miner, &covered, at)?;
                    }
                    Ok(done)
                })
            })
            .await
            .map_err(db_error)?;
        if !done {
            return Err(self.refusal(&wire, worker).await);
        }
        let owner = row.worker_name.as_deref().unwrap_or("-");
        if succeeded {
            info!(job = %id, worker = %owner, try_num, "wdpost job succeeded: proof verified");
        } else {
            warn!(job = %id, worker = %owner, try_num, error = ?reason, "wdpost job failed");
        }
        Ok(())
    }

    async fn refusal(&self, id: &str, worker: Option<String>) -> RpcError {
        let i = id.to_string();
        match self
            .db
            .run(move |c| db::wdpost::not_owned(c, &i, worker.as_deref()))
            .await
        {
            Ok(msg) => not_owned(msg),
            Err(e) => db_error(e),
        }
    }

    /// What an attempt's result means: a verified proof succeeds, anything else fails.
    async fn judge(
        &self,
        row: &JobRow,
        output: Option<WindowPoStOutput>,
        error: String,
    ) -> Result<Finish, RpcError> {
        let failed = |reason: String| Finish {
            succeeded: false,
            error: Some(reason),
            output: None,
        };
        if !error.is_empty() {
            return Ok(failed(error));
        }
        let Some(out) = output else {
            return Ok(failed(
                "the worker returned neither a proof nor an error".into(),
            ));
        };
        if !out.faults.is_empty() {
            return Ok(failed(format!(
                "got {} fault sectors: {:?}",
                out.faults.len(),
                out.faults
            )));
        }
        let input = input_of(row)?;
        let proofs: Vec<Vec<u8>> = out.proofs.iter().map(|p| p.0.clone()).collect();
        let verdict =
            crate::verify::limited(move || crate::verify::verify_window_post(&input, &proofs))
                .await
                .map_err(|e| RpcError::new(SERVER_ERROR, e.to_string()))?;
        Ok(match verdict {
            Ok(true) => Finish {
                succeeded: true,
                error: None,
                output: serde_json::to_string(&out).ok(),
            },
            Ok(false) => failed("invalid proof".into()),
            Err(e) => failed(format!("cannot verify the proof: {e:#}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_base58_of_little_endian_xxhash64() {
        // xxh64("", seed 0) = 0xef46db3751d8e999, so its little-endian bytes start with 0x99.
        let want = bs58::encode(0xef46_db37_51d8_e999u64.to_le_bytes()).into_string();
        assert_eq!(job_id(""), want);
        assert_eq!(job_id("{\"a\":1}"), job_id("{\"a\":1}"));
        assert_ne!(job_id("{\"a\":1}"), job_id("{\"a\":2}"));
        assert!((10..=11).contains(&job_id("{}").len()), "{}", job_id("{}"));
    }
}
