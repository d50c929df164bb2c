//! `Retention`: keeps the tables that only grow within `[retention]` (ages, with defaults): the
//! decision log, the audit log, archived WindowPoSt jobs and unused store names. It prunes at
//! start and every hour, in batches (`db::retention`); any number of managers may do so.

use std::time::Duration;

use actix::prelude::*;
use tracing::{info, warn};

use crate::db::retention::{self, Rule};
use crate::db::Db;

/// `[retention]`, defaults filled in: how long each kind of row is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionRules {
    pub sched_log: Duration,
    pub audit_log: Duration,
    pub archived_jobs: Duration,
    pub unused_stores: Duration,
}

impl Default for RetentionRules {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        RetentionRules {
            sched_log: Duration::from_secs(7 * DAY),
            audit_log: Duration::from_secs(365 * DAY),
            archived_jobs: Duration::from_secs(30 * DAY),
            unused_stores: Duration::from_secs(30 * DAY),
        }
    }
}

/// How often the tables are pruned.
const EVERY: Duration = Duration::from_secs(3600);

pub struct Retention {
    db: Db,
    rules: RetentionRules,
}

impl Retention {
    pub fn new(db: Db, rules: RetentionRules) -> Self {
        Retention { db, rules }
    }

    fn prune(&mut self, ctx: &mut Context<Self>) {
        let r = &self.rules;
        let rules: Vec<(&'static Rule, Duration)> = vec![
            (&retention::SCHED_LOG, r.sched_log),
            (&retention::AUDIT_LOG, r.audit_log),
            (&retention::ARCHIVED_JOBS, r.archived_jobs),
            (&retention::UNUSED_STORES, r.unused_stores),
        ];
        let now = self.db.now();
        let db = self.db.clone();
        let work = async move {
            db.run(move |c| {
                let mut done = Vec::new();
                for (rule, age) in rules {
                    let cutoff = now - chrono::Duration::from_std(age).unwrap_or_default();
                    done.push((rule.table, retention::prune(c, rule, cutoff)?));
                }
                Ok(done)
            })
            .await
        };
        ctx.spawn(work.into_actor(self).map(|res, _, _| match res {
            Ok(done) => {
                for (table, n) in done.into_iter().filter(|(_, n)| *n > 0) {
                    info!(table, rows = n, "old rows pruned");
                }
            }
            Err(e) => warn!(error = %e, "cannot prune old rows; trying again within the hour"),
        }));
    }
}

impl Actor for Retention {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(rules = ?self.rules, "retention started");
        self.prune(ctx);
        ctx.run_interval(EVERY, |act, ctx| act.prune(ctx));
    }
}
