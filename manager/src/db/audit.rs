//! `audit_log`: every state-changing action, who did it, to what, and how it ended.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::audit_log;
use super::{classify, DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
    pub result: String,
}

pub struct Entry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: Option<String>,
    pub result: &'a str,
}

pub fn record(conn: &mut DbConnection, e: Entry<'_>, at: NaiveDateTime) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(at),
            audit_log::actor.eq(e.actor),
            audit_log::action.eq(e.action),
            audit_log::target.eq(e.target),
            audit_log::detail.eq(e.detail),
            audit_log::result.eq(e.result),
        ))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

pub fn recent(conn: &mut DbConnection, limit: i64) -> Result<Vec<AuditRow>, DbError> {
    audit_log::table
        .select(AuditRow::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .load(conn)
        .map_err(classify)
}
