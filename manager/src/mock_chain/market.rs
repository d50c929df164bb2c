//! The mock chain's market and snap-up: deals handed to sectors (`AcquireDeals`, with the
//! CommD check at pre-commit), proven CC sectors handed to snap-up threads with deals
//! (`AllocateSanpUpSector`), and update proofs verified for real (`SubmitSnapUpProof`).

use damocles_actors::wire::commcid;
use damocles_actors::wire::hex;
use damocles_actors::wire::jsonrpc::{RpcError, SECTOR_STATE_NOT_FOUND, SERVER_ERROR};
use damocles_actors::wire::seal_proof;
use damocles_actors::wire::venus::{
    AcquireDealsSpec, AllocateSnapUpSpec, AllocatedSector, AllocatedSnapUpSector, Cid, DealInfo,
    PieceInfo, SectorId, SectorPiece, SectorPrivateInfo, SectorPublicInfo, SnapUpOnChainInfo,
    SubmitResp, SubmitResult,
};
use tracing::{info, warn};

use super::MockChain;
use crate::auth::{Asker, Caller};
use crate::db::deals::{DealRow, Want};
use crate::db::sectors::SectorRow;
use crate::db::{self, snap};
use crate::error::db_error;

/// A deal as a worker receives it (damocles' `SectorPieceV2`).
pub fn sector_piece(d: &DealRow) -> SectorPiece {
    let cid = Cid {
        root: d.piece_cid.clone(),
    };
    SectorPiece {
        piece: PieceInfo {
            size: d.piece_size as u64,
            piece_cid: cid.clone(),
        },
        deal_info: Some(DealInfo {
            deal_id: d.deal_id as u64,
            publish_cid: None,
            allocation_id: 0,
            piece_cid: cid,
            piece_size: d.piece_size as u64,
            client: d.client.clone(),
            provider: format!("t0{}", d.miner_id),
            offset: d.piece_offset.unwrap_or(0) as u64,
            length: d.piece_size as u64,
            payload_size: d.payload_size as u64,
            start_epoch: d.start_epoch,
            end_epoch: d.end_epoch,
            is_builtin_market: true,
            is_compatible: false,
        }),
    }
}

/// The data commitment a sector of `proof_type` holding `deals` must have.
pub fn expected_comm_d(proof_type: u64, deals: &[DealRow]) -> Result<[u8; 32], String> {
    let pieces = deals
        .iter()
        .map(|d| Ok((commcid::piece_comm(&d.piece_cid)?, d.piece_size as u64)))
        .collect::<Result<Vec<_>, String>>()?;
    damocles_proof_types::sector_comm_d(proof_type, &pieces)
}

fn want(spec: &AcquireDealsSpec) -> Want {
    Want {
        max: spec.max_deals,
        min: spec.min_used_space,
    }
}

fn refused(desc: String) -> SubmitResp {
    SubmitResp {
        res: SubmitResult::Rejected as u64,
        desc: Some(desc),
    }
}

