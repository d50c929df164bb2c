//! The audit log of operators' actions: an action in the database and its row in one
//! transaction, written only when it changed something; an action on a worker, after it
//! succeeded.

use super::{Admin, RestState};
use crate::db::{self, audit, DbConnection, DbError};
use crate::error::ApiError;

/// Audits an action done outside the database (on a worker): written after it succeeded. The
/// action happened whatever the audit write does, so a failed write is logged, not answered.
pub(crate) async fn record_done(
    s: &RestState,
    admin: &Admin,
    action: &str,
    target: &str,
    detail: Option<String>,
    result: &str,
) {
    let (actor, action, target, result) = (
        admin.0.clone(),
        action.to_string(),
        target.to_string(),
        result.to_string(),
    );
    let written =
        s.db.run(move |c| {
            let entry = audit::Entry {
                actor: &actor,
                action: &action,
                target: &target,
                detail,
                result: &result,
            };
            audit::record(c, entry, db::now())
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "an action was done but its audit row could not be written");
    }
}

/// What a database action did, for its audit row.
pub(crate) struct Done {
    pub result: String,
    pub detail: Option<String>,
}

/// A change with only its result to log.
pub(crate) fn done(result: &str) -> Done {
    Done {
        result: result.to_string(),
        detail: None,
    }
}

/// Runs a database action and, when it changed something (a `Done`), its audit row, in one
/// transaction: the log holds every change and nothing that did not happen.
pub(crate) async fn audited<T: Send + 'static>(
    s: &RestState,
    admin: &Admin,
    action: &str,
    target: &str,
    act: impl FnOnce(&mut DbConnection) -> Result<(T, Option<Done>), DbError> + Send + 'static,
) -> Result<T, ApiError> {
    let (actor, action, target) = (admin.0.clone(), action.to_string(), target.to_string());
    let out =
        s.db.run(move |c| {
            db::write_transaction(c, |c| {
                let (out, done) = act(c)?;
                if let Some(done) = done {
                    let entry = audit::Entry {
                        actor: &actor,
                        action: &action,
                        target: &target,
                        detail: done.detail,
                        result: &done.result,
                    };
                    audit::record(c, entry, db::now())?;
                }
                Ok(out)
            })
        })
        .await?;
    Ok(out)
}

/// The action most routes do: `act` changes one named thing (`target`) and says whether there
/// was one to change. Its audit row goes in the same transaction; when there was nothing to
/// change, nothing is written and the answer is `missing(target)` (a 404, or a 409).
pub(crate) async fn change_one(
    s: &RestState,
    admin: &Admin,
    action: &str,
    target: &str,
    result: &str,
    act: impl FnOnce(&mut DbConnection, &str) -> Result<bool, DbError> + Send + 'static,
    missing: impl FnOnce(&str) -> ApiError,
) -> Result<(), ApiError> {
    let (t, result) = (target.to_string(), result.to_string());
    let changed = audited(s, admin, action, target, move |c| {
        let yes = act(c, &t)?;
        Ok((yes, yes.then(|| done(&result))))
    })
    .await?;
    if changed {
        Ok(())
    } else {
        Err(missing(target))
    }
}
