//! Pruning of the tables that only grow: the decision log, the audit log, archived WindowPoSt
//! jobs and store names recorded in mock mode that nothing uses. Rows go in batches, so no
//! statement holds a table for long, and each batch is one statement: safe in many managers.

use chrono::NaiveDateTime;
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;

use super::raw::{execute, in_list, load, Val};
use super::{classify, DbConnection, DbError};

/// Rows removed per statement.
const BATCH: usize = 5_000;

/// A table that is pruned by age: its key column (numeric or text), its time column, and what
/// else a row must satisfy to go.
pub struct Rule {
    pub table: &'static str,
    pub key: &'static str,
    pub numeric_key: bool,
    pub time: &'static str,
    pub also: &'static str,
}

pub const SCHED_LOG: Rule = Rule {
    table: "sched_log",
    key: "id",
    numeric_key: true,
    time: "at",
    also: "",
};

pub const AUDIT_LOG: Rule = Rule {
    table: "audit_log",
    key: "id",
    numeric_key: true,
    time: "at",
    also: "",
};

pub const ARCHIVED_JOBS: Rule = Rule {
    table: "wdpost_jobs_archived",
    key: "id",
    numeric_key: false,
    time: "finished_at",
    also: "",
};

/// Store names no sector and no reservation points at.
pub const UNUSED_STORES: Rule = Rule {
    table: "stores",
    key: "name",
    numeric_key: false,
    time: "created_at",
    also: " AND name NOT IN (SELECT persist_store FROM sectors WHERE persist_store IS NOT NULL) \
           AND name NOT IN (SELECT store_name FROM store_reservations)",
};

#[derive(QueryableByName)]
struct NumKey {
    #[diesel(sql_type = BigInt)]
    k: i64,
}

#[derive(QueryableByName)]
struct TextKey {
    #[diesel(sql_type = Text)]
    k: String,
}

/// Removes the rows of `rule` older than `cutoff`; returns how many went.
pub fn prune(
    conn: &mut DbConnection,
    rule: &Rule,
    cutoff: NaiveDateTime,
) -> Result<usize, DbError> {
    let Rule {
        table,
        key,
        time,
        also,
        ..
    } = rule;
    let select = format!("SELECT {key} AS k FROM {table} WHERE {time} < ?{also} LIMIT ?");
    let mut total = 0;
    loop {
        let args = vec![Val::Time(cutoff), Val::Int(BATCH as i64)];
        let keys: Vec<Val> = if rule.numeric_key {
            let rows: Vec<NumKey> = load(conn, &select, args).map_err(classify)?;
            rows.into_iter().map(|r| Val::Int(r.k)).collect()
        } else {
            let rows: Vec<TextKey> = load(conn, &select, args).map_err(classify)?;
            rows.into_iter().map(|r| Val::Text(r.k)).collect()
        };
        let n = keys.len();
        if n == 0 {
            return Ok(total);
        }
        let mut vals = keys;
        vals.push(Val::Time(cutoff));
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN {} AND {time} < ?{also}",
            in_list(n)
        );
        total += execute(conn, &sql, vals).map_err(classify)?;
        if n < BATCH {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(days_ago: i64) -> NaiveDateTime {
        crate::db::now() - chrono::Duration::days(days_ago)
    }

    fn count(c: &mut DbConnection, table: &str) -> i64 {
        let rows: Vec<NumKey> =
            load(c, &format!("SELECT COUNT(*) AS k FROM {table}"), vec![]).unwrap();
        rows[0].k
    }

    #[test]
    fn old_rows_go_and_the_rest_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::db::temp(&dir).conn().unwrap();
        for (i, days) in [10, 9, 1, 0].into_iter().enumerate() {
            let at = Val::Time(t(days));
            execute(
                &mut c,
                "INSERT INTO sched_log (at, worker_name, decision, work, reason) VALUES (?, 'w', 'granted', 'x', '')",
                vec![at],
            )
            .unwrap();
            execute(
                &mut c,
                "INSERT INTO audit_log (at, actor, action, target, result) VALUES (?, 'a', 'x', 'y', 'z')",
                vec![Val::Time(t(days))],
            )
            .unwrap();
            execute(
                &mut c,
                "INSERT INTO stores (name, path, created_at) VALUES (?, '', ?)",
                vec![Val::Text(format!("store-{i}")), Val::Time(t(days))],
            )
            .unwrap();
        }
        // An old store a sector was persisted to stays.
        execute(
            &mut c,
            "INSERT INTO sectors (miner_id, sector_number, proof_type, state, persist_store, created_at, updated_at) VALUES (1, 1, 5, 'Finished', 'store-0', ?, ?)",
            vec![Val::Time(t(10)), Val::Time(t(10))],
        )
        .unwrap();
        let cutoff = t(5);
        assert_eq!(prune(&mut c, &SCHED_LOG, cutoff).unwrap(), 2);
        assert_eq!(prune(&mut c, &AUDIT_LOG, cutoff).unwrap(), 2);
        assert_eq!(prune(&mut c, &UNUSED_STORES, cutoff).unwrap(), 1);
        assert_eq!(prune(&mut c, &ARCHIVED_JOBS, cutoff).unwrap(), 0);
        assert_eq!(count(&mut c, "sched_log"), 2);
        assert_eq!(count(&mut c, "audit_log"), 2);
        assert_eq!(count(&mut c, "stores"), 3);
        // Nothing more to do the second time.
        assert_eq!(prune(&mut c, &SCHED_LOG, cutoff).unwrap(), 0);
    }

    #[test]
    fn many_rows_go_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::db::temp(&dir).conn().unwrap();
        let n = BATCH * 2 + 7;
        let cols = "at, worker_name, decision, work, reason";
        for start in (0..n).step_by(1000) {
            let k = (n - start).min(1000);
            let mut vals = Vec::new();
            for _ in 0..k {
                vals.extend([
                    Val::Time(t(30)),
                    Val::Text("w".into()),
                    Val::Text("granted".into()),
                    Val::Text("x".into()),
                    Val::Text(String::new()),
                ]);
            }
            let sql = format!(
                "INSERT INTO sched_log ({cols}) VALUES {}",
                super::super::raw::placeholders(k, 5)
            );
            execute(&mut c, &sql, vals).unwrap();
        }
        assert_eq!(prune(&mut c, &SCHED_LOG, t(1)).unwrap(), n);
        assert_eq!(count(&mut c, "sched_log"), 0);
    }
}
