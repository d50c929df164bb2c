//! `DeadlineClock`: the mock chain's WindowPoSt deadlines. Wall-clock time is cut into periods of
//! `[mock] deadline_interval`; period `p` opens deadline `p % deadlines`. While a deadline is
//! open, the clock makes sure one job exists for it, covering the sectors placed in it that were
//! proven before it opened. The job's input (and so its id) depends only on the miner, the
//! deadline and the opening, so every manager on one database makes the same job, and a job an
//! operator removed is made again while its deadline is still open.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, NaiveDateTime};
use damocles_actors::wire::venus_post::{PoStInput, PoStSectorAccesses, PoStSectorInfo};
use rand::{RngCore, SeedableRng};
use tracing::{info, warn};

use crate::db::sectors::SectorRow;
use crate::db::wdpost::NewJob;
use crate::db::{self, Db, DbError};

pub struct DeadlineClock {
    pub db: Db,
    pub miner: u64,
    /// The WindowPoSt proof name of the chain's sectors.
    pub proof_type: String,
    pub deadlines: u32,
    pub interval: Duration,
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

/// The job of one deadline opening, or None when no sector of it was proven before it opened.
pub fn job_for(
    miner: u64,
    proof_type: &str,
    deadline: u32,
    opened_at: NaiveDateTime,
    sectors: &[SectorRow],
) -> Option<NewJob> {
    let proven: Vec<&SectorRow> = sectors
        .iter()
        .filter(|s| s.proven_at.is_some_and(|p| p <= opened_at))
        .collect();
    let mut infos = Vec::new();
    let mut partitions = Vec::new();
    for s in proven {
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
        seed: challenge_seed(miner, opened_at.and_utc().timestamp() as u64),
    };
    let json = serde_json::to_string(&input).ok()?;
    Some(NewJob {
        id: crate::wdpost::job_id(&json),
        miner_id: miner,
        deadline_idx: deadline as i32,
        partitions: partitions
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        proof_type: proof_type.to_string(),
        sectors: input.sectors.len() as i32,
        deadline_open_at: opened_at,
        input: json,
    })
}

impl DeadlineClock {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let (deadline, opened) = open_deadline(now, self.interval, self.deadlines);
        let opened_at = DateTime::from_timestamp(opened as i64, 0).map(|d| d.naive_utc());
        let Some(opened_at) = opened_at.filter(|_| !self.busy) else {
            return;
        };
        self.busy = true;
        let (db, miner, proof) = (self.db.clone(), self.miner, self.proof_type.clone());
        let work = async move {
            db.run(move |c| {
                let sectors = db::sectors::proven_in_deadline(c, miner, deadline as i32)?;
                match job_for(miner, &proof, deadline, opened_at, &sectors) {
                    Some(job) => {
                        let created = db::wdpost::create(c, &job, db::now())?;
                        Ok(created.then_some(job))
                    }
                    None => Ok(None),
                }
            })
            .await
        };
        ctx.spawn(work.into_actor(self).map(
            move |res: Result<Option<NewJob>, DbError>, act, _| {
                act.busy = false;
                match res {
                    Ok(Some(job)) => info!(job = %job.id, deadline, partitions = %job.partitions, sectors = job.sectors, "wdpost job created"),
                    Ok(None) => {}
                    Err(e) => warn!(error = %e, "deadline clock cannot create the WindowPoSt job"),
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
        }
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
        let job = job_for(10000, "StackedDrgWindow2KiBV1_2", 0, opened, &sectors);
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
        let job = job_for(10000, "StackedDrgWindow2KiBV1_2", 0, opened, &sectors);
        let job = job.unwrap_or_else(|| panic!("a job"));
        assert_eq!(job.partitions, "0,1");
        assert_eq!(job.sectors, 2);
        let input: PoStInput = serde_json::from_str(&job.input).unwrap_or_else(|e| panic!("{e}"));
        let numbers: Vec<u64> = input.sectors.iter().map(|s| s.sector_id).collect();
        assert_eq!(numbers, [1, 3]);
        assert_eq!(input.sectors[0].accesses.sealed_file, "remote");
        // The same opening gives the same job; a later opening another one.
        let again = job_for(10000, "StackedDrgWindow2KiBV1_2", 0, opened, &sectors);
        assert_eq!(again.map(|j| j.id), Some(job.id.clone()));
        let later = DateTime::from_timestamp(1200, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        let next = job_for(10000, "StackedDrgWindow2KiBV1_2", 0, later, &sectors);
        assert_ne!(next.map(|j| j.id), Some(job.id));
        // Nothing proven yet: no job.
        let early = DateTime::from_timestamp(50, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_default();
        assert!(job_for(10000, "StackedDrgWindow2KiBV1_2", 0, early, &sectors).is_none());
    }
}
