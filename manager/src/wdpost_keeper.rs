//! `JobKeeper`: the timers of the WindowPoSt job queue (`[task]` in `manager.toml`). A running
//! job whose heartbeat is older than `heartbeat_timeout`, or that runs longer than `timeout`,
//! fails; a failed job with tries left goes back to `ReadyToRun` every `retry_job_interval`;
//! finished jobs older than `should_archive`, and any job whose challenge window closed more
//! than `job_lifetime` ago, move to the archive table every `archive_job_interval`. Each rule is one conditional statement per job, so any number of
//! managers may run a keeper on one database; every time in them is the database's clock
//! (`Db::now`), so a manager whose own clock is off fails no live job.

use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::db::{self, Db, DbError};

/// `[task]`, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct KeeperRules {
    pub timeout: Duration,
    pub max_retry: u32,
    pub heartbeat_timeout: Duration,
    pub retry_job_interval: Duration,
    pub archive_job_interval: Duration,
    pub should_archive: Duration,
    pub job_lifetime: Duration,
}

impl Default for KeeperRules {
    fn default() -> Self {
        KeeperRules {
            timeout: Duration::from_secs(30 * 60),
            max_retry: 2,
            heartbeat_timeout: Duration::from_secs(15),
            retry_job_interval: Duration::from_secs(10),
            archive_job_interval: Duration::from_secs(3600),
            should_archive: Duration::from_secs(2 * 24 * 3600),
            job_lifetime: Duration::from_secs(25 * 3600),
        }
    }
}

pub struct JobKeeper {
    db: Db,
    rules: KeeperRules,
    /// When this keeper started: running jobs get one `heartbeat_timeout` of grace after a
    /// manager restart, so their workers can heartbeat again before anything is failed.
    since: Instant,
}

impl JobKeeper {
    pub fn new(db: Db, rules: KeeperRules) -> Self {
        JobKeeper {
            db,
            rules,
            since: Instant::now(),
        }
    }

    /// Runs one rule on the blocking pool and logs what it did.
    fn run_rule<T, F, L>(&self, ctx: &mut Context<Self>, rule: F, log: L)
    where
        T: Send + 'static,
        F: FnOnce(&mut db::DbConnection) -> Result<T, DbError> + Send + 'static,
        L: FnOnce(T) + 'static,
    {
        let db = self.db.clone();
        ctx.spawn(
            async move { db.run(rule).await }
                .into_actor(self)
                .map(|res, _, _| match res {
                    Ok(v) => log(v),
                    Err(e) => warn!(error = %e, "wdpost job keeper: database error; trying again at the next tick"),
                }),
        );
    }

    fn fail_dead_jobs(&mut self, ctx: &mut Context<Self>) {
        if self.since.elapsed() < self.rules.heartbeat_timeout {
            return;
        }
        let now = self.db.now();
        let (hb, timeout) = (self.rules.heartbeat_timeout, self.rules.timeout);
        let hb_cutoff = now - chrono::Duration::from_std(hb).unwrap_or_default();
        let run_cutoff = now - chrono::Duration::from_std(timeout).unwrap_or_default();
        let reason = format!(
            "timeout: running longer than {}",
            humantime::format_duration(timeout)
        );
        self.run_rule(
            ctx,
            move |c| {
                let mut stale = db::wdpost::fail_stale(c, hb_cutoff, now)?;
                let long = db::wdpost::fail_timed_out(c, run_cutoff, &reason, now)?;
                stale.extend(long);
                Ok(stale)
            },
            |failed: Vec<String>| {
                for job in failed {
                    warn!(job = %job, "wdpost job failed: its worker stopped heartbeating or ran too long");
                }
            },
        );
    }

    fn retry_failed(&mut self, ctx: &mut Context<Self>) {
        let max = self.rules.max_retry;
        let at = self.db.now();
        self.run_rule(
            ctx,
            move |c| db::wdpost::retry_failed(c, max, at),
            |n: usize| {
                if n > 0 {
                    info!(jobs = n, "failed wdpost jobs queued again");
                }
            },
        );
    }

