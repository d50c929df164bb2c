//! Where a sealing thread keeps its files: `<location>/data/{staged,cache,sealed}/s-t0M-N` while
//! sealing (a snap-up adds `update/` and `update-cache/`, deals' bytes wait in `pieces/`) and
//! `<location>/meta/sector.json` for the record; persisted sectors go to an attached store under
//! `sealed/` and `cache/` (snapped ones also `update/` and `update-cache/`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::durable;

use super::sector::Sector;
use crate::wire::venus::SectorId;

/// A thread's directory: its sector record and the files of the sector it seals.
#[derive(Debug, Clone)]
pub struct Location {
    root: PathBuf,
}

impl Location {
    /// The location rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Location { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the layout if it is missing (damocles initialises new locations at start).
    pub fn init(&self) -> std::io::Result<()> {
        for d in [
            "data/staged",
            "data/cache",
            "data/sealed",
            "data/update",
            "data/update-cache",
            "data/pieces",
            "meta",
        ] {
            fs::create_dir_all(self.root.join(d))?;
        }
        Ok(())
    }

    /// The staged (unsealed) file of sector `id`.
    pub fn staged(&self, id: SectorId) -> PathBuf {
        self.root.join("data/staged").join(id.to_string())
    }
    /// The cache directory of sector `id`.
    pub fn cache(&self, id: SectorId) -> PathBuf {
        self.root.join("data/cache").join(id.to_string())
    }
    /// The sealed replica of sector `id`.
    pub fn sealed(&self, id: SectorId) -> PathBuf {
        self.root.join("data/sealed").join(id.to_string())
    }
    /// The updated replica of sector `id` (snap-up).
    pub fn update(&self, id: SectorId) -> PathBuf {
        self.root.join("data/update").join(id.to_string())
    }
    /// The updated replica's cache of sector `id` (snap-up).
    pub fn update_cache(&self, id: SectorId) -> PathBuf {
        self.root.join("data/update-cache").join(id.to_string())
    }
    /// Where a deal's bytes wait until they are written into the sector.
    pub fn piece(&self, cid: &str) -> PathBuf {
        self.root.join("data/pieces").join(cid)
    }
    fn record_path(&self) -> PathBuf {
        self.root.join("meta/sector.json")
    }

    /// The sector this thread held when it stopped, if any.
    pub fn load(&self) -> std::io::Result<Option<Sector>> {
        match fs::read(self.record_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                std::io::Error::other(format!("{}: {e}", self.record_path().display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves the record through a temporary file, so a crash never leaves half a record, and
    /// syncs its directory, so a power cut does not bring back the previous record.
    pub fn save(&self, sector: &Sector) -> std::io::Result<()> {
        let path = self.record_path();
        let tmp = path.with_extension("json.tmp");
        durable::replace_with(&path, &tmp, &serde_json::to_vec(sector)?, |_| Ok(()))
    }

    /// Forgets the sector: its record and its working files.
    pub fn wipe(&self, id: Option<SectorId>) -> std::io::Result<()> {
        if let Some(id) = id {
            for p in [
                self.staged(id),
                self.sealed(id),
                self.cache(id),
                self.update(id),
                self.update_cache(id),
            ] {
                remove_quietly(&p)?;
            }
            // Deals' bytes are fetched for one sector at a time.
            for entry in fs::read_dir(self.root.join("data/pieces"))
                .into_iter()
                .flatten()
            {
                remove_quietly(&entry?.path())?;
            }
        }
        remove_quietly(&self.record_path())
    }
}

fn remove_quietly(p: &Path) -> std::io::Result<()> {
    let r = if p.is_dir() {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Copies a file or a directory tree (one level of files, as a sector cache is) to `dst`,
/// through a temporary name so a half copy is never mistaken for a whole one. Durable when it
/// returns: every file, the temporary directory and the parent holding the final name are
/// synced, because the caller then reports the copy and wipes the original.
pub fn copy_into(src: &Path, dst: &Path) -> std::io::Result<()> {
    let tmp = dst.with_extension("copying");
    remove_quietly(&tmp)?;
    let parent = dst.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    if src.is_dir() {
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                durable::copy_file(&entry.path(), &tmp.join(entry.file_name()))?;
            }
        }
        durable::sync_dir(&tmp)?;
    } else {
        durable::copy_file(src, &tmp)?;
    }
    remove_quietly(dst)?;
    fs::rename(tmp, dst)?;
    durable::sync_dir(parent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::state::State;

    #[test]
    fn a_saved_record_loads_back_and_wipe_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::new(dir.path());
        loc.init().unwrap();
        assert_eq!(loc.load().unwrap(), None);
        let s = Sector {
            state: Some(State::PC1Done),
            retry: 2,
            ..Default::default()
        };
        loc.save(&s).unwrap();
        assert_eq!(loc.load().unwrap(), Some(s));
        let id = SectorId {
            miner: 1,
            number: 2,
        };
        fs::create_dir_all(loc.cache(id)).unwrap();
        fs::write(loc.sealed(id), b"x").unwrap();
        loc.wipe(Some(id)).unwrap();
        assert_eq!(loc.load().unwrap(), None);
        assert!(!loc.cache(id).exists() && !loc.sealed(id).exists());
    }

    #[test]
    fn copy_into_copies_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let src_dir = dir.path().join("cache-src");
        fs::create_dir_all(&src_dir).unwrap();
        fs::write(src_dir.join("p_aux"), b"aux").unwrap();
        let dst = dir.path().join("remote/cache/s-t01-1");
        copy_into(&src_dir, &dst).unwrap();
        assert_eq!(fs::read(dst.join("p_aux")).unwrap(), b"aux");
        let f = dir.path().join("sealed-src");
        fs::write(&f, b"sealed").unwrap();
        let dst = dir.path().join("remote/sealed/s-t01-1");
        copy_into(&f, &dst).unwrap();
        assert_eq!(fs::read(dst).unwrap(), b"sealed");
    }
}
