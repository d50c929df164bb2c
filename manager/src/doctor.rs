//! `damocles-manager doctor [-c manager.toml]`: checks a manager's machine before it starts: the
//! config, the database, its migrations, the admin token file and the listen address. One line
//! per check; it fails when any check does. It changes nothing (no migration is applied).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use damocles_actors::doctor::{Problem, Report};

use crate::config::{ManagerConfig, DEFAULT_LISTEN};
use crate::db::{self, Db};
use crate::{home, server};

pub fn run(config: Option<PathBuf>) -> anyhow::Result<()> {
    let mut report = Report::default();
    let shown = config.as_ref().map_or_else(
        || "the defaults (no -c)".to_string(),
        |p| p.display().to_string(),
    );
    let cfg = match crate::load_config(config) {
        Ok(cfg) => cfg,
        Err(e) => {
            report.check(
                "config",
                Err(Problem::new(
                    format!("{e:#}"),
                    "correct the file; config-examples/ has a commented one",
                )),
            );
            return report.finish().map_err(anyhow::Error::msg);
        }
    };
    report.check("config", Ok(format!("{shown} parses")));
    match check_database(&cfg) {
        Ok((db, found)) => {
            report.check("database", Ok(found));
            report.check("migrations", check_migrations(&db));
        }
        Err(p) => {
            report.check("database", Err(p));
        }
    }
    report.check("admin token", check_token(&home::token_path()));
    let listen = cfg.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    report.check("listen address", check_listen(listen));
    report.finish().map_err(anyhow::Error::msg)
}

/// The database answers (a connection and its clock), without migrating it.
fn check_database(cfg: &ManagerConfig) -> Result<(Db, String), Problem> {
    let settings = server::db_settings(cfg);
    let url = db::redact(&settings.url);
    let fix = if db::backend_of(&settings.url).ok() == Some("mysql") {
        "start the database, or correct [db] url (user, password, host, port, database)"
    } else {
        "correct [db] url, or make its directory writable by the manager's user"
    };
    let db = Db::connect(&settings)
        .map_err(|e| Problem::new(format!("cannot connect to {url}: {e}"), fix))?;
    let skew = db
        .sync_clock()
        .map_err(|e| Problem::new(format!("{url} does not answer: {e}"), fix))?;
    let found = format!(
        "{} at {url} answers (its clock is {} s from this machine's)",
        db.backend,
        skew.num_seconds()
    );
    Ok((db, found))
}

/// Every migration the database has is one this manager knows; says what is still to apply.
fn check_migrations(db: &Db) -> Result<String, Problem> {
    let status = db
        .migrations()
        .map_err(|e| Problem::new(e, "see the database check"))?;
    if !status.unknown.is_empty() {
        return Err(Problem::new(
            format!(
                "the database has migrations this manager does not know ({}): a newer manager \
                 upgraded it",
                status.unknown.join(", ")
            ),
            "run that newer manager, or restore a backup taken before the upgrade",
        ));
    }
    Ok(match status.pending.len() {
        0 => format!("all {} applied", status.applied),
        n => format!(
            "{} applied, {n} to apply ({}): the manager applies them when it starts, or \
             `damocles-manager db migrate`",
            status.applied,
            status.pending.join(", ")
        ),
    })
}

/// The admin token file: none yet (the manager creates it), or a non-empty file only its
/// owner can read.
fn check_token(path: &std::path::Path) -> Result<String, Problem> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(format!(
                "{shown} does not exist yet: the manager creates it (mode 0600) when it starts"
            ))
        }
        Err(e) => {
            return Err(Problem::new(
                format!("cannot read {shown}: {e}"),
                "run the manager as the user that owns its home directory (DAMOCLES_PATH)",
            ))
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Problem::new(
            format!("{shown} has mode {mode:o}: other users can read the admin token"),
            format!("`chmod 600 {shown}`"),
        ));
    }
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => Err(Problem::new(
            format!("{shown} is empty"),
            "remove it (the manager writes a new token at start), or put the token in it",
        )),
        Ok(_) => Ok(format!("{shown} is set, mode {mode:o}")),
        Err(e) => Err(Problem::new(
            format!("cannot read {shown}: {e}"),
            "run the manager as the file's owner",
        )),
    }
}

/// Nothing listens on the manager's address yet.
fn check_listen(listen: &str) -> Result<String, Problem> {
    damocles_actors::doctor::address_free(
        listen,
        "stop what holds it (a manager already running? `damocles-manager util worker list`), \
         or choose another [server] listen",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_must_be_private_and_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        let absent = check_token(&path).expect("absent is fine");
        assert!(absent.contains("creates it"), "{absent}");
        std::fs::write(&path, "abc").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let open = check_token(&path).expect_err("readable by others");
        assert!(open.fix.contains("chmod 600"), "{open:?}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        check_token(&path).expect("private and set");
        std::fs::write(&path, "  \n").expect("write");
        assert!(check_token(&path)
            .expect_err("empty")
            .what
            .contains("empty"));
    }

    #[test]
    fn a_fresh_database_has_its_migrations_to_apply_and_a_migrated_one_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fresh = Db::connect(&db::DbSettings {
            url: dir.path().join("d.sqlite").display().to_string(),
            min_connections: 1,
            max_connections: 2,
            idle_timeout: std::time::Duration::from_secs(60),
            claim: None,
        })
        .expect("db");
        let before = check_migrations(&fresh).expect("fresh is fine");
        assert!(before.contains("0 applied"), "{before}");
        fresh.migrate().expect("migrate");
        let after = check_migrations(&fresh).expect("migrated");
        assert!(after.starts_with("all "), "{after}");
    }
}
