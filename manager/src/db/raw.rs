//! Hand-written statements that run on either backend: upserts and `INSERT IGNORE` differ
//! between MySQL and SQLite, and diesel's `MultiConnection` cannot build multi-row inserts.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::DbConnection;

/// A value bound into a hand-written statement.
pub enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Time(NaiveDateTime),
}

fn bind_all<DB>(
    mut q: BoxedSqlQuery<'static, DB, SqlQuery>,
    vals: Vec<Val>,
) -> BoxedSqlQuery<'static, DB, SqlQuery>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Timestamp>,
    String: diesel::serialize::ToSql<Text, DB>,
    Option<String>: diesel::serialize::ToSql<Nullable<Text>, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
{
    for v in vals {
        q = match v {
            Val::Text(s) => q.bind::<Text, _>(s),
            Val::OptText(s) => q.bind::<Nullable<Text>, _>(s),
            Val::Int(i) => q.bind::<BigInt, _>(i),
            Val::Time(t) => q.bind::<Timestamp, _>(t),
        };
    }
    q
}

/// Runs a hand-written statement on whichever backend the connection is.
pub fn execute(conn: &mut DbConnection, sql: &str, vals: Vec<Val>) -> QueryResult<usize> {
    match conn {
        DbConnection::Sqlite(c) => {
            bind_all(diesel::sql_query(sql.to_string()).into_boxed(), vals).execute(c)
        }
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => {
            bind_all(diesel::sql_query(sql.to_string()).into_boxed(), vals).execute(c)
        }
    }
}

/// Runs a hand-written query on whichever backend the connection is and loads its rows.
pub fn load<T>(conn: &mut DbConnection, sql: &str, vals: Vec<Val>) -> QueryResult<Vec<T>>
where
    T: QueryableByName<diesel::sqlite::Sqlite> + 'static,
    T: MysqlRow,
{
    match conn {
        DbConnection::Sqlite(c) => {
            bind_all(diesel::sql_query(sql.to_string()).into_boxed(), vals).load(c)
        }
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => {
            bind_all(diesel::sql_query(sql.to_string()).into_boxed(), vals).load(c)
        }
    }
}

/// Rows that `load` can read from MySQL too (nothing to require without the feature).
#[cfg(feature = "mysql")]
pub trait MysqlRow: QueryableByName<diesel::mysql::Mysql> {}
#[cfg(feature = "mysql")]
impl<T: QueryableByName<diesel::mysql::Mysql>> MysqlRow for T {}
#[cfg(not(feature = "mysql"))]
pub trait MysqlRow {}
#[cfg(not(feature = "mysql"))]
impl<T> MysqlRow for T {}

pub fn is_mysql(conn: &DbConnection) -> bool {
    !matches!(conn, DbConnection::Sqlite(_))
}

/// The upsert tail for a table keyed by `key`, setting `cols` from the new row.
pub fn upsert_clause(mysql: bool, key: &[&str], cols: &[&str]) -> String {
    if mysql {
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
        format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
    } else {
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = excluded.{c}")).collect();
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            key.join(", "),
            sets.join(", ")
        )
    }
}

/// `(?, ?, ?)` for an `IN` list of `n` values.
pub fn in_list(n: usize) -> String {
    format!("({})", vec!["?"; n].join(", "))
}

pub fn placeholders(rows: usize, cols: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(", "));
    vec![one; rows].join(", ")
}