    fn archive(&mut self, ctx: &mut Context<Self>) {
        let max = self.rules.max_retry;
        let ago = |d: Duration| self.db.now() - chrono::Duration::from_std(d).unwrap_or_default();
        let (cutoff, expired) = (ago(self.rules.should_archive), ago(self.rules.job_lifetime));
        self.run_rule(
            ctx,
            move |c| {
                let done = db::wdpost::archive(c, cutoff, max)?;
                Ok((done, db::wdpost::expire(c, expired)?))
            },
            |(done, expired): (usize, usize)| {
                if done > 0 {
                    info!(jobs = done, "finished wdpost jobs archived");
                }
                if expired > 0 {
                    info!(
                        jobs = expired,
                        "wdpost jobs of long-closed windows archived (job_lifetime)"
                    );
                }
            },
        );
    }
}

impl Actor for JobKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(rules = ?self.rules, "wdpost job keeper started");
        let scan = (self.rules.heartbeat_timeout / 5)
            .clamp(Duration::from_secs(1), Duration::from_secs(5));
        ctx.run_interval(scan, |act, ctx| act.fail_dead_jobs(ctx));
        ctx.run_interval(self.rules.retry_job_interval, |act, ctx| {
            act.retry_failed(ctx)
        });
        self.archive(ctx);
        ctx.run_interval(self.rules.archive_job_interval, |act, ctx| act.archive(ctx));
        // Stamps and cutoffs follow the database's clock, which every manager shares.
        self.sync_clock(ctx);
        ctx.run_interval(CLOCK_SYNC, |act, ctx| act.sync_clock(ctx));
    }
}

/// How often the database's clock is read again.
const CLOCK_SYNC: Duration = Duration::from_secs(30);

impl JobKeeper {
    fn sync_clock(&mut self, ctx: &mut Context<Self>) {
        let db = self.db.clone();
        let measure = async move { tokio::task::spawn_blocking(move || db.sync_clock()).await };
        ctx.spawn(measure.into_actor(self).map(|res, _, _| match res {
            Ok(Ok(skew)) if skew.num_seconds().abs() >= 2 => {
                warn!(skew_ms = skew.num_milliseconds(), "this machine's clock differs from the database's; job times follow the database");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot read the database's clock"),
            Err(e) => warn!(error = %e, "cannot read the database's clock"),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::wdpost::{ClaimFilter, JobState, NewJob};

    /// A manager that starts with a job whose worker fell silent long ago (it was down itself):
    /// the job is left alone for one heartbeat timeout, then failed.
    #[actix_rt::test]
    async fn running_jobs_get_one_heartbeat_timeout_of_grace_after_a_start() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = db::temp(&dir);
        let long_ago = db::now() - chrono::Duration::hours(1);
        let state = |db: &Db| {
            let mut c = db.conn().unwrap_or_else(|e| panic!("{e}"));
            db::wdpost::get(&mut c, "j")
                .ok()
                .flatten()
                .map(|j| (j.state, j.error_reason))
        };
        {
            let mut c = db.conn().unwrap_or_else(|e| panic!("{e}"));
            let job = NewJob {
                id: "j".into(),
                miner_id: 1000,
                deadline_idx: 0,
                partitions: "0".into(),
                proof_type: "P".into(),
                sectors: 1,
                deadline_open_at: long_ago,
                deadline_close_at: long_ago + chrono::Duration::hours(2),
                part_group: 0,
                input: "{}".into(),
            };
            db::wdpost::create(&mut c, &job, long_ago).unwrap_or_else(|e| panic!("{e}"));
            db::wdpost::claim(&mut c, db.claim, &ClaimFilter::default(), 1, "w", long_ago)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let rules = KeeperRules {
            heartbeat_timeout: Duration::from_secs(3),
            ..KeeperRules::default()
        };
        JobKeeper::new(db.clone(), rules).start();
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(state(&db), Some((JobState::Running, None)));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            state(&db),
            Some((JobState::Failed, Some("heartbeat timeout".to_string())))
        );
    }
}
