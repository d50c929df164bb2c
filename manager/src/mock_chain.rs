//! The mock chain behind `Venus.*`: sector numbers from 1 (kept in the database), a random
//! ticket and seed per sector, messages that land at once, and PoRep proofs verified with the
//! real verifier before they are accepted. Everything lives in the database, so a restarted
//! manager carries on where it stopped.

use base64::Engine;
use damocles_actors::size::parse_size;
use damocles_actors::wire::jsonrpc::{
    RpcError, SECTOR_STATE_NOT_FOUND, SERVER_ERROR, SERVICE_UNAVAILABLE,
};
use damocles_actors::wire::venus::{
    prover_id, seal_proof, AllocateSectorSpec, AllocatedSector, OnChainState, PollStateResp,
    PreCommitOnChainInfo, ProofOnChainInfo, ReportStateReq, SectorId, SectorStateResp, Seed,
    StoreBasicInfo, SubmitResp, SubmitResult, Ticket, WaitSeedResp,
};
use rand::RngCore;
use tracing::{info, warn};

use std::sync::Arc;

use crate::config::PersistStore;
use crate::db::sectors::{Change, SectorRow};
use crate::db::{self, Db, DbError};
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

/// The V1_1 seal proof for a `--sector-size`, or an error listing the valid sizes.
pub fn proof_for_size(size: &str) -> Result<u64, String> {
    let bytes = parse_size(size)?;
    seal_proof::for_size(bytes).ok_or_else(|| {
        format!("{size:?} is not a sector size; valid sizes: 2KiB, 8MiB, 512MiB, 32GiB, 64GiB")
    })
}

pub fn db_error(e: DbError) -> RpcError {
    match e {
        DbError::Unavailable(_) => RpcError::new(SERVICE_UNAVAILABLE, e.to_string()),
        _ => RpcError::new(SERVER_ERROR, e.to_string()),
    }
}

fn random32() -> Vec<u8> {
    let mut b = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    // Keep it a valid field element wherever it is used as one.
    b[31] &= 0x3f;
    b
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

pub fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl MockChain {
    async fn sector(&self, id: SectorId) -> Result<SectorRow, RpcError> {
        self.db
            .run(move |c| db::sectors::get(c, id.miner, id.number))
            .await
            .map_err(db_error)?
            .ok_or_else(|| RpcError::new(SECTOR_STATE_NOT_FOUND, format!("sector {id} not found")))
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

    /// A new sector for `worker`'s thread `thread` (our extension: damocles workers do not say
    /// who asks).
    pub async fn allocate_sector(
        &self,
        spec: AllocateSectorSpec,
        worker: String,
        thread: Option<u32>,
    ) -> Result<Option<AllocatedSector>, RpcError> {
        let miner_ok = spec
            .allowed_miners
            .as_ref()
            .is_none_or(|m| m.is_empty() || m.contains(&self.miner));
        let proof_ok = spec
            .allowed_proof_types
            .as_ref()
            .is_none_or(|p| p.is_empty() || p.contains(&self.proof_type));
        if !miner_ok || !proof_ok {
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
            .run(move |c| db::sectors::allocate(c, miner, proof, db::now()))
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
        self.sched.granted(&worker, thread, &id.to_string()).await;
        Ok(Some(AllocatedSector {
            id,
            proof_type: proof,
        }))
    }

    pub async fn assign_ticket(&self, id: SectorId) -> Result<Ticket, RpcError> {
        let row = self.sector(id).await?;
        let ticket = match row.ticket {
            Some(t) => unb64(&t),
            None => {
                let t = random32();
                self.change(id, Change::Ticket(b64(&t))).await?;
                t
            }
        };
        Ok(Ticket { ticket, epoch: 0 })
    }

    pub async fn submit_pre_commit(
        &self,
        sector: AllocatedSector,
        info: PreCommitOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, RpcError> {
        let row = self.sector(sector.id).await?;
        let comm_r = hex(&info.comm_r);
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
                    comm_d: hex(&info.comm_d),
                },
            )
            .await?;
        }
        Ok(SubmitResp {
            res: res as u64,
            desc: None,
        })
    }

    pub async fn poll_pre_commit(&self, id: SectorId) -> Result<PollStateResp, RpcError> {
        let row = self.sector(id).await?;
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

    pub async fn submit_persisted(&self, id: SectorId, instance: String) -> Result<bool, RpcError> {
        self.sector(id).await?;
        if self.store_info(instance.clone()).await?.is_none() {
            return Ok(false);
        }
        self.change(id, Change::Persisted(instance)).await?;
        Ok(true)
    }

    pub async fn wait_seed(&self, id: SectorId) -> Result<WaitSeedResp, RpcError> {
        let row = self.sector(id).await?;
        let seed = match row.seed {
            Some(s) => unb64(&s),
            None => {
                let s = random32();
                self.change(id, Change::Seed(b64(&s))).await?;
                s
            }
        };
        Ok(WaitSeedResp {
            should_wait: false,
            delay: 0,
            seed: Some(Seed { seed, epoch: 0 }),
        })
    }

    /// Verifies the proof with the real verifier: an invalid proof is Rejected.
    pub async fn submit_proof(
        &self,
        id: SectorId,
        proof: ProofOnChainInfo,
        _reset: bool,
    ) -> Result<SubmitResp, RpcError> {
        let row = self.sector(id).await?;
        let inputs = (|| {
            Some((
                unhex32(row.comm_r.as_deref()?)?,
                unhex32(row.comm_d.as_deref()?)?,
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
        let verified = tokio::task::spawn_blocking(move || {
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
    fn placement(&self, number: u64) -> (i32, i32) {
        let deadlines = u64::from(self.deadlines.max(1));
        let per_partition = self.partition_sectors.max(1) as u64;
        (
            (number % deadlines) as i32,
            (number / deadlines / per_partition) as i32,
        )
    }

    pub async fn poll_proof(&self, id: SectorId) -> Result<PollStateResp, RpcError> {
        let row = self.sector(id).await?;
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
    ) -> Result<SectorStateResp, RpcError> {
        self.change(
            id,
            Change::Report {
                state: req.state_change.next,
                worker: req.worker.instance,
                location: req.worker.location,
            },
        )
        .await?;
        Ok(SectorStateResp::default())
    }

    pub async fn report_finalized(&self, id: SectorId) -> Result<(), RpcError> {
        info!(sector = %id, "sector finalized");
        self.change(id, Change::Finalized).await
    }

    pub async fn report_aborted(&self, id: SectorId, reason: String) -> Result<(), RpcError> {
        warn!(sector = %id, %reason, "sector aborted");
        self.change(id, Change::Aborted(reason)).await
    }

    /// A configured store by name; in mock mode with no stores configured, any name (recorded).
    pub async fn store_info(&self, name: String) -> Result<Option<StoreBasicInfo>, RpcError> {
        if let Some(s) = self.stores.iter().find(|s| s.name == name) {
            return Ok(Some(StoreBasicInfo {
                name: s.name.clone(),
                path: s.path.clone(),
            }));
        }
        if self.mock && self.stores.is_empty() {
            let n = name.clone();
            self.db
                .run(move |c| db::stores::record(c, &n, &n, db::now()))
                .await
                .map_err(db_error)?;
            return Ok(Some(StoreBasicInfo {
                path: name.clone(),
                name,
            }));
        }
        Ok(None)
    }
}
