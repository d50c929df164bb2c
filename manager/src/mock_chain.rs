//! The mock chain behind `Venus.*`: sector numbers from 1 (kept in the database), a random
//! ticket and seed per sector, messages that land at once, and PoRep proofs verified with the
//! real verifier before they are accepted. Everything lives in the database, so a restarted
//! manager carries on where it stopped.

use base64::Engine;
use damocles_actors::wire::hex;
use damocles_actors::wire::jsonrpc::{RpcError, NOT_YOURS, SECTOR_STATE_NOT_FOUND, SERVER_ERROR};
use damocles_actors::wire::venus::{
    prover_id, AllocateSectorSpec, AllocatedSector, OnChainState, PollStateResp,
    PreCommitOnChainInfo, ProofOnChainInfo, ReportStateReq, SectorId, SectorStateResp, Seed,
    SubmitResp, SubmitResult, Ticket, WaitSeedResp,
};
use rand::RngCore;
use tracing::{info, warn};

use std::sync::Arc;

pub mod market;
mod rebuild;
mod stores;
pub mod unseal;

use crate::auth::Asker;
use crate::auth::Caller;
use crate::config::PersistStore;
use crate::db::sectors::{Change, SectorRow};
use crate::db::{self, Db};
use crate::error::db_error;
use crate::sched::Scheduler;

#[derive(Clone)]
pub struct MockChain {
    pub db: Db,
    pub miner: u64,
    pub proof_type: u64,
    /// Persist stores from the config; empty in mock mode means "accept any name".
    pub stores: Vec<PersistStore>,
    pub mock: bool,
    /// WindowPoSt deadlines per proving period; a proven sector goes to `number % deadlines`.
    pub deadlines: u32,
    /// Sectors per WindowPoSt partition of this sector size.
    pub partition_sectors: usize,
    pub sched: Arc<Scheduler>,
}

/// The state of an aborted sector.
pub const ABORTED: &str = "Aborted";

/// A value set a moment ago is gone: the row was removed meanwhile.
fn lost(what: &str, id: SectorId) -> RpcError {
    RpcError::new(
        SECTOR_STATE_NOT_FOUND,
        format!("sector {id} lost its {what} while it was assigned (removed meanwhile?)"),
    )
}

fn random32() -> Vec<u8> {
    let mut b = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    // Keep it a valid field element wherever it is used as one.
    b[31] &= 0x3f;
    b
}

pub(crate) fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

pub(crate) fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

/// A sector's holder or a caller, in words.
fn describe(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("worker {n}"),
        None => "a caller without a token".into(),
    }
}

impl MockChain {
    /// The caller's sector (`sector_of`), refused once it was aborted (by an operator, or by
    /// the worker itself): a thread still working on it then aborts too.
    async fn sector(&self, id: SectorId, who: &Caller) -> Result<SectorRow, RpcError> {
        let row = self.sector_of(id, who).await?;
        if row.state == ABORTED {
            return Err(RpcError::new(
                SECTOR_STATE_NOT_FOUND,
                format!(
                    "sector {id} was aborted: {}",
                    row.abort_reason.as_deref().unwrap_or("-")
                ),
            ));
        }
        Ok(row)
    }

    /// The sector's row in any state, when `who` may act on it: the worker whose token
    /// allocated it, or (a sector given to a caller without a token) any caller without a token
    /// and the worker that reported it. A refusal touches nothing. The owner never changes, so
    /// checking it before a change is enough.
    async fn sector_of(&self, id: SectorId, who: &Caller) -> Result<SectorRow, RpcError> {
        let row = self
            .db
            .run(move |c| db::sectors::get(c, id.miner, id.number))
            .await
            .map_err(db_error)?
            .ok_or_else(|| {
                RpcError::new(SECTOR_STATE_NOT_FOUND, format!("sector {id} not found"))
            })?;
        let allowed = match (row.owner.as_deref(), who) {
            (Some(owner), Caller::Worker(name)) => owner == name,
            (Some(_), Caller::Anonymous) => false,
            (None, Caller::Anonymous) => true,
            // Given to a caller without a token (or before tokens existed): the worker that
            // reported it may go on with it once it has a token, so an upgrade loses no work.
            (None, Caller::Worker(name)) => row.worker_name.as_deref() == Some(name.as_str()),
        };
        // A sector in snap-up is also the snap-up thread's to report on.
        let snapping = matches!(
            row.snap_state.as_deref(),
            Some(db::snap::ALLOCATED | db::snap::DONE)
        ) && row.snap_owner.as_deref() == who.name();
        // A sector being rebuilt is the rebuild thread's to report on.
        let allowed = allowed
            || snapping
            || self.rebuilding(id).await?.as_ref() == Some(&who.name().map(String::from));
        if !allowed {
            return Err(RpcError::new(
                NOT_YOURS,
                format!(
                    "sector {id} is not this caller's: it was given to {}, and this call comes from {}",
                    describe(row.owner.as_deref()),
                    describe(who.name())
                ),
            ));
        }
        Ok(row)
    }

