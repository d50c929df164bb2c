//! `[sealing] disk_quota`: the bytes a worker's sealing locations may use. A thread checks it
//! before it asks for a new sector; a thread holding a sector goes on whatever the usage. The
//! quota can change while the worker runs (its config file is watched).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::size::format_size;
use crate::wire::seal_proof;

/// The worker's `disk_quota`: how much its sealer locations may hold before threads stop asking for sectors.
#[derive(Debug, Default)]
pub struct DiskQuota {
    /// Bytes; 0 means no quota.
    bytes: AtomicU64,
    /// `ignore_out_of_space`: never refuse.
    ignore: AtomicBool,
    /// Every sealer thread's location on this worker.
    locations: Vec<PathBuf>,
}

/// What sealing one sector of `sector_size` keeps on disk at its peak: the staged and sealed
/// files, one file per PC1 layer, and the trees (an estimate on the high side).
pub fn sector_footprint(sector_size: u64) -> u64 {
    let layers = if sector_size >= 32 << 30 { 11 } else { 2 };
    sector_size.saturating_mul(4 + layers)
}

/// Bytes of the files under `path` (0 when it does not exist).
/// Bytes of the files at `path` (a file, or a directory walked down); 0 when it is missing.
pub fn disk_usage(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
            .unwrap_or(0),
        _ => 0,
    }
}

impl DiskQuota {
    /// A quota of `bytes` over `locations` (none: no limit); `ignore` skips the free-space check.
    pub fn new(bytes: u64, ignore: bool, locations: Vec<PathBuf>) -> Self {
        DiskQuota {
            bytes: AtomicU64::new(bytes),
            ignore: AtomicBool::new(ignore),
            locations,
        }
    }

    /// Sets the quota; returns the old (bytes, ignore).
    pub fn set(&self, bytes: u64, ignore: bool) -> (u64, bool) {
        (
            self.bytes.swap(bytes, Ordering::Relaxed),
            self.ignore.swap(ignore, Ordering::Relaxed),
        )
    }

    /// Why a new sector (the largest of `proof_types`, seal proof integers) may not start now,
    /// or None when it may. Walks the locations: call it off the actor's thread.
    pub fn refusal(&self, proof_types: Option<&[u64]>) -> Option<String> {
        let quota = self.bytes.load(Ordering::Relaxed);
        if quota == 0 || self.ignore.load(Ordering::Relaxed) {
            return None;
        }
        let size = proof_types
            .into_iter()
            .flatten()
            .filter_map(|p| seal_proof::sector_size(*p))
            .max()
            .unwrap_or(0);
        let need = sector_footprint(size);
        let used: u64 = self.locations.iter().map(|l| disk_usage(l)).sum();
        (used.saturating_add(need) > quota).then(|| {
            format!(
                "disk quota: {} used of {} in the sealing locations, a new sector needs {}",
                format_size(used),
                format_size(quota),
                format_size(need)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_sector_must_fit_in_what_is_left() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let loc = dir.path().join("store0");
        std::fs::create_dir_all(loc.join("cache/s-t01-1")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(loc.join("cache/s-t01-1/a"), vec![0u8; 10_000])
            .unwrap_or_else(|e| panic!("{e}"));
        let two_kib = Some(&[5u64][..]);
        assert_eq!(sector_footprint(2048), 12 * 1024);
        let q = DiskQuota::new(20_000, false, vec![loc.clone(), dir.path().join("missing")]);
        let why = q.refusal(two_kib).unwrap_or_default();
        assert!(
            why.starts_with("disk quota: 10000B used of 20000B"),
            "{why}"
        );
        assert!(why.ends_with("a new sector needs 12KiB"), "{why}");
        assert_eq!(q.set(30_000, false), (20_000, false));
        assert_eq!(q.refusal(two_kib), None);
        q.set(20_000, true);
        assert_eq!(q.refusal(two_kib), None, "ignore_out_of_space");
        q.set(0, false);
        assert_eq!(q.refusal(two_kib), None, "0 is no quota");
    }
}
