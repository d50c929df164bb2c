//! Stage limits shared by all threads of a worker: `[processors.limitation.concurrent]` (how many
//! at once, changeable while the worker runs), `[processors.limitation.staggered]` (how far apart
//! starts must be) and `[processors.ext_locks]` (named capacities that processors declare in
//! `locks`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::wire::processor::Stage;
pub use crate::wire::worker_api::StageUse;

/// How many of one stage may run at once (`None`: no limit) and how many do.
#[derive(Debug, Default)]
struct Counts {
    limit: Option<usize>,
    running: usize,
}

/// One stage's gate. Unlike a semaphore its limit can go down while more than the new limit
/// run: nothing running is stopped, and no new one starts until fewer than the limit run.
#[derive(Debug, Default)]
struct Gate {
    counts: std::sync::Mutex<Counts>,
    /// Woken when a run ends or the limit changes: waiters look again.
    changed: Notify,
}

impl Gate {
    fn try_enter(&self) -> bool {
        let Ok(mut c) = self.counts.lock() else {
            return true;
        };
        if c.limit.is_none_or(|l| c.running < l) {
            c.running += 1;
            true
        } else {
            false
        }
    }

    async fn enter(self: Arc<Self>) -> GateGuard {
        loop {
            {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                // Registered before looking, so a release between the look and the wait is seen.
                changed.as_mut().enable();
                if !self.try_enter() {
                    changed.await;
                    continue;
                }
            }
            return GateGuard(self);
        }
    }
}

#[derive(Debug)]
struct GateGuard(Arc<Gate>);

impl Drop for GateGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = self.0.counts.lock() {
            c.running = c.running.saturating_sub(1);
        }
        self.0.changed.notify_waiters();
    }
}

