//! Hand-written statements that run on either backend: upserts and `INSERT IGNORE` differ
//! between MySQL and SQLite, and diesel's `MultiConnection` cannot build multi-row inserts.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::DbConnection;

/// A value bound into a hand-written statement.
#[derive(Clone)]
pub enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
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
    Option<i64>: diesel::serialize::ToSql<Nullable<BigInt>, DB>,
    NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
{
    for v in vals {
        q = match v {
            Val::Text(s) => q.bind::<Text, _>(s),
            Val::OptText(s) => q.bind::<Nullable<Text>, _>(s),
            Val::Int(i) => q.bind::<BigInt, _>(i),
            Val::OptInt(i) => q.bind::<Nullable<BigInt>, _>(i),
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

/// Most values bound in one statement: under SQLite's 32,766 and MySQL's 65,535.
pub const MAX_BOUND: usize = 30_000;

/// What a duplicate key does to a column of an upserted row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDup {
    /// Part of the key.
    Key,
    /// Keeps the stored value (`first_seen_at`).
    Keep,
    /// Takes the new value.
    Refresh,
}

/// One column of a row to upsert: its name, what a duplicate key does to it, and its value.
/// A row is written as one list of cells, so names and values cannot drift apart.
pub struct Cell {
    pub col: &'static str,
    pub on_dup: OnDup,
    pub val: Val,
}

impl Cell {
    pub fn new(col: &'static str, on_dup: OnDup, val: Val) -> Self {
        Cell { col, on_dup, val }
    }
}

/// Inserts `rows` with as few statements as the placeholder limits allow; on a duplicate key,
/// the `Refresh` cells are updated. Every row must have the first row's columns, in order.
pub fn upsert_rows(conn: &mut DbConnection, table: &str, rows: Vec<Vec<Cell>>) -> QueryResult<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let names: Vec<&'static str> = first.iter().map(|c| c.col).collect();
    let pick = |want: OnDup| -> Vec<&str> {
        first
            .iter()
            .filter(|c| c.on_dup == want)
            .map(|c| c.col)
            .collect()
    };
    let (key, update) = (pick(OnDup::Key), pick(OnDup::Refresh));
    if rows
        .iter()
        .any(|r| !r.iter().map(|c| c.col).eq(names.iter().copied()))
    {
        return Err(diesel::result::Error::QueryBuilderError(
            format!("rows for {table} do not all have the columns {names:?}").into(),
        ));
    }
    let tail = upsert_clause(is_mysql(conn), &key, &update);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Cell>> = rows
            .by_ref()
            .take(rows_per_statement(names.len()))
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}{tail}",
            names.join(", "),
            placeholders(chunk.len(), names.len()),
        );
        execute(
            conn,
            &sql,
            chunk.into_iter().flatten().map(|c| c.val).collect(),
        )?;
    }
    Ok(())
}

/// How many rows of `cols` columns fit in one statement.
pub fn rows_per_statement(cols: usize) -> usize {
    (MAX_BOUND / cols.max(1)).max(1)
}

pub fn placeholders(rows: usize, cols: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(", "));
    vec![one; rows].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_stay_under_both_placeholder_limits() {
        for cols in [1, 2, 11, 32] {
            let per = rows_per_statement(cols);
            // SQLite allows 32,766 values in one statement, MySQL 65,535.
            assert!(per * cols <= 32_766, "{cols}");
            assert!(per * cols > 20_000, "{cols}: {per} rows is needlessly few");
        }
        assert_eq!(rows_per_statement(0), MAX_BOUND);
    }

    #[test]
    fn thousands_of_rows_go_in_as_several_statements() {
        let mut conn = DbConnection::Sqlite(
            diesel::SqliteConnection::establish(":memory:").unwrap_or_else(|e| panic!("{e}")),
        );
        execute(
            &mut conn,
            "CREATE TABLE t (k BIGINT PRIMARY KEY, a TEXT, b TEXT)",
            vec![],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rows = |tag: &str| -> Vec<Vec<Cell>> {
            (0..25_000)
                .map(|i| {
                    vec![
                        Cell::new("k", OnDup::Key, Val::Int(i)),
                        Cell::new("a", OnDup::Refresh, Val::Text(tag.into())),
                        Cell::new("b", OnDup::Keep, Val::Text(tag.into())),
                    ]
                })
                .collect()
        };
        upsert_rows(&mut conn, "t", rows("first")).unwrap_or_else(|e| panic!("{e}"));
        upsert_rows(&mut conn, "t", rows("second")).unwrap_or_else(|e| panic!("{e}"));
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let n: Vec<N> = load(
            &mut conn,
            "SELECT COUNT(*) AS n FROM t WHERE a = 'second' AND b = 'first'",
            vec![],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.first().map(|r| r.n), Some(25_000), "a refreshed, b kept");

        let mut odd = rows("third");
        odd[1].swap(1, 2);
        let err = upsert_rows(&mut conn, "t", odd).unwrap_err().to_string();
        assert!(err.contains("do not all have the columns"), "{err}");
    }
}
