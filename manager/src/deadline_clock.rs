//! `DeadlineClock`: the mock chain's WindowPoSt deadlines. Time (the database's clock) is cut
//! into periods of `[mock] deadline_interval`; period `p` opens deadline `p % deadlines`, and its
//! challenge window closes when the period ends. While a deadline is open, the clock makes sure
//! its jobs exist (one per group of `[task] partitions_per_job` partitions), covering the
//! sectors placed in it that were proven before it opened. A job's input (and so its id)
//! depends only on the miner, the deadline, the opening and the group, so every manager on one
//! database makes the same jobs, and a job an operator removed is made again while its window is
//! open. Once a window closes without a verified proof, the clock records the missed deadline
//! and marks the job's sectors faulty (`db::wdpost::close_windows`).

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, NaiveDateTime};
use damocles_actors::wire::venus_post::{PoStInput, PoStSectorAccesses, PoStSectorInfo};
use rand::{RngCore, SeedableRng};
use tracing::{info, warn};

use crate::db::sectors::SectorRow;
use crate::db::wdpost::{MissedRow, NewJob};
use crate::db::{self, Db, DbError};

pub struct DeadlineClock {
    pub db: Db,
    pub miner: u64,
    /// The WindowPoSt proof name of the chain's sectors.
    pub proof_type: String,
    pub deadlines: u32,
    pub interval: Duration,
    /// Partitions per job (`[task] partitions_per_job`; 0: one job per deadline).
    pub partitions_per_job: u32,
    /// A tick is still running: the next one is skipped rather than queued.
    pub busy: bool,
}

/// Which deadline is open at `now` (unix seconds), and since when.
pub fn open_deadline(now: u64, interval: Duration, deadlines: u32) -> (u32, u64) {
    let secs = interval.as_secs().max(1);
    let period = now / secs;
    ((period % u64::from(deadlines.max(1))) as u32, period * secs)
}

/// The challenge seed of one opening: random-looking, the same on every manager, a valid field
/// element (top bits of the last byte cleared, as the chain does).
pub fn challenge_seed(miner: u64, opened_at: u64) -> [u8; 32] {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(
        miner.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ opened_at,
    );
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    seed[31] &= 0x3f;
    seed
}

/// One opening of a deadline: which, and its challenge window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub deadline: u32,
    pub opened_at: NaiveDateTime,
    pub closes_at: NaiveDateTime,
}

/// The jobs of one deadline opening: one per group of `per_job` partitions (all in one when 0),
/// each covering the group's sectors proven before the window opened. None when no sector of
/// the deadline was.
pub fn jobs_for(
    miner: u64,
    proof_type: &str,
    w: Window,
    per_job: u32,
    sectors: &[SectorRow],
) -> Vec<NewJob> {
    let mut groups: std::collections::BTreeMap<i32, Vec<&SectorRow>> = Default::default();
    for s in sectors
        .iter()
        .filter(|s| s.proven_at.is_some_and(|p| p <= w.opened_at))
    {
        let partition = s.partition_idx.unwrap_or(0);
        let group = if per_job == 0 {
            0
        } else {
            partition / per_job as i32
        };
        groups.entry(group).or_default().push(s);
    }
    groups
        .into_iter()
        .filter_map(|(group, members)| job_of_group(miner, proof_type, w, group, &members))
        .collect()
}

fn job_of_group(
    miner: u64,
    proof_type: &str,
    w: Window,
    group: i32,
    members: &[&SectorRow],
) -> Option<NewJob> {
    let mut infos = Vec::new();
    let mut partitions = Vec::new();
    for s in members {
        // A snapped sector is proven over its updated replica.
        let upgrade = s.update_comm_r.is_some();
        let (comm_r, store) = if upgrade {
            (&s.update_comm_r, &s.update_store)
        } else {
            (&s.comm_r, &s.persist_store)
        };
        let (Some(comm_r), Some(store)) = (
            comm_r
                .as_deref()
                .and_then(damocles_actors::wire::hex::decode32),
            store,
        ) else {
            warn!(
                sector = s.sector_number,
                "proven sector without CommR or store: left out of WindowPoSt"
            );
            continue;
        };
        infos.push(PoStSectorInfo {
            sector_id: s.sector_number as u64,
            comm_r,
            upgrade,
            accesses: PoStSectorAccesses {
                sealed_file: store.clone(),
                cache_dir: store.clone(),
            },
        });
        partitions.extend(s.partition_idx);
    }
    if infos.is_empty() {
        return None;
    }
    partitions.sort_unstable();
    partitions.dedup();
    let input = PoStInput {
        sectors: infos,
        miner_id: miner,
        proof_type: proof_type.to_string(),
        seed: challenge_seed(miner, w.opened_at.and_utc().timestamp() as u64),
    };
    let json = serde_json::to_string(&input).ok()?;
    Some(NewJob {
        id: crate::wdpost::job_id(&json),
        miner_id: miner,
        deadline_idx: w.deadline as i32,
        partitions: partitions
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        proof_type: proof_type.to_string(),
        sectors: input.sectors.len() as i32,
        deadline_open_at: w.opened_at,
        deadline_close_at: w.closes_at,
        part_group: group,
        input: json,
    })
}

