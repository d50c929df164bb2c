//! `deals` and `pieces`: the mock market. A deal waits for a sector, is assigned to exactly one
//! (a conditional update: two managers cannot both take it), becomes active when that sector
//! is proven or snapped, and goes back to waiting when the sector is aborted.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::{deals, pieces};
use super::{classify, write_transaction, DbConnection, DbError};

/// A deal waits for a sector.
pub const WAITING: &str = "Waiting";
/// A deal is in a sector that is not proven yet (or a snap-up not done yet).
pub const ASSIGNED: &str = "Assigned";
/// A deal is in a proven (or snapped) sector.
pub const ACTIVE: &str = "Active";

#[derive(
    Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema,
)]
#[diesel(table_name = deals)]
pub struct DealRow {
    pub deal_id: i64,
    pub miner_id: i64,
    pub piece_cid: String,
    /// Padded bytes.
    pub piece_size: i64,
    /// The client's bytes.
    pub payload_size: i64,
    pub client: String,
    pub start_epoch: i64,
    pub end_epoch: i64,
    pub price: String,
    pub state: String,
    pub sector_number: Option<i64>,
    /// Padded bytes from the sector's start.
    pub piece_offset: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A deal to create.
pub struct NewDeal {
    pub miner: u64,
    pub piece_cid: String,
    pub piece_size: u64,
    pub payload: Vec<u8>,
    pub client: String,
    pub start_epoch: i64,
    pub end_epoch: i64,
}

/// Keeps the piece (once per CID) and creates its deal with the next id; the caller's
/// transaction (with its audit row) makes the two one change.
pub fn import(conn: &mut DbConnection, d: NewDeal, at: NaiveDateTime) -> Result<DealRow, DbError> {
    let c = conn;
    {
        let known: i64 = pieces::table
            .filter(pieces::piece_cid.eq(&d.piece_cid))
            .count()
            .get_result(c)?;
        if known == 0 {
            diesel::insert_into(pieces::table)
                .values((
                    pieces::piece_cid.eq(&d.piece_cid),
                    pieces::payload.eq(&d.payload),
                    pieces::created_at.eq(at),
                ))
                .execute(c)?;
        }
        let last: Option<i64> = deals::table
            .select(diesel::dsl::max(deals::deal_id))
            .first(c)?;
        let row = DealRow {
            deal_id: last.unwrap_or(0) + 1,
            miner_id: d.miner as i64,
            piece_cid: d.piece_cid.clone(),
            piece_size: d.piece_size as i64,
            payload_size: d.payload.len() as i64,
            client: d.client.clone(),
            start_epoch: d.start_epoch,
            end_epoch: d.end_epoch,
            price: "0".into(),
            state: WAITING.into(),
            sector_number: None,
            piece_offset: None,
            created_at: at,
            updated_at: at,
        };
        diesel::insert_into(deals::table)
            .values((
                deals::deal_id.eq(row.deal_id),
                deals::miner_id.eq(row.miner_id),
                deals::piece_cid.eq(&row.piece_cid),
                deals::piece_size.eq(row.piece_size),
                deals::payload_size.eq(row.payload_size),
                deals::client.eq(&row.client),
                deals::start_epoch.eq(row.start_epoch),
                deals::end_epoch.eq(row.end_epoch),
                deals::price.eq(&row.price),
                deals::state.eq(&row.state),
                deals::created_at.eq(at),
                deals::updated_at.eq(at),
            ))
            .execute(c)?;
        Ok(row)
    }
}

/// Every deal (of `miner`, when given), by id.
pub fn list(conn: &mut DbConnection, miner: Option<u64>) -> Result<Vec<DealRow>, DbError> {
    let mut q = deals::table.select(DealRow::as_select()).into_boxed();
    if let Some(m) = miner {
        q = q.filter(deals::miner_id.eq(m as i64));
    }
    q.order(deals::deal_id.asc()).load(conn).map_err(classify)
}

/// The deals in a sector, in sector order.
pub fn of_sector(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
) -> Result<Vec<DealRow>, DbError> {
    deals::table
        .select(DealRow::as_select())
        .filter(deals::miner_id.eq(miner as i64))
        .filter(deals::sector_number.eq(number as i64))
        .order(deals::piece_offset.asc())
        .load(conn)
        .map_err(classify)
}

/// The client's bytes of a piece.
pub fn piece(conn: &mut DbConnection, cid: &str) -> Result<Option<Vec<u8>>, DbError> {
    pieces::table
        .filter(pieces::piece_cid.eq(cid))
        .select(pieces::payload)
        .first(conn)
        .optional()
        .map_err(classify)
}

/// What a thread asks deals for: at most `max` deals, filling at least `min` bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    pub max: Option<u64>,
    pub min: Option<u64>,
}

