//! The mock chain's unseals: a piece an operator asked for (`util sealer sectors unseal`) is
//! handed to one `unseal` thread with the sector's ticket, CommD and store
//! (`AllocateUnsealSector`); the thread asks where the bytes go (`AcquireUnsealDest`: the
//! manager's own upload URL, as the thread reached this manager, stands for
//! [`unseal::MANAGER_DEST`]) and says when it is done (`AchieveUnsealSector`).

use damocles_actors::wire::hex;
use damocles_actors::wire::jsonrpc::{RpcError, NOT_YOURS, SECTOR_STATE_NOT_FOUND};
use damocles_actors::wire::venus::{
    AllocateSectorSpec, AllocatedSector, Cid, SectorId, SectorPrivateInfo, SectorUnsealInfo,
    Ticket, UnsealUpgrade,
};
use tracing::{info, warn};

use super::{describe, unb64, MockChain};
use crate::auth::{Asker, Caller};
use crate::db::{self, unseal};
use crate::error::db_error;

/// The manager's upload URL of one task, under `base` (`http://host:port` as the caller
/// reached this manager).
pub fn upload_url(base: &str, id: SectorId, cid: &str, secret: &str) -> String {
    format!(
        "{base}/unseal/{}/{}/{cid}/piece?secret={secret}",
        id.miner, id.number
    )
}

impl MockChain {
    /// The oldest queued unseal, given to the asking worker's thread.
    pub async fn allocate_unseal(
        &self,
        spec: AllocateSectorSpec,
        asker: &Asker,
    ) -> Result<Option<SectorUnsealInfo>, RpcError> {
        let owner = asker.caller.name().map(String::from);
        let worker = owner.clone().unwrap_or_else(|| "-".into());
        if !self.serves(&spec) {
            return Ok(None);
        }
        if self
            .sched
            .drain_refusal(&worker, "unseal")
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
                let Some(task) =
                    unseal::allocate(c, miner, types.as_deref(), owner.as_deref(), db::now())?
                else {
                    return Ok(None);
                };
                let sector = db::sectors::get(c, miner, task.sector_number as u64)?;
                Ok(sector.map(|s| (task, s)))
            })
            .await
            .map_err(db_error)?;
        let Some((task, row)) = got else {
            return Ok(None);
        };
        let id = SectorId {
            miner,
            number: row.sector_number as u64,
        };
        info!(sector = %id, piece = %task.piece_cid, worker = %worker, "unseal allocated");
        self.sched.granted(
            &worker,
            asker.thread,
            &format!("unseal {} of {id}", task.piece_cid),
        );
        let hex32 = |h: &Option<String>| h.as_deref().and_then(hex::decode32).unwrap_or_default();
        // A snapped sector's deals are in its updated replica, decoded with the sector key.
        let snapped = row.snap_state.as_deref() == Some(db::snap::DONE);
        let (comm_d, store) = if snapped {
            (hex32(&row.update_comm_d), row.update_store.clone())
        } else {
            (hex32(&row.comm_d), row.persist_store.clone())
        };
        let upgrade = snapped.then(|| UnsealUpgrade {
            comm_r_old: hex32(&row.comm_r),
            sector_key_instance: row.persist_store.clone().unwrap_or_default(),
        });
        Ok(Some(SectorUnsealInfo {
            sector: AllocatedSector {
                id,
                proof_type: row.proof_type as u64,
            },
            piece_cid: Cid {
                root: task.piece_cid.clone(),
            },
            offset: task.piece_offset as u64,
            size: task.piece_size as u64,
            private_info: SectorPrivateInfo {
                access_instance: store.unwrap_or_default(),
            },
            ticket: Ticket {
                ticket: unb64(row.ticket.as_deref().unwrap_or_default()),
                epoch: 0,
            },
            comm_d,
            dest: task.dests(),
            state: task.state,
            error_info: String::new(),
            upgrade,
        }))
    }

    /// The task of `id`'s piece `cid`, when `who`'s thread holds it.
    async fn unseal_task(
        &self,
        id: SectorId,
        cid: &str,
        who: &Caller,
    ) -> Result<unseal::UnsealRow, RpcError> {
        let c = cid.to_string();
        let task = self
            .db
            .run(move |conn| unseal::get(conn, id.miner, id.number, &c))
            .await
            .map_err(db_error)?
            .filter(|t| matches!(t.state.as_str(), unseal::UNSEALING | unseal::UPLOADING))
            .ok_or_else(|| {
                RpcError::new(
                    SECTOR_STATE_NOT_FOUND,
                    format!("no unseal of piece {cid} in sector {id} is in progress"),
                )
            })?;
        if task.owner.as_deref() != who.name() {
            return Err(RpcError::new(
                NOT_YOURS,
                format!(
                    "the unseal of piece {cid} in sector {id} was given to {}, and this call comes from {}",
                    describe(task.owner.as_deref()),
                    describe(who.name())
                ),
            ));
        }
        Ok(task)
    }

    /// Where the thread puts the bytes; the task is `uploading` from now on.
    pub async fn unseal_dest(
        &self,
        id: SectorId,
        cid: Cid,
        who: &Caller,
        base: &str,
    ) -> Result<Vec<String>, RpcError> {
        self.unseal_task(id, &cid.root, who).await?;
        let c = cid.root.clone();
        let started = self
            .db
            .run(move |conn| unseal::start_upload(conn, id.miner, id.number, &c, db::now()))
            .await
            .map_err(db_error)?;
        let Some((task, secret)) = started else {
            return Err(RpcError::new(
                SECTOR_STATE_NOT_FOUND,
                format!(
                    "the unseal of piece {} in sector {id} ended meanwhile",
                    cid.root
                ),
            ));
        };
        Ok(task
            .dests()
            .into_iter()
            .map(|d| {
                if d == unseal::MANAGER_DEST {
                    upload_url(base, id, &cid.root, &secret)
                } else {
                    d
                }
            })
            .collect())
    }

    /// The thread is done with the piece: delivered, or failed with `error`.
    pub async fn achieve_unseal(
        &self,
        id: SectorId,
        cid: Cid,
        error: String,
        who: &Caller,
    ) -> Result<(), RpcError> {
        let task = self.unseal_task(id, &cid.root, who).await?;
        let failed = (!error.is_empty()).then_some(error);
        if failed.is_none() && task.dests().iter().any(|d| d == unseal::MANAGER_DEST) {
            // Delivered to the manager means the manager has the bytes.
            let c = cid.root.clone();
            let kept = self
                .db
                .run(move |conn| unseal::data(conn, id.miner, id.number, &c))
                .await
                .map_err(db_error)?;
            if kept.is_none() {
                return Err(RpcError::new(
                    SECTOR_STATE_NOT_FOUND,
                    format!(
                        "the unseal of piece {} in sector {id} is not done: the manager has not \
                         received its bytes (upload them to the URL AcquireUnsealDest gave)",
                        cid.root
                    ),
                ));
            }
        }
        let (c, e) = (cid.root.clone(), failed.clone());
        self.db
            .run(move |conn| {
                unseal::achieve(conn, id.miner, id.number, &c, e.as_deref(), db::now())
            })
            .await
            .map_err(db_error)?;
        match failed {
            Some(e) => warn!(sector = %id, piece = %cid.root, error = %e, "unseal failed"),
            None => info!(sector = %id, piece = %cid.root, "unseal finished"),
        }
        Ok(())
    }
}