/// `stage=N` (or `stage=none` to lift the limit), checked against the known stages.
pub fn parse_assignment(s: &str) -> Result<(String, Option<usize>), String> {
    let (stage, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected stage=N, e.g. pc1=2"))?;
    check_stage(stage)?;
    let limit = match n {
        "none" => None,
        n => Some(
            n.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{s:?}: the limit must be a number >= 1, or none"))?,
        ),
    };
    Ok((stage.to_string(), limit))
}

/// Refuses a name that is not a processor stage, listing the valid ones.
pub fn check_stage(stage: &str) -> Result<(), String> {
    stage.parse::<Stage>().map(|_| ())
}

/// The table `worker limits` prints: one stage a line, `-` for no limit.
pub fn limits_table(stages: &BTreeMap<String, StageUse>) -> String {
    let width = stages.keys().map(String::len).max().unwrap_or(0).max(5);
    let mut out = format!("{:<width$}  Limit  Running\n", "Stage");
    for (stage, u) in stages {
        let limit = u.limit.map_or_else(|| "-".to_string(), |n| n.to_string());
        out += &format!("{stage:<width$}  {limit:<5}  {}\n", u.running);
    }
    out
}

/// The worker's stage limits, shared by every thread: concurrency gates, staggered starts, external locks.
#[derive(Debug, Default)]
pub struct StageLimits {
    /// Every stage that ever ran or had a limit, so running counts are known for all.
    gates: std::sync::Mutex<HashMap<String, Arc<Gate>>>,
    /// Per stage: the interval and the earliest time the next start may happen.
    staggered: HashMap<String, (Duration, Mutex<Instant>)>,
    ext_locks: HashMap<String, Arc<Semaphore>>,
}

/// Held while a stage runs; dropping it frees the slot.
#[derive(Debug)]
pub struct StageGuard {
    _gate: Option<GateGuard>,
    _permits: Vec<OwnedSemaphorePermit>,
}

impl StageLimits {
    /// The limits of a config file's `[processors.limitation]` and `ext_locks`.
    pub fn new(
        concurrent: &HashMap<String, usize>,
        staggered: &HashMap<String, Duration>,
        ext_locks: &HashMap<String, usize>,
    ) -> Self {
        let limits = StageLimits {
            gates: Default::default(),
            staggered: staggered
                .iter()
                .map(|(k, v)| (k.clone(), (*v, Mutex::new(Instant::now()))))
                .collect(),
            ext_locks: ext_locks
                .iter()
                .map(|(k, v)| (k.clone(), Arc::new(Semaphore::new(*v))))
                .collect(),
        };
        for (stage, n) in concurrent {
            limits.set_concurrent(stage, Some(*n));
        }
        limits
    }

    fn gate(&self, stage: &str) -> Arc<Gate> {
        match self.gates.lock() {
            Ok(mut g) => g.entry(stage.to_string()).or_default().clone(),
            // A poisoned map only means a panic elsewhere; an unshared gate limits nothing.
            Err(_) => Arc::default(),
        }
    }

    /// Sets how many of `stage` may run at once (`None`: no limit); returns the old limit.
    /// Runs in progress go on; waiting ones start as the new limit allows.
    pub fn set_concurrent(&self, stage: &str, limit: Option<usize>) -> Option<usize> {
        let gate = self.gate(stage);
        let old = match gate.counts.lock() {
            Ok(mut c) => std::mem::replace(&mut c.limit, limit),
            Err(_) => None,
        };
        gate.changed.notify_waiters();
        old
    }

    /// Every stage's limit and how many run now, by stage name.
    pub fn concurrent(&self) -> BTreeMap<String, StageUse> {
        let gates: Vec<(String, Arc<Gate>)> = match self.gates.lock() {
            Ok(g) => g.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        gates
            .into_iter()
            .filter_map(|(stage, gate)| {
                let c = gate.counts.lock().ok()?;
                Some((
                    stage,
                    StageUse {
                        limit: c.limit,
                        running: c.running,
                    },
                ))
            })
            .collect()
    }

    /// Waits until `stage` may start: a concurrency slot, then its turn in the stagger.
    pub async fn acquire(&self, stage: Stage) -> StageGuard {
        let stage = stage.name();
        let gate = Some(self.gate(stage).enter().await);
        let permits = Vec::new();
        if let Some((interval, next)) = self.staggered.get(stage) {
            let wait_until = {
                let mut next = next.lock().await;
                let now = Instant::now();
                let start = (*next).max(now);
                *next = start + *interval;
                start
            };
            tokio::time::sleep_until(wait_until).await;
        }
        StageGuard {
            _gate: gate,
            _permits: permits,
        }
    }

    /// Waits for one unit of each named external lock.
    pub async fn acquire_locks(&self, names: &[String]) -> StageGuard {
        let mut permits = Vec::new();
        for name in names {
            if let Some(sem) = self.ext_locks.get(name) {
                if let Ok(p) = sem.clone().acquire_owned().await {
                    permits.push(p);
                }
            }
        }
        StageGuard {
            _gate: None,
            _permits: permits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(conc: &[(&str, usize)], stag: &[(&str, u64)]) -> StageLimits {
        StageLimits::new(
            &conc.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            &stag
                .iter()
                .map(|(k, v)| (k.to_string(), Duration::from_secs(*v)))
                .collect(),
            &HashMap::from([("gpu".to_string(), 1)]),
        )
    }

    #[test]
    fn assignments_name_a_stage_and_a_limit() {
        assert_eq!(parse_assignment("pc1=2"), Ok(("pc1".into(), Some(2))));
        assert_eq!(parse_assignment("c2=none"), Ok(("c2".into(), None)));
        for (bad, why) in [
            ("pc1", "expected stage=N"),
            ("pc1=0", "number >= 1"),
            ("pc1=x", "number >= 1"),
            ("pc9=1", "unknown stage \"pc9\"; valid stages: add_pieces"),
        ] {
            let e = parse_assignment(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_limit_blocks_the_extra_start_until_one_ends() {
        let l = Arc::new(limits(&[("pc1", 2)], &[]));
        let a = l.acquire(Stage::Pc1).await;
        let _b = l.acquire(Stage::Pc1).await;
        let l2 = l.clone();
        let third = tokio::spawn(async move { l2.acquire(Stage::Pc1).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!third.is_finished(), "a third pc1 must wait");
        drop(a);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(third.is_finished(), "the third starts once one ends");
        // An unlimited stage never waits.
        let _x = l.acquire(Stage::C2).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowered_limit_lets_running_work_finish_and_holds_new_work() {
        let l = Arc::new(limits(&[("pc1", 2)], &[]));
        let a = l.acquire(Stage::Pc1).await;
        let b = l.acquire(Stage::Pc1).await;
        assert_eq!(l.set_concurrent("pc1", Some(1)), Some(2));
        assert_eq!(
            l.concurrent().get("pc1"),
            Some(&StageUse {
                limit: Some(1),
                running: 2
            })
        );
        let l2 = l.clone();
        let third = tokio::spawn(async move { l2.acquire(Stage::Pc1).await });
        drop(a);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!third.is_finished(), "one still runs: at the new limit");
        drop(b);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(third.is_finished(), "below the new limit: it starts");

        // Raising a limit lets a waiting start go at once; None removes the limit.
        let _c = third.await.unwrap();
        let l3 = l.clone();
        let fourth = tokio::spawn(async move { l3.acquire(Stage::Pc1).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!fourth.is_finished());
        l.set_concurrent("pc1", None);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(fourth.is_finished());
        assert_eq!(l.concurrent().get("pc1").map(|u| u.running), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn staggered_starts_are_spaced_by_the_interval() {
        let l = limits(&[], &[("pc1", 60)]);
        let t0 = Instant::now();
        let _a = l.acquire(Stage::Pc1).await;
        let _b = l.acquire(Stage::Pc1).await;
        let _c = l.acquire(Stage::Pc1).await;
        assert_eq!(t0.elapsed().as_secs(), 120);
    }

    #[tokio::test(start_paused = true)]
    async fn ext_locks_are_exclusive_up_to_their_capacity() {
        let l = Arc::new(limits(&[], &[]));
        let g = l.acquire_locks(&["gpu".to_string()]).await;
        let l2 = l.clone();
        let second = tokio::spawn(async move { l2.acquire_locks(&["gpu".to_string()]).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!second.is_finished());
        drop(g);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(second.is_finished());
    }
}