    /// Stores a ticket or a seed unless the sector has one already (a retry, a second manager):
    /// the caller reads back what the row holds, so every caller sees the same value.
    async fn set_once(&self, id: SectorId, change: Change) -> Result<(), RpcError> {
        self.db
            .run(move |c| db::sectors::update(c, id.miner, id.number, change, db::now()))
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn change(&self, id: SectorId, change: Change) -> Result<(), RpcError> {
        let found = self
            .db
            .run(move |c| db::sectors::update(c, id.miner, id.number, change, db::now()))
            .await
            .map_err(db_error)?;
        if found {
            Ok(())
        } else {
            Err(RpcError::new(
                SECTOR_STATE_NOT_FOUND,
                format!("sector {id} not found"),
            ))
        }
    }

    /// True when a thread asking with `spec` may take this chain's sectors (its miner and seal
    /// proof are allowed, or nothing is said).
    fn serves(&self, spec: &AllocateSectorSpec) -> bool {
        let miner_ok = spec
            .allowed_miners
            .as_ref()
            .is_none_or(|m| m.is_empty() || m.contains(&self.miner));
        let proof_ok = spec
            .allowed_proof_types
            .as_ref()
            .is_none_or(|p| p.is_empty() || p.contains(&self.proof_type));
        miner_ok && proof_ok
    }

    /// A new sector for the asking worker's thread, owned by that worker from now on.
    pub async fn allocate_sector(
        &self,
        spec: AllocateSectorSpec,
        asker: &Asker,
    ) -> Result<Option<AllocatedSector>, RpcError> {
        let owner = asker.caller.name().map(String::from);
        // The decision log names a caller without a token "-".
        let worker = owner.clone().unwrap_or_else(|| "-".into());
        let thread = asker.thread;
        if !self.serves(&spec) {
            return Ok(None);
        }
        if self
            .sched
            .sector_refusal(&worker)
            .await
            .map_err(db_error)?
            .is_some()
        {
            return Ok(None);
        }
        let (miner, proof) = (self.miner, self.proof_type);
        let number = match self
            .db
            .run(move |c| db::sectors::allocate(c, miner, proof, owner.as_deref(), db::now()))
            .await
        {
            Ok(n) => n,
            Err(e) => {
                self.sched.return_pledge(&worker).await;
                return Err(db_error(e));
            }
        };
        let id = SectorId { miner, number };
        info!(sector = %id, worker = %worker, "sector allocated");
        self.sched.granted(&worker, thread, &id.to_string());
        Ok(Some(AllocatedSector {
            id,
            proof_type: proof,
        }))
    }

    pub async fn assign_ticket(&self, id: SectorId, who: &Caller) -> Result<Ticket, RpcError> {
        let row = self.sector(id, who).await?;
        let ticket = match row.ticket {
            Some(t) => t,
            None => {
                self.set_once(id, Change::Ticket(b64(&random32()))).await?;
                let row = self.sector(id, who).await?;
                row.ticket.ok_or_else(|| lost("ticket", id))?
            }
        };
        Ok(Ticket {
            ticket: unb64(&ticket),
            epoch: 0,
        })
    }

    pub async fn submit_pre_commit(
        &self,
        sector: AllocatedSector,
        info: PreCommitOnChainInfo,
        reset: bool,
        who: &Caller,
    ) -> Result<SubmitResp, RpcError> {
        let row = self.sector(sector.id, who).await?;
        if let Some(why) = self.comm_d_refusal(sector.id, info.comm_d).await? {
            warn!(sector = %sector.id, reason = %why, "pre-commit refused");
            return Ok(SubmitResp {
                res: SubmitResult::Rejected as u64,
                desc: Some(why),
            });
        }
        let comm_r = hex::encode(&info.comm_r);
        let res = match row.comm_r {
            Some(existing) if existing == comm_r => SubmitResult::DuplicateSubmit,
            Some(_) if !reset => SubmitResult::MismatchedSubmission,
            _ => SubmitResult::Accepted,
        };
        if res != SubmitResult::MismatchedSubmission {
            self.change(
                sector.id,
                Change::PreCommit {
                    comm_r,
                    comm_d: hex::encode(&info.comm_d),
                },
            )
            .await?;
        }
        Ok(SubmitResp {
            res: res as u64,
            desc: None,
        })
    }

    pub async fn poll_pre_commit(
        &self,
        id: SectorId,
        who: &Caller,
    ) -> Result<PollStateResp, RpcError> {
        let row = self.sector(id, who).await?;
        let state = if row.precommit_state.as_deref() == Some("Landed") {
            OnChainState::Landed
        } else {
            OnChainState::NotFound
        };
        Ok(PollStateResp {
            state: state as u64,
            desc: None,
        })
    }

    /// The sector's files are in store `instance`: its reservation there is released.
    pub async fn submit_persisted(
        &self,
        id: SectorId,
        instance: String,
        upgrade: bool,
        who: &Caller,
    ) -> Result<bool, RpcError> {
        self.sector(id, who).await?;
        if self.store_info(instance.clone()).await?.is_none() {
            return Ok(false);
        }
        if self.rebuilding(id).await?.is_some() {
            return self.rebuilt(id, instance, upgrade).await;
        }
        self.change(id, Change::Persisted(instance)).await?;
        self.release(id).await?;
        Ok(true)
    }

    pub async fn wait_seed(&self, id: SectorId, who: &Caller) -> Result<WaitSeedResp, RpcError> {
        let row = self.sector(id, who).await?;
        let seed = match row.seed {
            Some(s) => s,
            None => {
                self.set_once(id, Change::Seed(b64(&random32()))).await?;
                let row = self.sector(id, who).await?;
                row.seed.ok_or_else(|| lost("seed", id))?
            }
        };
        Ok(WaitSeedResp {
            should_wait: false,
            delay: 0,
            seed: Some(Seed {
                seed: unb64(&seed),
                epoch: 0,
            }),
        })
    }

    /// Verifies the proof with the real verifier: an invalid proof is Rejected.
    pub async fn submit_proof(
        &self,
        id: SectorId,
        proof: ProofOnChainInfo,
        _reset: bool,
        who: &Caller,
    ) -> Result<SubmitResp, RpcError> {
        let row = self.sector(id, who).await?;
        let inputs = (|| {
            Some((
                hex::decode32(row.comm_r.as_deref()?)?,
                hex::decode32(row.comm_d.as_deref()?)?,
                <[u8; 32]>::try_from(unb64(row.ticket.as_deref()?).as_slice()).ok()?,
                <[u8; 32]>::try_from(unb64(row.seed.as_deref()?).as_slice()).ok()?,
            ))
        })();
        let Some((comm_r, comm_d, ticket, seed)) = inputs else {
            return Ok(SubmitResp {
                res: SubmitResult::Rejected as u64,
                desc: Some(format!(
                    "sector {id} has no pre-commit, ticket or seed on chain"
                )),
            });
        };
        let proof_type = row.proof_type as u64;
        let bytes = proof.proof.clone();
        let verified = crate::verify::limited(move || {
            crate::verify::verify_seal(
                proof_type,
                comm_r,
                comm_d,
                prover_id(id.miner),
                id.number,
                ticket,
                seed,
                &bytes,
            )
        })
        .await
        .map_err(|e| RpcError::new(SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            RpcError::new(
                SERVER_ERROR,
                format!("cannot verify the proof of {id}: {e}"),
            )
        })?;
        let placement = verified.then(|| self.placement(id.number));
        self.change(
            id,
            Change::Proof {
                proof: b64(&proof.proof),
                accepted: verified,
                placement,
            },
        )
        .await?;
        if verified {
            info!(sector = %id, "PoRep proof verified");
            self.db
                .run(move |c| db::deals::activate(c, id.miner, id.number, db::now()))
                .await
                .map_err(db_error)?;
            Ok(SubmitResp {
                res: SubmitResult::Accepted as u64,
                desc: None,
            })
        } else {
            warn!(sector = %id, "invalid PoRep proof rejected");
            Ok(SubmitResp {
                res: SubmitResult::Rejected as u64,
                desc: Some("invalid proof".into()),
            })
        }
    }

    /// The deadline and partition of a proven sector: sectors are dealt round the deadlines,
    /// and fill each deadline's partitions in number order.
    pub fn placement(&self, number: u64) -> (i32, i32) {
        let deadlines = u64::from(self.deadlines.max(1));
        let per_partition = self.partition_sectors.max(1) as u64;
        (
            (number % deadlines) as i32,
            (number / deadlines / per_partition) as i32,
        )
    }

    pub async fn poll_proof(&self, id: SectorId, who: &Caller) -> Result<PollStateResp, RpcError> {
        let row = self.sector(id, who).await?;
        let state = match row.proof_state.as_deref() {
            Some("Landed") => OnChainState::Landed,
            Some("Rejected") => OnChainState::ShouldAbort,
            _ => OnChainState::NotFound,
        };
        Ok(PollStateResp {
            state: state as u64,
            desc: row
                .proof_state
                .filter(|s| s == "Rejected")
                .map(|_| "proof rejected".into()),
        })
    }

    pub async fn report_state(
        &self,
        id: SectorId,
        req: ReportStateReq,
        who: &Caller,
    ) -> Result<Option<SectorStateResp>, RpcError> {
        let row = self.sector_of(id, who).await?;
        if row.state == ABORTED {
            // A late report of a thread that has not heard of the abort yet changes nothing.
            return Ok(Some(SectorStateResp {
                id,
                ..Default::default()
            }));
        }
        // A worker with a token is named by it, whatever the report says.
        let worker = who.name().unwrap_or(&req.worker.instance).to_string();
        self.change(
            id,
            Change::Report {
                state: req.state_change.next,
                worker,
                location: req.worker.location,
            },
        )
        .await?;
        Ok(Some(SectorStateResp {
            id,
            ..Default::default()
        }))
    }

    pub async fn report_finalized(&self, id: SectorId, who: &Caller) -> Result<(), RpcError> {
        self.sector(id, who).await?;
        info!(sector = %id, "sector finalized");
        self.change(id, Change::Finalized).await?;
        self.release(id).await
    }

    pub async fn report_aborted(
        &self,
        id: SectorId,
        reason: String,
        who: &Caller,
    ) -> Result<(), RpcError> {
        let row = self.sector_of(id, who).await?;
        if row.state == ABORTED {
            // Aborted already (an operator did, and now the thread has followed).
            return self.release(id).await;
        }
        if self.rebuilding(id).await?.is_some() {
            // A rebuild given up: the sector waits for another rebuild thread.
            warn!(sector = %id, %reason, "rebuild aborted; queued again");
            self.db
                .run(move |c| db::rebuild::release(c, id.miner, id.number, db::now()))
                .await
                .map_err(db_error)?;
            return self.release(id).await;
        }
        if row.snap_state.as_deref() == Some(db::snap::ALLOCATED) {
            // A snap-up given up: the proven sector stays, a candidate again.
            warn!(sector = %id, %reason, "snap-up aborted");
            self.db
                .run(move |c| db::snap::release(c, id.miner, id.number, db::now()))
                .await
                .map_err(db_error)?;
            return self.release(id).await;
        }
        if row.proof_state.as_deref() == Some("Landed") {
            // A proven sector is never aborted by a worker (a late report of a finished thread).
            warn!(sector = %id, %reason, "abort of a proven sector ignored");
            return Ok(());
        }
        warn!(sector = %id, %reason, "sector aborted");
        self.change(id, Change::Aborted(reason)).await?;
        self.db
            .run(move |c| db::deals::release(c, id.miner, id.number, db::now()))
            .await
            .map_err(db_error)?;
        self.release(id).await
    }
}
