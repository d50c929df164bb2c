//! `Scheduler`: whether a worker may get a new sector or WindowPoSt job now (not while it
//! drains; with `[mock] auto_pledge = false`, a sector only from what operators pledged to it),
//! how pledges are spread, and the decision log. Every grant and refusal is logged in one
//! greppable form (`sched: granted s-t010000-7 to worker-a #2`, `sched: not scheduling worker-b:
//! draining`), counted for `/metrics` and written to `sched_log`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::{info, warn};

use actix::{Actor, Addr};

use crate::db::sched::Decision;
use crate::db::{self, Db, DbError};
use crate::decision_log::{DecisionLog, Record};

/// The reason a draining worker is refused new work.
const DRAINING: &str = "draining";

/// A worker that has not pinged for this long gets no pledges.
const ALIVE: Duration = Duration::from_secs(300);
/// The same refusal of the same worker is written to the log at most this often (a thread asks
/// again every `recover_interval`); every one is counted.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

pub struct Scheduler {
    pub db: Db,
    /// `[mock] auto_pledge`: when false, new sectors come only from pledges.
    pub auto_pledge: bool,
    /// Decisions by (decision, reason), for `/metrics`.
    counts: Mutex<BTreeMap<(String, String), u64>>,
    /// When each (worker, reason) refusal was last logged.
    last_logged: Mutex<HashMap<(String, String), Instant>>,
    /// Writes the decisions to `sched_log`.
    log: Addr<DecisionLog>,
}

/// Most (worker, reason) pairs remembered for the once-a-minute log; beyond it the stale ones
/// are dropped, so callers with ever new names cannot grow the map.
const MAX_LOGGED_KEYS: usize = 10_000;

/// How many sectors to pledge (`util sealer sectors pledge`): exactly one of the three.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PledgeRequest {
    pub count: Option<u32>,
    #[serde(default)]
    pub fill: bool,
    #[serde(default)]
    pub once_per_worker: bool,
}

/// Adds pledged sectors as `req` asks to the workers that pinged within `ALIVE` of `now`;
/// returns what each worker got. Runs on the caller's connection, so the caller may put it in
/// one transaction with its audit row.
pub fn pledge(
    c: &mut db::DbConnection,
    req: &PledgeRequest,
    now: chrono::NaiveDateTime,
) -> Result<Vec<(String, i32)>, DbError> {
    let alive_since = now - chrono::Duration::from_std(ALIVE).unwrap_or_default();
    let active = db::sched::active_workers(c, alive_since)?;
    let budgets: HashMap<String, i32> = db::sched::budgets(c)?.into_iter().collect();
    let left = |w: &String| budgets.get(w).copied().unwrap_or(0);
    let grants: Vec<(String, i32)> = if let Some(n) = req.count {
        let have: Vec<(String, i32)> = active.iter().map(|w| (w.clone(), left(w))).collect();
        spread(n, &have)
    } else if req.fill {
        let mut g = Vec::new();
        for w in &active {
            let idle = db::sched::idle_sealers(c, w)? as i32;
            g.push((w.clone(), (idle - left(w)).max(0)));
        }
        g
    } else {
        active.iter().map(|w| (w.clone(), 1)).collect()
    };
    db::sched::add_pledges(c, &grants, now)?;
    Ok(grants)
}

/// `n` pledges spread over `workers` (name, budget left): each goes to the worker with the least,
/// ties by name, so the budgets end up as even as they can be.
pub fn spread(n: u32, workers: &[(String, i32)]) -> Vec<(String, i32)> {
    let mut have: Vec<(String, i32, i32)> = workers
        .iter()
        .map(|(w, left)| (w.clone(), *left, 0))
        .collect();
    if have.is_empty() {
        return Vec::new();
    }
    for _ in 0..n {
        if let Some(least) = have
            .iter_mut()
            .min_by(|a, b| (a.1 + a.2).cmp(&(b.1 + b.2)).then(a.0.cmp(&b.0)))
        {
            least.2 += 1;
        }
    }
    have.into_iter().map(|(w, _, add)| (w, add)).collect()
}

impl Scheduler {
    /// Starts the decision log's writer: call it inside the actix system.
    pub fn new(db: Db, auto_pledge: bool) -> Self {
        Scheduler {
            db: db.clone(),
            auto_pledge,
            counts: Mutex::default(),
            last_logged: Mutex::default(),
            log: DecisionLog::new(db.clone()).start(),
        }
    }

    async fn draining(&self, worker: &str) -> Result<bool, DbError> {
        let w = worker.to_string();
        self.db.run(move |c| db::workers::is_draining(c, &w)).await
    }

    /// Why `worker` gets no new sector now, or None; a None has taken one pledge when pledges
    /// are on (give it back with `return_pledge` if the sector cannot be made).
    pub async fn sector_refusal(&self, worker: &str) -> Result<Option<String>, DbError> {
        let reason = if self.draining(worker).await? {
            Some(DRAINING.to_string())
        } else if self.auto_pledge {
            None
        } else if worker.is_empty() {
            Some("no pledge budget: the worker does not send its name".to_string())
        } else {
            let w = worker.to_string();
            let took = self
                .db
                .run(move |c| db::sched::take_pledge(c, &w, db::now()))
                .await?;
            (!took).then(|| "no pledge budget".to_string())
        };
        if let Some(r) = &reason {
            self.refused(worker, "sector", r);
        }
        Ok(reason)
    }