fn deal_ids(deals: &[DealRow]) -> String {
    deals
        .iter()
        .map(|d| d.deal_id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl MockChain {
    fn sector_bytes(&self) -> u64 {
        seal_proof::sector_size(self.proof_type).unwrap_or(2048)
    }

    /// The deals of a sector: those it has, or waiting ones that fit; none (null) for CC.
    pub async fn acquire_deals(
        &self,
        id: SectorId,
        spec: AcquireDealsSpec,
        who: &Caller,
    ) -> Result<Option<Vec<SectorPiece>>, RpcError> {
        let row = self.sector(id, who).await?;
        if row.state == "Aborted" {
            // Deals given to it now would never come back.
            return Err(RpcError::new(
                SECTOR_STATE_NOT_FOUND,
                format!("sector {id} was aborted: it takes no deals"),
            ));
        }
        let (size, want) = (self.sector_bytes(), want(&spec));
        let deals = if row.comm_r.is_some() {
            // Pre-committed: its deals are settled.
            self.db
                .run(move |c| db::deals::of_sector(c, id.miner, id.number))
                .await
        } else {
            self.db
                .run(move |c| db::deals::assign(c, id.miner, id.number, size, want, db::now()))
                .await
        }
        .map_err(db_error)?;
        if deals.is_empty() {
            return Ok(None);
        }
        info!(sector = %id, deals = %deal_ids(&deals), "deals assigned");
        Ok(Some(deals.iter().map(sector_piece).collect()))
    }

    /// Why a pre-commit's CommD is refused, or None when it is the one its deals make.
    pub async fn comm_d_refusal(
        &self,
        id: SectorId,
        comm_d: [u8; 32],
    ) -> Result<Option<String>, RpcError> {
        let deals = self
            .db
            .run(move |c| db::deals::of_sector(c, id.miner, id.number))
            .await
            .map_err(db_error)?;
        let proof = self.proof_type;
        let want = expected_comm_d(proof, &deals)
            .map_err(|e| RpcError::new(SERVER_ERROR, format!("CommD of {id}: {e}")))?;
        if want == comm_d {
            return Ok(None);
        }
        let holds = if deals.is_empty() {
            "no deals (a CC sector)".to_string()
        } else {
            format!("deals {}", deal_ids(&deals))
        };
        Ok(Some(format!(
            "CommD {} is not the data commitment of {id}, which holds {holds}: that is {}",
            commcid::piece_cid(&comm_d),
            commcid::piece_cid(&want)
        )))
    }

    /// A proven CC sector with deals to put in it, for a snap-up thread, or null.
    pub async fn allocate_snapup(
        &self,
        spec: AllocateSnapUpSpec,
        asker: &Asker,
    ) -> Result<Option<AllocatedSnapUpSector>, RpcError> {
        let owner = asker.caller.name().map(String::from);
        let worker = owner.clone().unwrap_or_else(|| "-".into());
        if !self.serves(&spec.sector) {
            return Ok(None);
        }
        if self
            .sched
            .drain_refusal(&worker, "snap-up")
            .await
            .map_err(db_error)?
            .is_some()
        {
            return Ok(None);
        }
        let (miner, size, want) = (self.miner, self.sector_bytes(), want(&spec.deals));
        let got = self
            .db
            .run(move |c| snap::allocate(c, miner, owner.as_deref(), size, want, db::now()))
            .await
            .map_err(db_error)?;
        let Some((row, deals)) = got else {
            return Ok(None);
        };
        let id = SectorId {
            miner,
            number: row.sector_number as u64,
        };
        let comm_r = row
            .comm_r
            .as_deref()
            .and_then(hex::decode32)
            .unwrap_or_default();
        info!(sector = %id, worker = %worker, deals = %deal_ids(&deals), "snap-up allocated");
        self.sched
            .granted(&worker, asker.thread, &format!("snap-up {id}"));
        Ok(Some(AllocatedSnapUpSector {
            sector: AllocatedSector {
                id,
                proof_type: row.proof_type as u64,
            },
            pieces: deals.iter().map(sector_piece).collect(),
            public: SectorPublicInfo {
                comm_r,
                sealed_cid: Cid {
                    root: commcid::sealed_cid(&comm_r),
                },
                activation: row.proven_at.map_or(0, |t| t.and_utc().timestamp() / 30),
                expiration: i64::MAX / 2,
            },
            private: SectorPrivateInfo {
                access_instance: row.persist_store.clone().unwrap_or_default(),
            },
        }))
    }

    /// Why a snap-up submission is refused before its proof is checked, or None.
    async fn snapup_refusal(
        &self,
        id: SectorId,
        row: &SectorRow,
        info: &SnapUpOnChainInfo,
    ) -> Result<Option<String>, RpcError> {
        if row.snap_state.as_deref() != Some(snap::ALLOCATED) {
            let what = match (row.proof_state.as_deref(), row.snap_state.as_deref()) {
                (Some("Landed"), Some(snap::DONE)) => "it was snapped up already".to_string(),
                (Some("Landed"), Some(snap::CANDIDATE)) => {
                    "it is a candidate no snap-up thread was given".to_string()
                }
                (Some("Landed"), _) => {
                    "it is not a snap-up candidate (util sealer snap fetch)".to_string()
                }
                _ => "it is not a proven CC sector".to_string(),
            };
            return Ok(Some(format!("{id} is not allocated for snap-up: {what}")));
        }
        let deals = self
            .db
            .run(move |c| db::deals::of_sector(c, id.miner, id.number))
            .await
            .map_err(db_error)?;
        let mut given: Vec<&str> = info.pieces.iter().map(|c| c.root.as_str()).collect();
        let mut want: Vec<&str> = deals.iter().map(|d| d.piece_cid.as_str()).collect();
        given.sort_unstable();
        want.sort_unstable();
        if given != want {
            return Ok(Some(format!(
                "the pieces {given:?} are not those of the deals given to {id} ({}: {want:?})",
                deal_ids(&deals)
            )));
        }
        if self
            .store_info(info.access_instance.clone())
            .await?
            .is_none()
        {
            return Ok(Some(format!(
                "store {:?} is not a persist store of this manager",
                info.access_instance
            )));
        }
        let want_d = expected_comm_d(self.proof_type, &deals)
            .map_err(|e| RpcError::new(SERVER_ERROR, format!("CommD of {id}: {e}")))?;
        if want_d != info.comm_d {
            return Ok(Some(format!(
                "CommD {} is not the data commitment of the deals of {id} ({}): that is {}",
                commcid::piece_cid(&info.comm_d),
                deal_ids(&deals),
                commcid::piece_cid(&want_d)
            )));
        }
        Ok(None)
    }

    /// Verifies the update proof with the real verifier; a valid one makes the sector snapped
    /// (WindowPoSt proves the updated replica from then on) and its deals active.
    pub async fn submit_snapup(
        &self,
        id: SectorId,
        info: SnapUpOnChainInfo,
        who: &Caller,
    ) -> Result<SubmitResp, RpcError> {
        let row = self.sector(id, who).await?;
        if row.snap_state.as_deref() == Some(snap::DONE)
            && row.update_comm_r.as_deref() == Some(hex::encode(&info.comm_r).as_str())
        {
            return Ok(SubmitResp {
                res: SubmitResult::DuplicateSubmit as u64,
                desc: None,
            });
        }
        if let Some(why) = self.snapup_refusal(id, &row, &info).await? {
            warn!(sector = %id, reason = %why, "snap-up refused");
            return Ok(refused(why));
        }
        let comm_r_old = row
            .comm_r
            .as_deref()
            .and_then(hex::decode32)
            .unwrap_or_default();
        let (proof_type, proof) = (row.proof_type as u64, info.proof.clone());
        let (new_r, new_d) = (info.comm_r, info.comm_d);
        let verified = crate::verify::limited(move || {
            crate::verify::verify_update(proof_type, &proof, comm_r_old, new_r, new_d)
        })
        .await
        .map_err(|e| RpcError::new(SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            RpcError::new(
                SERVER_ERROR,
                format!("cannot verify the update proof of {id}: {e}"),
            )
        })?;
        if !verified {
            warn!(sector = %id, "invalid update proof refused");
            return Ok(refused(format!(
                "the update proof of {id} does not verify against its CommR, the new CommR and CommD"
            )));
        }
        let update = snap::Update {
            comm_r: hex::encode(&info.comm_r),
            comm_d: hex::encode(&info.comm_d),
            store: info.access_instance.clone(),
            proof: super::b64(&info.proof),
        };
        let recorded = self
            .db
            .run(move |c| snap::done(c, id.miner, id.number, update, db::now()))
            .await
            .map_err(db_error)?;
        if !recorded {
            return Ok(refused(format!(
                "{id} was given up while its proof was checked"
            )));
        }
        info!(sector = %id, comm_r = %commcid::sealed_cid(&info.comm_r), "snap-up verified");
        Ok(SubmitResp {
            res: SubmitResult::Accepted as u64,
            desc: None,
        })
    }
}
