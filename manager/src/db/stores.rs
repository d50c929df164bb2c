//! `stores`: persist store names accepted by `StoreBasicInfo` in mock mode.

use chrono::NaiveDateTime;

use super::raw::{execute, is_mysql, Val};
use super::{classify, DbConnection, DbError};

/// Records a store name (once).
pub fn record(
    conn: &mut DbConnection,
    name: &str,
    path: &str,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    let ignore = if is_mysql(conn) {
        "INSERT IGNORE"
    } else {
        "INSERT OR IGNORE"
    };
    execute(
        conn,
        &format!("{ignore} INTO stores (name, path, created_at) VALUES (?, ?, ?)"),
        vec![
            Val::Text(name.into()),
            Val::Text(path.into()),
            Val::Time(at),
        ],
    )
    .map_err(classify)?;
    Ok(())
}
