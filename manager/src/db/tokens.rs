//! `worker_tokens`: one token per worker name, kept as its SHA-256 only.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::worker_tokens;
use super::{classify, DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema)]
#[diesel(table_name = worker_tokens)]
pub struct TokenRow {
    pub worker_name: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

/// Records `hash` as `name`'s token. Refused (false) while `name` has a token that is not
/// revoked; a revoked one is replaced.
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    hash: &str,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        let replaced = diesel::update(
            worker_tokens::table
                .filter(worker_tokens::worker_name.eq(name))
                .filter(worker_tokens::revoked_at.is_not_null()),
        )
        .set((
            worker_tokens::token_hash.eq(hash),
            worker_tokens::created_at.eq(at),
            worker_tokens::revoked_at.eq(None::<NaiveDateTime>),
        ))
        .execute(c)?;
        if replaced > 0 {
            return Ok(true);
        }
        let exists = worker_tokens::table
            .filter(worker_tokens::worker_name.eq(name))
            .count()
            .get_result::<i64>(c)?
            > 0;
        if exists {
            return Ok(false);
        }
        diesel::insert_into(worker_tokens::table)
            .values((
                worker_tokens::worker_name.eq(name),
                worker_tokens::token_hash.eq(hash),
                worker_tokens::created_at.eq(at),
            ))
            .execute(c)?;
        Ok(true)
    })
    .map_err(classify)
}

/// Revokes `name`'s token; false when it has none that is not already revoked.
pub fn revoke(conn: &mut DbConnection, name: &str, at: NaiveDateTime) -> Result<bool, DbError> {
    let n = diesel::update(
        worker_tokens::table
            .filter(worker_tokens::worker_name.eq(name))
            .filter(worker_tokens::revoked_at.is_null()),
    )
    .set(worker_tokens::revoked_at.eq(at))
    .execute(conn)
    .map_err(classify)?;
    Ok(n > 0)
}

/// Every token, revoked ones included, by name.
pub fn list(conn: &mut DbConnection) -> Result<Vec<TokenRow>, DbError> {
    worker_tokens::table
        .select(TokenRow::as_select())
        .order(worker_tokens::worker_name.asc())
        .load(conn)
        .map_err(classify)
}

/// `(worker name, token hash)` of every token in force.
pub fn active(conn: &mut DbConnection) -> Result<Vec<(String, String)>, DbError> {
    worker_tokens::table
        .filter(worker_tokens::revoked_at.is_null())
        .select((worker_tokens::worker_name, worker_tokens::token_hash))
        .load(conn)
        .map_err(classify)
}

/// The hash of `name`'s token in force, to sign the manager's calls to that worker.
pub fn active_hash(conn: &mut DbConnection, name: &str) -> Result<Option<String>, DbError> {
    worker_tokens::table
        .filter(worker_tokens::worker_name.eq(name))
        .filter(worker_tokens::revoked_at.is_null())
        .select(worker_tokens::token_hash)
        .first(conn)
        .optional()
        .map_err(classify)
}
