//! Stage limits shared by all threads of a worker: `[processors.limitation.concurrent]` (how many
//! at once), `[processors.limitation.staggered]` (how far apart starts must be) and
//! `[processors.ext_locks]` (named capacities that processors declare in `locks`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct StageLimits {
    concurrent: HashMap<String, Arc<Semaphore>>,
    /// Per stage: the interval and the earliest time the next start may happen.
    staggered: HashMap<String, (Duration, Mutex<Instant>)>,
    ext_locks: HashMap<String, Arc<Semaphore>>,
}

/// Held while a stage runs; dropping it frees the slot.
#[derive(Debug)]
pub struct StageGuard {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl StageLimits {
    pub fn new(
        concurrent: &HashMap<String, usize>,
        staggered: &HashMap<String, Duration>,
        ext_locks: &HashMap<String, usize>,
    ) -> Self {
        let sem = |m: &HashMap<String, usize>| {
            m.iter()
                .map(|(k, v)| (k.clone(), Arc::new(Semaphore::new(*v))))
                .collect()
        };
        StageLimits {
            concurrent: sem(concurrent),
            staggered: staggered
                .iter()
                .map(|(k, v)| (k.clone(), (*v, Mutex::new(Instant::now()))))
                .collect(),
            ext_locks: sem(ext_locks),
        }
    }

    /// Waits until `stage` may start: a concurrency slot, then its turn in the stagger.
    pub async fn acquire(&self, stage: &str) -> StageGuard {
        let mut permits = Vec::new();
        if let Some(sem) = self.concurrent.get(stage) {
            if let Ok(p) = sem.clone().acquire_owned().await {
                permits.push(p);
            }
        }
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
        StageGuard { _permits: permits }
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
        StageGuard { _permits: permits }
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

    #[tokio::test(start_paused = true)]
    async fn concurrent_limit_blocks_the_extra_start_until_one_ends() {
        let l = Arc::new(limits(&[("pc1", 2)], &[]));
        let a = l.acquire("pc1").await;
        let _b = l.acquire("pc1").await;
        let l2 = l.clone();
        let third = tokio::spawn(async move { l2.acquire("pc1").await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!third.is_finished(), "a third pc1 must wait");
        drop(a);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(third.is_finished(), "the third starts once one ends");
        // An unlimited stage never waits.
        let _x = l.acquire("c2").await;
    }

    #[tokio::test(start_paused = true)]
    async fn staggered_starts_are_spaced_by_the_interval() {
        let l = limits(&[], &[("pc1", 60)]);
        let t0 = Instant::now();
        let _a = l.acquire("pc1").await;
        let _b = l.acquire("pc1").await;
        let _c = l.acquire("pc1").await;
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
