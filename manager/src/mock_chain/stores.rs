//! The persist stores of the mock chain: which exist, and the room a sector keeps in one
//! between `StoreReserveSpace` and its persisting (or abort).

use damocles_actors::wire::jsonrpc::RpcError;
use damocles_actors::wire::venus::{SectorId, StoreBasicInfo};
use tracing::{info, warn};

use super::MockChain;
use crate::auth::Caller;
use crate::db;
use crate::error::db_error;

impl MockChain {
    /// A configured store by name; in mock mode with no stores configured, any name (recorded).
    pub async fn store_info(&self, name: String) -> Result<Option<StoreBasicInfo>, RpcError> {
        if let Some(s) = self.stores.iter().find(|s| s.name == name) {
            return Ok(Some(StoreBasicInfo {
                name: s.name.clone(),
                path: s.path.clone(),
                read_only: s.read_only.unwrap_or(false),
                weight: s.weight.unwrap_or(1),
                ..Default::default()
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
                weight: 1,
                ..Default::default()
            }));
        }
        Ok(None)
    }

    /// Chooses the store among `candidates` that takes sector `id`'s `size` bytes: writable,
    /// known to this manager, with room (its free space on this host, less what other sectors
    /// reserved there; a store whose path is not mounted here counts as having room); the
    /// highest weight first, then the most free space. The room stays reserved until the
    /// sector is persisted, finalized or aborted. None when no candidate has room.
    pub async fn reserve_space(
        &self,
        id: SectorId,
        size: u64,
        candidates: Vec<String>,
        who: &Caller,
    ) -> Result<Option<StoreBasicInfo>, RpcError> {
        self.sector(id, who).await?;
        let mut known = Vec::new();
        for name in candidates {
            if let Some(info) = self.store_info(name).await? {
                if !info.read_only {
                    known.push(info);
                }
            }
        }
        let names: Vec<String> = known.iter().map(|s| s.name.clone()).collect();
        let reserved = self
            .db
            .run(move |c| db::stores::reserved_elsewhere(c, &names, id.miner, id.number))
            .await
            .map_err(db_error)?;
        let mut fits: Vec<(StoreBasicInfo, Option<u64>)> = known
            .into_iter()
            .map(|s| {
                let taken = reserved.get(&s.name).copied().unwrap_or(0);
                let free = free_bytes(&s.path).map(|f| f.saturating_sub(taken));
                (s, free)
            })
            .filter(|(_, free)| free.is_none_or(|f| f >= size))
            .collect();
        fits.sort_by(|(a, fa), (b, fb)| {
            b.weight
                .cmp(&a.weight)
                .then(fb.unwrap_or(u64::MAX).cmp(&fa.unwrap_or(u64::MAX)))
        });
        let Some((chosen, free)) = fits.into_iter().next() else {
            warn!(sector = %id, size, "no persist store has room");
            return Ok(None);
        };
        let store = chosen.name.clone();
        let bytes = i64::try_from(size).unwrap_or(i64::MAX);
        self.db
            .run(move |c| db::stores::reserve(c, id.miner, id.number, &store, bytes, db::now()))
            .await
            .map_err(db_error)?;
        info!(sector = %id, store = %chosen.name, size, free = ?free, "persist space reserved");
        Ok(Some(chosen))
    }

    /// Gives back sector `id`'s reserved room.
    pub(super) async fn release(&self, id: SectorId) -> Result<(), RpcError> {
        self.db
            .run(move |c| db::stores::release(c, id.miner, id.number))
            .await
            .map_err(db_error)
    }
}

/// Free bytes of the filesystem at `path` on this host; None when it is not a directory here.
fn free_bytes(path: &str) -> Option<u64> {
    let p = std::path::Path::new(path);
    if !p.is_absolute() || !p.is_dir() {
        return None;
    }
    let st = nix::sys::statvfs::statvfs(p).ok()?;
    Some(st.blocks_available().saturating_mul(st.fragment_size()))
}
