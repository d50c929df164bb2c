//! The database: one connection type over SQLite (bundled, the default) and MySQL/MariaDB
//! (cargo feature `mysql`), a pool sized by `[db]`, and the embedded migrations of both trees.
//! Queries are plain sync functions; callers run them on the blocking pool (`Db::run`).

pub mod audit;
pub mod deals;
pub mod raw;
pub mod rebuild;
pub mod retention;
pub mod sched;
pub mod schema;
pub mod sector_admin;
pub mod sectors;
pub mod snap;
pub mod stores;
pub mod tokens;
pub mod unseal;
pub mod wdpost;
pub mod workers;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{MultiConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

#[cfg(feature = "mysql")]
use diesel::MysqlConnection;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
#[cfg(feature = "mysql")]
pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/mysql");

#[cfg(feature = "mysql")]
#[derive(MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Mysql(MysqlConnection),
}

/// Without the `mysql` feature the binary links no MySQL client library.
#[cfg(not(feature = "mysql"))]
#[derive(MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
}

pub type Conn = PooledConnection<ConnectionManager<DbConnection>>;

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached (pool timeout, lost connection): the caller answers 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    pub min_connections: u32,
    pub max_connections: u32,
    pub idle_timeout: Duration,
    /// `[db] claim`; `None`: the backend's default (`ClaimMode::default_for`).
    pub claim: Option<wdpost::ClaimMode>,
}

#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<DbConnection>>,
    pub backend: &'static str,
    /// How WindowPoSt claims take different jobs.
    pub claim: wdpost::ClaimMode,
    /// The database's clock minus this machine's, in milliseconds (`sync_clock`).
    skew_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

#[derive(Debug)]
struct SessionTuning;

#[cfg(feature = "mysql")]
const MYSQL_SESSION: &str = "SET SESSION max_statement_time = 30";

const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL;";

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SessionTuning {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        // WAL lets readers go on while a writer writes; busy_timeout makes writers queue
        // instead of failing with "database is locked". synchronous = FULL: in WAL mode NORMAL
        // may lose the last commits at a power cut, and this database is the chain's state (a
        // sector number handed out twice, a ticket forgotten).
        match conn {
            DbConnection::Sqlite(c) => c
                .batch_execute(SQLITE_PRAGMAS)
                .map_err(diesel::r2d2::Error::QueryError)?,
            // No statement may hang a connection (and the caller) for ever: MariaDB stops one
            // after this many seconds. MySQL has no such setting for writes; it refuses the
            // statement, which changes nothing.
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(c) => {
                let _ = c.batch_execute(MYSQL_SESSION);
            }
        }
        Ok(())
    }
}

impl Db {
    pub fn connect(settings: &DbSettings) -> Result<Db, DbError> {
        let backend = backend_of(&settings.url)?;
        let url = if backend == "sqlite" {
            settings.url.trim_start_matches("sqlite://").to_string()
        } else {
            settings.url.clone()
        };
        let manager = ConnectionManager::<DbConnection>::new(url);
        let mut builder = Pool::builder()
            .max_size(settings.max_connections.max(1))
            .min_idle(Some(settings.min_connections.min(settings.max_connections)))
            .idle_timeout(Some(settings.idle_timeout))
            .connection_timeout(Duration::from_secs(5));
        builder = builder.connection_customizer(Box::new(SessionTuning));
        let pool = builder
            .build(manager)
            .map_err(|e| DbError::Unavailable(format!("{}: {e}", redact(&settings.url))))?;
        Ok(Db {
            pool,
            backend,
            claim: settings
                .claim
                .unwrap_or_else(|| wdpost::ClaimMode::default_for(backend)),
            skew_ms: Default::default(),
        })
    }

    /// Now by the database's clock, in whole seconds: what every manager sharing the database
    /// agrees on, so a manager whose clock runs fast does not time out live jobs. It is this
    /// machine's clock corrected by the skew `sync_clock` last measured.
    pub fn now(&self) -> chrono::NaiveDateTime {
        use std::sync::atomic::Ordering;
        let skew = chrono::Duration::milliseconds(self.skew_ms.load(Ordering::Relaxed));
        let n = chrono::Utc::now().naive_utc() + skew;
        n - chrono::Duration::nanoseconds(i64::from(chrono::Timelike::nanosecond(&n)))
    }

    /// Measures how far the database's clock is from this machine's (half the round trip is
    /// the error).
    pub fn sync_clock(&self) -> Result<chrono::Duration, DbError> {
        use std::sync::atomic::Ordering;
        let mut conn = self.conn()?;
        let before = chrono::Utc::now().naive_utc();
        let theirs = clock(&mut conn)?;
        let after = chrono::Utc::now().naive_utc();
        let ours = before + (after - before) / 2;
        let skew = theirs - ours;
        self.skew_ms
            .store(skew.num_milliseconds(), Ordering::Relaxed);
        Ok(skew)
    }

