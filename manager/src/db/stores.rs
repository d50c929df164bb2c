//! `stores`: persist store names accepted by `StoreBasicInfo` in mock mode; and
//! `store_reservations`: room kept in a store for a sector until it is persisted.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::raw::{execute, is_mysql, Val};
use super::schema::store_reservations as r;
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

/// Bytes reserved in each of `stores` by sectors other than (`miner`, `number`).
pub fn reserved_elsewhere(
    conn: &mut DbConnection,
    stores: &[String],
    miner: u64,
    number: u64,
) -> Result<HashMap<String, u64>, DbError> {
    let rows: Vec<(i64, i64, String, i64)> = r::table
        .filter(r::store_name.eq_any(stores))
        .select((r::miner_id, r::sector_number, r::store_name, r::bytes))
        .load(conn)
        .map_err(classify)?;
    let mut out = HashMap::new();
    for (m, n, store, bytes) in rows {
        if (m, n) != (miner as i64, number as i64) {
            *out.entry(store).or_insert(0u64) += u64::try_from(bytes).unwrap_or(0);
        }
    }
    Ok(out)
}

/// Keeps `bytes` of `store` for the sector (replacing an earlier reservation of it).
pub fn reserve(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    store: &str,
    bytes: i64,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        release_in(c, miner, number)?;
        diesel::insert_into(r::table)
            .values((
                r::miner_id.eq(miner as i64),
                r::sector_number.eq(number as i64),
                r::store_name.eq(store),
                r::bytes.eq(bytes),
                r::created_at.eq(at),
            ))
            .execute(c)?;
        Ok(())
    })
    .map_err(classify)
}

/// Forgets the sector's reservation, if it has one.
pub fn release(conn: &mut DbConnection, miner: u64, number: u64) -> Result<(), DbError> {
    release_in(conn, miner, number).map_err(classify)
}

fn release_in(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
) -> Result<(), diesel::result::Error> {
    diesel::delete(
        r::table
            .filter(r::miner_id.eq(miner as i64))
            .filter(r::sector_number.eq(number as i64)),
    )
    .execute(conn)?;
    Ok(())
}