impl DeadlineClock {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        // The database's clock, as the keeper's: every manager sees the same windows.
        let now = self.db.now();
        let (deadline, opened) = open_deadline(
            now.and_utc().timestamp().max(0) as u64,
            self.interval,
            self.deadlines,
        );
        let Some(opened_at) = DateTime::from_timestamp(opened as i64, 0).map(|d| d.naive_utc())
        else {
            return;
        };
        let window = Window {
            deadline,
            opened_at,
            closes_at: opened_at + self.interval,
        };
        self.busy = true;
        let (db, miner, proof, per_job) = (
            self.db.clone(),
            self.miner,
            self.proof_type.clone(),
            self.partitions_per_job,
        );
        let work = async move {
            db.run(move |c| {
                // Windows that closed first: their misses fault sectors the new job covers.
                let missed = db::wdpost::close_windows(c, now)?;
                let sectors = db::sectors::proven_in_deadline(c, miner, deadline as i32)?;
                let mut created = Vec::new();
                for job in jobs_for(miner, &proof, window, per_job, &sectors) {
                    if db::wdpost::create(c, &job, now)? {
                        created.push(job);
                    }
                }
                Ok((missed, created))
            })
            .await
        };
        ctx.spawn(work.into_actor(self).map(
            move |res: Result<(Vec<MissedRow>, Vec<NewJob>), DbError>, act, _| {
                act.busy = false;
                match res {
                    Ok((missed, created)) => {
                        for m in missed {
                            warn!(job = %m.job_id, miner = m.miner_id, deadline = m.deadline_idx, partitions = %m.partitions, sectors = m.sectors, reason = %m.reason, "WindowPoSt deadline missed: its sectors are faulty");
                        }
                        for job in created {
                            info!(job = %job.id, deadline, partitions = %job.partitions, sectors = job.sectors, closes = %job.deadline_close_at, "wdpost job created");
                        }
                    }
                    Err(e) => warn!(error = %e, "deadline clock cannot create or close WindowPoSt jobs"),
                }
            },
        ));
    }
}

impl Actor for DeadlineClock {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(deadlines = self.deadlines, interval = ?self.interval, proof = %self.proof_type, "deadline clock started");
        let every = (self.interval / 6).clamp(Duration::from_secs(1), Duration::from_secs(10));
        self.tick(ctx);
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_walk_through_the_deadlines() {
        let min = Duration::from_secs(60);
        assert_eq!(open_deadline(0, min, 48), (0, 0));
        assert_eq!(open_deadline(59, min, 48), (0, 0));
        assert_eq!(open_deadline(60, min, 48), (1, 60));
        assert_eq!(open_deadline(48 * 60 + 61, min, 48), (1, 48 * 60 + 60));
        assert_eq!(open_deadline(125, min, 1), (0, 120));
    }

    #[test]
    fn seeds_depend_on_the_opening_and_are_field_elements() {
        assert_eq!(challenge_seed(1000, 60), challenge_seed(1000, 60));
        assert_ne!(challenge_seed(1000, 60), challenge_seed(1000, 120));
        assert_ne!(challenge_seed(1000, 60), challenge_seed(1001, 60));
        for t in 0..50 {
            assert!(challenge_seed(10000, t * 60)[31] <= 0x3f);
        }
    }

    fn sector(number: i64, partition: i32, proven: Option<i64>) -> SectorRow {
        let at = |s: i64| DateTime::from_timestamp(s, 0).map(|d| d.naive_utc());
        SectorRow {
            miner_id: 10000,
            sector_number: number,
            proof_type: 5,
            state: "Finished".into(),
            worker_name: None,
            location: None,
            ticket: None,
            seed: None,
            comm_r: Some(format!("{number:02x}").repeat(32)),
            comm_d: None,
            precommit_state: None,
            persist_store: Some("remote".into()),
            owner: None,
            proof: None,
            proof_state: Some("Landed".into()),
            abort_reason: None,
            created_at: at(0).unwrap_or_default(),
            updated_at: at(0).unwrap_or_default(),
            deadline_idx: Some(0),
            partition_idx: Some(partition),
            proven_at: proven.and_then(at),
            snap_state: None,
            snap_owner: None,
            update_comm_r: None,
            update_comm_d: None,
            update_store: None,
            update_proof: None,
            upgraded_at: None,
            faulty_at: None,
            fault_reason: None,
            imported_at: None,
            aborted_from: None,
        }
    }

