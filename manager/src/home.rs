//! The manager's home directory (`~/.damocles-manager`, or `DAMOCLES_PATH`) and the admin token
//! kept there.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use rand::RngCore;

pub fn home() -> PathBuf {
    if let Ok(p) = std::env::var("DAMOCLES_PATH") {
        return PathBuf::from(p);
    }
    let base = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(base).join(".damocles-manager")
}

pub fn token_path() -> PathBuf {
    home().join("token")
}

/// The admin token, created (mode 0600) at first start; an existing file that others could
/// read is made 0600 again.
pub fn ensure_token() -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = token_path();
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                tracing::warn!(file = %path.display(), mode = format!("{:o}", mode & 0o777), "the admin token file could be read by others: made it 0600");
            }
            return Ok(t.trim().to_string());
        }
    }
    std::fs::create_dir_all(home())?;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(token.as_bytes())?;
    Ok(token)
}

/// The token for the CLI: `DAMOCLES_MANAGER_TOKEN`, else the home directory's file.
pub fn read_token() -> Option<String> {
    std::env::var("DAMOCLES_MANAGER_TOKEN")
        .ok()
        .or_else(|| std::fs::read_to_string(token_path()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}