    pub fn conn(&self) -> Result<Conn, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Runs a query function on the blocking pool, never on an actor's thread.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        let db = self.clone();
        let started = std::time::Instant::now();
        let r = tokio::task::spawn_blocking(move || {
            let mut conn = db.conn()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Invalid(format!("database task failed: {e}")))?;
        use damocles_actors::metrics;
        metrics::observe("damocles_db_call_duration_seconds", &[], started.elapsed());
        if let Err(e) = &r {
            let kind = match e {
                DbError::Unavailable(_) => "unavailable",
                DbError::Invalid(_) => "invalid",
                DbError::Query(_) => "query",
            };
            metrics::inc("damocles_db_errors_total", &[("kind", kind)]);
        }
        r
    }

    /// Applies pending migrations; returns their names.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.conn()?;
        let applied = match &mut *conn {
            DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(c) => c.run_pending_migrations(MYSQL_MIGRATIONS),
        }
        .map_err(|e| DbError::Invalid(format!("migration failed: {e}")))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    }
}

/// Which migrations a database has, against the ones this manager carries.
#[derive(Debug)]
pub struct MigrationStatus {
    /// Applied, and known to this manager.
    pub applied: usize,
    /// Known, not applied yet.
    pub pending: Vec<String>,
    /// Applied by a manager that knew more (a newer one).
    pub unknown: Vec<String>,
}

impl Db {
    /// The database's migrations against this manager's, without applying any.
    pub fn migrations(&self) -> Result<MigrationStatus, DbError> {
        let mut conn = self.conn()?;
        let (applied, known) = match &mut *conn {
            DbConnection::Sqlite(c) => versions(c, &SQLITE_MIGRATIONS),
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(c) => versions(c, &MYSQL_MIGRATIONS),
        }
        .map_err(|e| DbError::Invalid(format!("read the applied migrations: {e}")))?;
        Ok(MigrationStatus {
            applied: applied.iter().filter(|v| known.contains(v)).count(),
            pending: known
                .iter()
                .filter(|v| !applied.contains(v))
                .cloned()
                .collect(),
            unknown: applied.into_iter().filter(|v| !known.contains(v)).collect(),
        })
    }
}

/// The versions a database has applied, and those `source` carries.
fn versions<DB: diesel::backend::Backend>(
    conn: &mut impl MigrationHarness<DB>,
    source: &EmbeddedMigrations,
) -> diesel::migration::Result<(Vec<String>, Vec<String>)>
where
    EmbeddedMigrations: diesel::migration::MigrationSource<DB>,
{
    use diesel::migration::MigrationSource;
    let applied = conn
        .applied_migrations()?
        .iter()
        .map(|v| v.to_string())
        .collect();
    let known = MigrationSource::<DB>::migrations(source)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    Ok((applied, known))
}

/// A transaction that may write after it reads. On SQLite it takes the write lock as it
/// begins (`BEGIN IMMEDIATE`): a deferred one that read first fails with "database is locked"
/// when another connection wrote meanwhile, and no busy_timeout can fix that (its snapshot is
/// stale). Transactions nested inside become savepoints, as with `Connection::transaction`.
pub fn write_transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let Some(c) = as_sqlite(conn) else {
        // A failed BEGIN or COMMIT comes back through `From` as a plain query error: classify
        // it, so that a commit cut by a lost connection is "unavailable" (503), not a refusal.
        return diesel::Connection::transaction(conn, f).map_err(|e| match e {
            DbError::Query(e) => classify(e),
            e => e,
        });
    };
    AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE").map_err(classify)?;
    let out = f(conn);
    let Some(c) = as_sqlite(conn) else {
        return Err(DbError::Invalid("the connection changed backend".into()));
    };
    match out {
        Ok(v) => {
            AnsiTransactionManager::commit_transaction(c).map_err(classify)?;
            Ok(v)
        }
        Err(e) => {
            if let Err(r) = AnsiTransactionManager::rollback_transaction(c) {
                tracing::warn!(error = %r, "rollback failed");
            }
            Err(e)
        }
    }
}

/// Runs `f` in a write transaction that is always rolled back: a dry run that checks
/// everything the real change would, and changes nothing.
pub fn rolled_back<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let mut out = None;
    let undo = write_transaction(conn, |c| {
        out = Some(f(c));
        Err::<(), _>(DbError::Invalid("rolled back".into()))
    });
    match (out, undo) {
        (Some(r), _) => r,
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(DbError::Invalid("the dry run did not run".into())),
    }
}