    fn at(secs: i64) -> NaiveDateTime {
        DateTime::from_timestamp(secs, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_default()
    }

    /// The one job (all partitions together) of deadline 0 opened at `opened`.
    fn job_for(opened: NaiveDateTime, sectors: &[SectorRow]) -> Option<NewJob> {
        let w = Window {
            deadline: 0,
            opened_at: opened,
            closes_at: opened + chrono::Duration::seconds(60),
        };
        let mut jobs = jobs_for(10000, "StackedDrgWindow2KiBV1_2", w, 0, sectors);
        assert!(
            jobs.len() <= 1,
            "one job per deadline without partitions_per_job"
        );
        jobs.pop()
    }

    #[test]
    fn a_snapped_sector_is_proven_over_its_update() {
        let opened = DateTime::from_timestamp(600, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        let mut snapped = sector(2, 0, Some(100));
        snapped.snap_state = Some("Done".into());
        snapped.update_comm_r = Some("ab".repeat(32));
        snapped.update_store = Some("other".into());
        let sectors = [sector(1, 0, Some(100)), snapped];
        let job = job_for(opened, &sectors);
        let input: PoStInput = job
            .and_then(|j| serde_json::from_str(&j.input).ok())
            .unwrap_or_else(|| panic!("a job"));
        let shape: Vec<(u64, bool, &str, u8)> = input
            .sectors
            .iter()
            .map(|s| {
                (
                    s.sector_id,
                    s.upgrade,
                    s.accesses.sealed_file.as_str(),
                    s.comm_r[0],
                )
            })
            .collect();
        assert_eq!(
            shape,
            [(1, false, "remote", 0x01), (2, true, "other", 0xab)]
        );
    }

    #[test]
    fn a_job_covers_sectors_proven_before_the_opening() {
        let opened = DateTime::from_timestamp(600, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        let sectors = [
            sector(1, 0, Some(100)),
            sector(3, 1, Some(600)),
            sector(5, 2, Some(601)),
        ];
        let job = job_for(opened, &sectors);
        let job = job.unwrap_or_else(|| panic!("a job"));
        assert_eq!(job.partitions, "0,1");
        assert_eq!(job.sectors, 2);
        let input: PoStInput = serde_json::from_str(&job.input).unwrap_or_else(|e| panic!("{e}"));
        let numbers: Vec<u64> = input.sectors.iter().map(|s| s.sector_id).collect();
        assert_eq!(numbers, [1, 3]);
        assert_eq!(input.sectors[0].accesses.sealed_file, "remote");
        // The same opening gives the same job; a later opening another one.
        let again = job_for(opened, &sectors);
        assert_eq!(again.map(|j| j.id), Some(job.id.clone()));
        let later = DateTime::from_timestamp(1200, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        let next = job_for(later, &sectors);
        assert_ne!(next.map(|j| j.id), Some(job.id));
        // Nothing proven yet: no job.
        let early = DateTime::from_timestamp(50, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        assert!(job_for(early, &sectors).is_none());
    }

    #[test]
    fn partitions_per_job_splits_a_deadline_and_each_job_knows_its_window() {
        let w = Window {
            deadline: 0,
            opened_at: at(600),
            closes_at: at(660),
        };
        let sectors: Vec<SectorRow> = (0..5).map(|n| sector(n, n as i32 / 2, Some(100))).collect();
        // Partitions 0, 1, 2 (two sectors each but the last): two per job gives 0-1 and 2.
        let jobs = jobs_for(10000, "StackedDrgWindow2KiBV1_2", w, 2, &sectors);
        let shape: Vec<(&str, i32, i32)> = jobs
            .iter()
            .map(|j| (j.partitions.as_str(), j.part_group, j.sectors))
            .collect();
        assert_eq!(shape, [("0,1", 0, 4), ("2", 1, 1)]);
        assert!(jobs.iter().all(|j| j.deadline_close_at == at(660)));
        assert_ne!(jobs[0].id, jobs[1].id);
        // One per job: three jobs; 0 (the default): one.
        assert_eq!(jobs_for(10000, "P", w, 1, &sectors).len(), 3);
        assert_eq!(jobs_for(10000, "P", w, 0, &sectors).len(), 1);
    }
}
