//! The worker's management methods (`VenusWorker.*` on `POST /` of its `rpc_server`), with
//! damocles-worker v0.13.1's positional parameters (`src/rpc/worker/mod.rs`), plus two of ours
//! (the stage limits) under names of their own. Calls that change anything need the manager's
//! credential (`wire::auth`).

use std::collections::BTreeMap;

use super::method::{arity, method};
use super::worker_api::ThreadInfo;
use crate::wire::worker_api::StageUse;

method!(
    WorkerList = "VenusWorker.WorkerList" () -> Vec<ThreadInfo>
);
method!(
    /// True when the pause was taken, false when one was already pending or in force.
    WorkerPause = "VenusWorker.WorkerPause" (index: usize) -> bool
);
method!(
    /// True when the thread was parked and now goes on (from `set_to` if given), false when it
    /// was not parked.
    WorkerResume = "VenusWorker.WorkerResume" (index: usize, set_to: Option<String>) -> bool
);
method!(
    /// Sets a variable in the environment of processor children started from now on.
    WorkerSetEnv = "VenusWorker.WorkerSetEnv" (name: String, value: String) -> ()
);
method!(
    WorkerRemoveEnv = "VenusWorker.WorkerRemoveEnv" (name: String) -> ()
);
method!(
    WorkerVersion = "VenusWorker.WorkerVersion" () -> String
);
method!(
    /// Ours: every stage's limit and how many of it run.
    WorkerLimits = "VenusWorker.WorkerLimits" () -> BTreeMap<String, StageUse>
);
method!(
    /// Ours: changes stage limits (`{"pc1": 1, "c2": null}`), now and in the config file.
    WorkerSetLimits = "VenusWorker.WorkerSetLimits" (changes: BTreeMap<String, Option<usize>>) -> BTreeMap<String, StageUse>
);

/// Every method above, by wire name and arity.
pub const ALL: &[(&str, usize)] = &[
    arity::<WorkerList>(),
    arity::<WorkerPause>(),
    arity::<WorkerResume>(),
    arity::<WorkerSetEnv>(),
    arity::<WorkerRemoveEnv>(),
    arity::<WorkerVersion>(),
    arity::<WorkerLimits>(),
    arity::<WorkerSetLimits>(),
];

/// Ours, with no damocles counterpart.
pub const EXTENSIONS: &[&str] = &["VenusWorker.WorkerLimits", "VenusWorker.WorkerSetLimits"];

/// Whether a method only reads (open to unauthenticated callers where the worker allows it).
pub fn is_read(name: &str) -> bool {
    use super::method::Method;
    [WorkerList::NAME, WorkerVersion::NAME, WorkerLimits::NAME].contains(&name)
}
