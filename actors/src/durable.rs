//! Writes that survive a power cut: a file is complete on disk (fsync) before it takes its final
//! name, and the directory that holds the name is synced after the rename. A sector's only copy
//! is wiped, and a record says "done", only after what they point to is durable.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Flushes a directory's entries (a rename, a new or removed file in it) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Flushes a file's data to disk.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Replaces `path` with `bytes` through `tmp` (in the same directory): written, synced,
/// renamed, and the directory synced. `prepare` may set the new file's mode and owner before
/// it takes the name.
pub fn replace_with(
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
    prepare: impl FnOnce(&fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut f = fs::File::create(tmp)?;
    f.write_all(bytes)?;
    prepare(&f)?;
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Copies a file and syncs the copy.
pub fn copy_file(src: &Path, dst: &Path) -> std::io::Result<()> {
    fs::copy(src, dst)?;
    sync_file(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_has_the_new_bytes_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"old").unwrap();
        let tmp = dir.path().join("f.tmp");
        replace_with(&path, &tmp, b"new", |_| Ok(())).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!tmp.exists());
        // A failing prepare leaves the old file in place.
        let e = replace_with(&path, &tmp, b"newer", |_| Err(std::io::Error::other("no")));
        assert!(e.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }
}