    pub async fn return_pledge(&self, worker: &str) {
        if self.auto_pledge || worker.is_empty() {
            return;
        }
        let grants = vec![(worker.to_string(), 1)];
        if let Err(e) = self
            .db
            .run(move |c| db::sched::add_pledges(c, &grants, db::now()))
            .await
        {
            warn!(worker, error = %e, "cannot give a pledged sector back");
        }
    }

    /// Why `worker` gets no `work` (a snap-up, a rebuild, a WindowPoSt job) now, or None: only
    /// draining holds such work back (pledges are about new sectors only).
    pub async fn drain_refusal(
        self: &Arc<Self>,
        worker: &str,
        work: &str,
    ) -> Result<Option<String>, DbError> {
        let (s, w, k) = (self.clone(), worker.to_string(), work.to_string());
        let refused = self
            .db
            .run(move |c| s.refuse_if_draining(c, &w, &k))
            .await?;
        Ok(refused.then(|| DRAINING.into()))
    }

    /// `drain_refusal` on the caller's connection: true (and the refusal logged) when
    /// `worker` drains.
    fn refuse_if_draining(
        &self,
        c: &mut db::DbConnection,
        worker: &str,
        work: &str,
    ) -> Result<bool, DbError> {
        let draining = db::workers::is_draining(c, worker)?;
        if draining {
            self.refused(worker, work, DRAINING);
        }
        Ok(draining)
    }

    /// Which of `workers` get no `work` because they drain, in one query on the caller's
    /// connection (a batch of claims makes it in its own database call); each refusal is
    /// logged.
    pub fn refuse_those_draining(
        &self,
        c: &mut db::DbConnection,
        workers: &[String],
        work: &str,
    ) -> Result<std::collections::HashSet<String>, DbError> {
        let draining = db::workers::draining_among(c, workers)?;
        for w in &draining {
            self.refused(w, work, DRAINING);
        }
        Ok(draining)
    }

    fn count(&self, decision: &str, reason: &str) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((decision.to_string(), reason.to_string()))
                .or_default() += 1;
        }
    }

    /// Queues the decision for `sched_log`; nothing waits for the row (`DecisionLog`).
    fn write(
        &self,
        worker: &str,
        thread: Option<u32>,
        decision: &'static str,
        work: &str,
        reason: &str,
    ) {
        self.log.do_send(Record(Decision {
            at: db::now(),
            worker: worker.to_string(),
            thread,
            decision,
            work: work.to_string(),
            reason: reason.to_string(),
        }));
    }

    /// `thread`: the asking thread's index, when the worker says it (ours do).
    pub fn granted(&self, worker: &str, thread: Option<u32>, work: &str) {
        self.count("granted", "");
        let to = match thread {
            Some(i) => format!("{worker} #{i}"),
            None => worker.to_string(),
        };
        info!(worker, thread, work, "sched: granted {work} to {to}");
        self.write(worker, thread, "granted", work, "");
    }

    fn refused(&self, worker: &str, what: &str, reason: &str) {
        self.count("refused", reason);
        let key = (worker.to_string(), reason.to_string());
        let due = match self.last_logged.lock() {
            Ok(mut last) => {
                let due = last
                    .get(&key)
                    .is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY);
                if due {
                    if last.len() >= MAX_LOGGED_KEYS {
                        // Only recent entries matter: older ones are due anyway.
                        last.retain(|_, t| t.elapsed() < REFUSAL_LOG_EVERY);
                    }
                    last.insert(key, Instant::now());
                }
                due
            }
            Err(_) => true,
        };
        if due {
            info!(
                worker,
                what, reason, "sched: not scheduling {worker}: {reason}"
            );
            self.write(worker, None, "refused", what, reason);
        }
    }

    /// `damocles_sched_decisions_total{decision,reason}` lines.
    pub fn metrics(&self) -> String {
        let mut out = damocles_actors::metrics::header(
            "damocles_sched_decisions_total",
            damocles_actors::metrics::Kind::Counter,
            "Scheduling decisions this manager made since it started, by decision and reason.",
        );
        if let Ok(c) = self.counts.lock() {
            for ((decision, reason), n) in c.iter() {
                out += &format!(
                    "damocles_sched_decisions_total{{decision=\"{}\",reason=\"{}\"}} {n}\n",
                    crate::metrics::label(decision),
                    crate::metrics::label(reason)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &[(&str, i32)]) -> Vec<(String, i32)> {
        v.iter().map(|(n, b)| (n.to_string(), *b)).collect()
    }

    #[test]
    fn pledges_are_spread_evenly() {
        let cases = [
            (
                6,
                w(&[("a", 0), ("b", 0), ("c", 0)]),
                w(&[("a", 2), ("b", 2), ("c", 2)]),
            ),
            (
                4,
                w(&[("a", 0), ("b", 0), ("c", 0)]),
                w(&[("a", 2), ("b", 1), ("c", 1)]),
            ),
            // Budgets already given count: the poorer get more.
            (
                3,
                w(&[("a", 2), ("b", 0), ("c", 1)]),
                w(&[("a", 0), ("b", 2), ("c", 1)]),
            ),
            (5, w(&[]), w(&[])),
            (0, w(&[("a", 0)]), w(&[("a", 0)])),
        ];
        for (n, have, want) in cases {
            assert_eq!(spread(n, &have), want, "{n} over {have:?}");
        }
    }
}