/// The SQLite connection inside, if it is one.
fn as_sqlite(conn: &mut DbConnection) -> Option<&mut SqliteConnection> {
    match conn {
        DbConnection::Sqlite(c) => Some(c),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(_) => None,
    }
}

/// `sqlite` or `mysql` for a `[db] url`, or an error saying what is supported.
pub fn backend_of(url: &str) -> Result<&'static str, DbError> {
    if url.starts_with("mysql://") {
        if cfg!(feature = "mysql") {
            Ok("mysql")
        } else {
            Err(DbError::Invalid(
                "this damocles-manager was built without MySQL support: rebuild with `--features mysql` (needs libmariadb-dev)".into(),
            ))
        }
    } else if url.starts_with("sqlite://") || !url.contains("://") {
        Ok("sqlite")
    } else {
        Err(DbError::Invalid(format!(
            "unsupported database url {}: use mysql://user:pass@host:port/db or a SQLite file path",
            redact(url)
        )))
    }
}

/// The url without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Whether a diesel error means the server went away (503, retry) rather than a bad query.
pub fn classify(e: diesel::result::Error) -> DbError {
    use diesel::result::Error as E;
    // A Galera node outside the primary component, or still catching up, refuses every query
    // (error 1047, "WSREP has not yet prepared node for application use"): as unavailable as a
    // server that is down, and the worker's next manager may be on a node that is not.
    let lost_server = |m: &str| {
        m.contains("gone away")
            || m.contains("Lost connection")
            || m.contains("Can't connect")
            || m.contains("WSREP has not yet prepared node")
    };
    match &e {
        E::DatabaseError(diesel::result::DatabaseErrorKind::ClosedConnection, _) => {
            DbError::Unavailable(e.to_string())
        }
        E::DatabaseError(_, info) if lost_server(info.message()) => {
            DbError::Unavailable(e.to_string())
        }
        // A commit cut by a lost connection fails twice (the commit, then the rollback): the
        // transaction did not happen as far as the caller knows, and the server is gone.
        E::RollbackErrorOnCommit { .. } if lost_server(&e.to_string()) => {
            DbError::Unavailable(e.to_string())
        }
        E::BrokenTransactionManager => DbError::Unavailable(e.to_string()),
        _ => DbError::Query(e),
    }
}

/// A deadlock or, on Galera, a certification conflict (error 1213): the database undid the
/// statement or transaction, and nothing of it stayed, so it may be tried again.
pub fn is_conflict(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as E};
    match e {
        E::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        // Diesel names the kind for a failed statement, not for a failed COMMIT, which is
        // where Galera reports a certification conflict.
        E::DatabaseError(_, info) => info.message().contains("Deadlock found"),
        _ => false,
    }
}

/// Runs `write` (a whole transaction) again when the database undid it as a deadlock or a
/// Galera certification conflict (`is_conflict`): up to `again` more times, each after a short
/// random pause that grows, so the two sides do not meet again.
pub fn again_on_conflict<T>(
    what: &str,
    again: u64,
    mut write: impl FnMut() -> Result<T, DbError>,
) -> Result<T, DbError> {
    let mut tries = 0;
    loop {
        match write() {
            Err(DbError::Query(e)) if is_conflict(&e) && tries < again => {
                tries += 1;
                tracing::info!(
                    tries,
                    "{what} conflicted with another writer; writing it again"
                );
                let pause = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=4 * tries);
                std::thread::sleep(Duration::from_millis(pause));
            }
            r => return r,
        }
    }
}

/// The database's own clock (UTC), in whole seconds.
pub fn clock(conn: &mut DbConnection) -> Result<chrono::NaiveDateTime, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Now {
        #[diesel(sql_type = diesel::sql_types::Timestamp)]
        now: chrono::NaiveDateTime,
    }
    let sql = if raw::is_mysql(conn) {
        "SELECT UTC_TIMESTAMP() AS now"
    } else {
        "SELECT datetime('now') AS now"
    };
    let rows: Vec<Now> = raw::load(conn, sql, Vec::new()).map_err(classify)?;
    rows.into_iter()
        .next()
        .map(|r| r.now)
        .ok_or_else(|| DbError::Invalid("the database did not say what time it is".into()))
}

/// Now, in whole seconds: what a person reads at a mysql> prompt, and what both backends store.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::Timelike;
    let n = chrono::Utc::now().naive_utc();
    n.with_nanosecond(0).unwrap_or(n)
}

