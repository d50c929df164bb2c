//! The manager's scheduling rules for new work: whether a worker may get a new sector or
//! WindowPoSt job now. Every refusal is logged in one greppable form,
//! `sched: not scheduling <worker>: <reason>`.

use tracing::info;

use crate::db::{self, Db, DbError};

/// Why `worker` gets no new work now, or None when it may have some. `what` names the work
/// (`sector`, `wdpost job`) for the log.
pub async fn refusal(db: &Db, worker: &str, what: &str) -> Result<Option<String>, DbError> {
    if worker.is_empty() {
        return Ok(None);
    }
    let w = worker.to_string();
    let draining = db.run(move |c| db::workers::is_draining(c, &w)).await?;
    if !draining {
        return Ok(None);
    }
    let reason = "draining".to_string();
    info!(worker, what, reason = %reason, "sched: not scheduling {worker}: {reason}");
    Ok(Some(reason))
}