/// Which waiting deals go into a sector of `sector` bytes: oldest first, as many as fit (at
/// most `want.max`; none when they fill less than `want.min`), then ordered largest first so
/// that no piece needs padding before it; with the offset of each.
pub fn pack(waiting: &[DealRow], sector: u64, want: Want) -> Vec<(i64, u64)> {
    let max = want.max;
    let mut chosen: Vec<&DealRow> = Vec::new();
    let mut used = 0u64;
    for d in waiting {
        if max.is_some_and(|m| chosen.len() as u64 >= m) {
            break;
        }
        let size = d.piece_size as u64;
        // Largest first, every size a power of two: the space used is the plain sum.
        if used + size <= sector {
            used += size;
            chosen.push(d);
        }
    }
    if want.min.is_some_and(|min| used < min) {
        return Vec::new();
    }
    chosen.sort_by_key(|d| (std::cmp::Reverse(d.piece_size), d.deal_id));
    let mut offset = 0u64;
    chosen
        .into_iter()
        .map(|d| {
            let at = offset;
            offset += d.piece_size as u64;
            (d.deal_id, at)
        })
        .collect()
}

/// Gives sector `number` waiting deals of `miner` (see [`pack`]) unless it has deals already
/// (a retried call gets the same ones). Each deal moves with a conditional update, so a deal
/// another manager took meanwhile is left out. Runs inside the caller's transaction.
pub fn assign_in(
    c: &mut DbConnection,
    miner: u64,
    number: u64,
    sector: u64,
    want: Want,
    at: NaiveDateTime,
) -> Result<Vec<DealRow>, DbError> {
    let held = of_sector(c, miner, number)?;
    if !held.is_empty() {
        return Ok(held);
    }
    let waiting: Vec<DealRow> = deals::table
        .select(DealRow::as_select())
        .filter(deals::miner_id.eq(miner as i64))
        .filter(deals::state.eq(WAITING))
        .order(deals::deal_id.asc())
        .limit(10_000)
        .load(c)?;
    let mut offset = 0i64;
    for (id, _) in pack(&waiting, sector, want) {
        let size = waiting
            .iter()
            .find(|d| d.deal_id == id)
            .map_or(0, |d| d.piece_size);
        let moved = diesel::update(
            deals::table
                .filter(deals::deal_id.eq(id))
                .filter(deals::state.eq(WAITING)),
        )
        .set((
            deals::state.eq(ASSIGNED),
            deals::sector_number.eq(number as i64),
            deals::piece_offset.eq(offset),
            deals::updated_at.eq(at),
        ))
        .execute(c)?;
        if moved == 1 {
            offset += size;
        }
    }
    of_sector(c, miner, number)
}

/// [`assign_in`] in a transaction of its own.
pub fn assign(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    sector: u64,
    want: Want,
    at: NaiveDateTime,
) -> Result<Vec<DealRow>, DbError> {
    write_transaction(conn, |c| assign_in(c, miner, number, sector, want, at))
}

/// Sector `number`'s deals wait for another sector again (it was aborted). Active deals stay.
pub fn release(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    at: NaiveDateTime,
) -> Result<usize, DbError> {
    diesel::update(
        deals::table
            .filter(deals::miner_id.eq(miner as i64))
            .filter(deals::sector_number.eq(number as i64))
            .filter(deals::state.eq(ASSIGNED)),
    )
    .set((
        deals::state.eq(WAITING),
        deals::sector_number.eq(None::<i64>),
        deals::piece_offset.eq(None::<i64>),
        deals::updated_at.eq(at),
    ))
    .execute(conn)
    .map_err(classify)
}