/// A migrated SQLite database in `dir`, for unit tests.
#[cfg(test)]
pub fn temp(dir: &tempfile::TempDir) -> Db {
    let db = Db::connect(&DbSettings {
        url: dir.path().join("t.sqlite").display().to_string(),
        min_connections: 1,
        max_connections: 8,
        idle_timeout: Duration::from_secs(60),
        claim: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    db.migrate().unwrap_or_else(|e| panic!("{e}"));
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_migration_trees_have_the_same_names() {
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(format!(
                "{}/../migrations/{dir}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
            v.sort();
            v
        };
        let (m, s) = (names("mysql"), names("sqlite"));
        assert!(!m.is_empty());
        assert_eq!(m, s);
    }

    #[test]
    fn sqlite_commits_are_durable_at_a_power_cut() {
        #[derive(diesel::QueryableByName)]
        struct Sync {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            synchronous: i32,
        }
        let dir = tempfile::tempdir().unwrap();
        let mut conn = temp(&dir).conn().unwrap();
        let rows: Vec<Sync> = raw::load(&mut conn, "PRAGMA synchronous", vec![]).unwrap();
        assert_eq!(rows.first().map(|r| r.synchronous), Some(2), "2 is FULL");
    }

    #[test]
    fn the_clock_is_the_databases() {
        let dir = tempfile::tempdir().unwrap();
        let db = temp(&dir);
        let skew = db.sync_clock().unwrap();
        // SQLite's clock is this machine's: whole seconds, so within one.
        assert!(skew.num_milliseconds().abs() <= 1000, "{skew:?}");
        let theirs = clock(&mut db.conn().unwrap()).unwrap();
        assert!((db.now() - theirs).num_seconds().abs() <= 1);
        // A skew once measured moves every stamp with it.
        db.skew_ms
            .store(15_000, std::sync::atomic::Ordering::Relaxed);
        assert!((db.now() - theirs).num_seconds() >= 14);
    }

    #[test]
    fn a_lost_server_is_unavailable_whatever_the_error_shape() {
        use diesel::result::{DatabaseErrorKind, Error as E};
        let lost = |m: &str| E::DatabaseError(DatabaseErrorKind::Unknown, Box::new(m.to_string()));
        let cut_commit = E::RollbackErrorOnCommit {
            rollback_error: Box::new(lost("Server has gone away")),
            commit_error: Box::new(lost("Lost connection to server during query")),
        };
        for e in [
            lost("MySQL server has gone away"),
            cut_commit,
            E::BrokenTransactionManager,
        ] {
            assert!(matches!(classify(e), DbError::Unavailable(_)));
        }
        let bad_value = lost("Column 'state_since' cannot be null");
        assert!(matches!(classify(bad_value), DbError::Query(_)));
    }

    #[test]
    fn urls_pick_a_backend_and_hide_passwords() {
        assert_eq!(backend_of("/var/lib/d.sqlite").unwrap(), "sqlite");
        assert_eq!(backend_of("sqlite:///tmp/x.db").unwrap(), "sqlite");
        assert!(backend_of("postgres://x").is_err());
        assert_eq!(
            redact("mysql://root:secret@127.0.0.1:3306/test"),
            "mysql://root:***@127.0.0.1:3306/test"
        );
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
    }

    #[test]
    fn a_transaction_that_reads_then_writes_is_not_locked_out_by_a_writer() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = temp(&dir);
        let count =
            |c: &mut DbConnection| -> Result<usize, DbError> { Ok(workers::list(c)?.len()) };
        let (a, b) = (db.clone(), db.clone());
        let reader_writer = std::thread::spawn(move || {
            let mut c = a.conn()?;
            write_transaction(&mut c, |c| {
                let before = count(c)?;
                std::thread::sleep(Duration::from_millis(300));
                workers::set_draining(c, "nobody", true)?;
                Ok(before)
            })
        });
        std::thread::sleep(Duration::from_millis(100));
        // Another connection writes while the first has read and not yet written.
        let mut c = b.conn().unwrap_or_else(|e| panic!("{e}"));
        let info = damocles_actors::wire::venus::WorkerInfo {
            name: "w".into(),
            dest: "127.0.0.1:1".into(),
            version: "t".into(),
            summary: Default::default(),
            threads: None,
        };
        workers::upsert_pings(&mut c, &[info], now()).unwrap_or_else(|e| panic!("{e}"));
        let first = reader_writer.join().unwrap_or_else(|_| panic!("thread"));
        assert_eq!(first.ok(), Some(0), "the first transaction committed");
        assert_eq!(count(&mut c).ok(), Some(1));
    }
}
