//! The mock chain's rebuilds: a sector an operator queued (`util sealer sectors rebuild`) is
//! handed to one `rebuild` thread with its ticket, deals and the CommR the chain holds
//! (`AllocateRebuildSector`), and recorded in its new store once the thread persisted it
//! (`SubmitPersistedEx`).

use damocles_actors::wire::commcid;
use damocles_actors::wire::hex;
use damocles_actors::wire::jsonrpc::RpcError;
use damocles_actors::wire::venus::{
    AllocateSectorSpec, AllocatedSector, Cid, SectorId, SectorPublicInfo, SectorRebuildInfo, Ticket,
};
use tracing::info;

use super::market::sector_piece;
use super::{unb64, MockChain};
use crate::auth::Asker;
use crate::db::{self, rebuild, snap};
use crate::error::db_error;

impl MockChain {
    /// The oldest queued sector to rebuild, given to the asking worker's thread.
    pub async fn allocate_rebuild(
        &self,
        spec: AllocateSectorSpec,
        asker: &Asker,
    ) -> Result<Option<SectorRebuildInfo>, RpcError> {
        let owner = asker.caller.name().map(String::from);
        let worker = owner.clone().unwrap_or_else(|| "-".into());
        if !self.serves(&spec) {
            return Ok(None);
        }
        if self
            .sched
            .drain_refusal(&worker, "rebuild")
            .await
            .map_err(db_error)?
            .is_some()
        {
            return Ok(None);
        }
        let (miner, types) = (self.miner, spec.allowed_proof_types.clone());
        let got = self
            .db
            .run(move |c| {
                let Some(row) =
                    rebuild::allocate(c, miner, types.as_deref(), owner.as_deref(), db::now())?
                else {
                    return Ok(None);
                };
                let deals = db::deals::of_sector(c, miner, row.sector_number as u64)?;
                Ok(Some((row, deals)))
            })
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
        info!(sector = %id, worker = %worker, "rebuild allocated");
        self.sched
            .granted(&worker, asker.thread, &format!("rebuild {id}"));
        Ok(Some(SectorRebuildInfo {
            sector: AllocatedSector {
                id,
                proof_type: row.proof_type as u64,
            },
            ticket: Ticket {
                ticket: unb64(row.ticket.as_deref().unwrap_or_default()),
                epoch: 0,
            },
            legacy_pieces: None,
            pieces: deals.iter().map(sector_piece).collect(),
            is_snap_up: row.snap_state.as_deref() == Some(snap::DONE),
            // The sealed replica's commitment, which the rebuild's PC2 must make again.
            upgrade_public: Some(SectorPublicInfo {
                comm_r,
                sealed_cid: Cid {
                    root: commcid::sealed_cid(&comm_r),
                },
                activation: 0,
                expiration: 0,
            }),
        }))
    }

    /// The owner of `id`'s rebuild while a thread has it (`Some(None)`: a caller without a
    /// token); None when no rebuild of it is in progress.
    pub(super) async fn rebuilding(
        &self,
        id: SectorId,
    ) -> Result<Option<Option<String>>, RpcError> {
        let r = self
            .db
            .run(move |c| rebuild::get(c, id.miner, id.number))
            .await
            .map_err(db_error)?;
        Ok(r.filter(|r| r.state == rebuild::ALLOCATED).map(|r| r.owner))
    }

    /// The rebuilt files of `id` are in `store`: recorded, and WindowPoSt proves it from there.
    pub(super) async fn rebuilt(
        &self,
        id: SectorId,
        store: String,
        upgrade: bool,
    ) -> Result<bool, RpcError> {
        let s = store.clone();
        let done = self
            .db
            .run(move |c| rebuild::done(c, id.miner, id.number, &s, upgrade, db::now()))
            .await
            .map_err(db_error)?;
        if done {
            info!(sector = %id, %store, upgrade, "sector rebuilt");
            self.release(id).await?;
        }
        Ok(done)
    }
}