/// Sector `number`'s deals are active: the sector is proven or snapped.
pub fn activate(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    at: NaiveDateTime,
) -> Result<usize, DbError> {
    diesel::update(
        deals::table
            .filter(deals::miner_id.eq(miner as i64))
            .filter(deals::sector_number.eq(number as i64))
            .filter(deals::state.eq(ASSIGNED)),
    )
    .set((deals::state.eq(ACTIVE), deals::updated_at.eq(at)))
    .execute(conn)
    .map_err(classify)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deal(c: &mut DbConnection, payload: &[u8], size: u64) -> DealRow {
        let d = NewDeal {
            miner: 1000,
            piece_cid: format!("baga-{}", payload.len()),
            piece_size: size,
            payload: payload.to_vec(),
            client: "t01001".into(),
            start_epoch: 1,
            end_epoch: 2,
        };
        import(c, d, crate::db::now()).unwrap()
    }

    #[test]
    fn packing_takes_what_fits_largest_first_without_gaps() {
        let rows: Vec<DealRow> = [(1, 128), (2, 1024), (3, 1024), (4, 256)]
            .into_iter()
            .map(|(id, size)| DealRow {
                deal_id: id,
                miner_id: 1,
                piece_cid: String::new(),
                piece_size: size,
                payload_size: 1,
                client: String::new(),
                start_epoch: 0,
                end_epoch: 0,
                price: "0".into(),
                state: WAITING.into(),
                sector_number: None,
                piece_offset: None,
                created_at: crate::db::now(),
                updated_at: crate::db::now(),
            })
            .collect();
        // 128 + 1024 fit; the second 1024 does not; 256 does.
        let want = |max, min| Want { max, min };
        assert_eq!(
            pack(&rows, 2048, want(None, None)),
            vec![(2, 0), (4, 1024), (1, 1280)]
        );
        assert_eq!(
            pack(&rows, 2048, want(Some(2), None)),
            vec![(2, 0), (1, 1024)]
        );
        assert!(pack(&rows, 64, want(None, None)).is_empty());
        // 1408 bytes is all that fits: asking for more gets nothing.
        assert_eq!(pack(&rows, 2048, want(None, Some(1408))).len(), 3);
        assert!(pack(&rows, 2048, want(None, Some(1409))).is_empty());
    }

    #[test]
    fn a_deal_lands_in_one_sector_and_comes_back_when_it_is_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::temp(&dir);
        let mut c = db.conn().unwrap();
        let at = crate::db::now();
        let a = deal(&mut c, b"first", 128);
        let b = deal(&mut c, b"second one", 128);
        assert_eq!((a.deal_id, b.deal_id), (1, 2));
        let s1 = assign(
            &mut c,
            1000,
            1,
            2048,
            Want {
                max: Some(1),
                min: None,
            },
            at,
        )
        .unwrap();
        assert_eq!(s1.len(), 1);
        assert_eq!(s1[0].deal_id, 1);
        // A retry gets the same deal, and no other sector gets it.
        assert_eq!(
            assign(&mut c, 1000, 1, 2048, Want::default(), at).unwrap(),
            s1
        );
        let s2 = assign(&mut c, 1000, 2, 2048, Want::default(), at).unwrap();
        assert_eq!(s2.iter().map(|d| d.deal_id).collect::<Vec<_>>(), vec![2]);
        assert!(assign(&mut c, 1000, 3, 2048, Want::default(), at)
            .unwrap()
            .is_empty());
        // Sector 1 aborted: its deal waits again and goes to the next sector.
        assert_eq!(release(&mut c, 1000, 1, at).unwrap(), 1);
        assert_eq!(activate(&mut c, 1000, 2, at).unwrap(), 1);
        assert_eq!(
            release(&mut c, 1000, 2, at).unwrap(),
            0,
            "active deals stay"
        );
        let s3 = assign(&mut c, 1000, 3, 2048, Want::default(), at).unwrap();
        assert_eq!(s3.iter().map(|d| d.deal_id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(
            piece(&mut c, &a.piece_cid).unwrap().as_deref(),
            Some(&b"first"[..])
        );
    }

    #[test]
    fn two_connections_racing_for_the_same_deals_each_get_different_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::temp(&dir);
        {
            let mut c = db.conn().unwrap();
            for i in 0..40u8 {
                deal(&mut c, &vec![i; usize::from(i) + 1], 128);
            }
        }
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut c = db.conn().unwrap();
                    let mut got = Vec::new();
                    for n in 0..5 {
                        let sector = 100 * (t + 1) + n;
                        got.extend(
                            assign(&mut c, 1000, sector, 512, Want::default(), crate::db::now())
                                .unwrap()
                                .into_iter()
                                .map(|d| d.deal_id),
                        );
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<i64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no deal in two sectors");
        assert_eq!(n, 40, "4 threads x 5 sectors x 4 deals of 128 bytes in 512");
    }
}
