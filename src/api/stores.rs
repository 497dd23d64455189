//! The state stores `/metrics` reports on — their size, RocksDB's health and the cases by
//! state — summed over the one store of a single instance, or over the state shards a
//! group member holds: each is registered while it is open ([`Stores::register`]), so a
//! shard that moves away stops being counted here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::store::view::StateView;
use crate::telemetry::Metrics;

/// How old the case counts of `/metrics` may be.
const CASE_COUNTS_EVERY: Duration = Duration::from_secs(15);

/// The open state stores of this process.
#[derive(Clone, Default)]
pub struct Stores {
    views: Arc<Mutex<BTreeMap<u64, StateView>>>,
    next: Arc<AtomicU64>,
    /// When the case counts were last refreshed (or are being refreshed).
    counted: Arc<Mutex<Option<Instant>>>,
}

/// A store counted by `/metrics` until this is dropped.
pub struct Registration {
    stores: Stores,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.stores.views).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stores {
    /// Counts `view`'s store until the registration is dropped.
    pub fn register(&self, view: StateView) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.views).insert(id, view);
        Registration {
            stores: self.clone(),
            id,
        }
    }

    fn views(&self) -> Vec<StateView> {
        lock(&self.views).values().cloned().collect()
    }

    /// Sets the store gauges of `metrics` (size, RocksDB's health) over every store, and
    /// recounts the cases in the background when the last count is older than
    /// `CASE_COUNTS_EVERY` (15 s): a scrape never waits for a scan of every case.
    pub fn report(&self, metrics: &Arc<Metrics>) {
        let views = self.views();
        if views.is_empty() {
            return;
        }
        let (mut bytes, mut health) = (0, [0u64; 4]);
        for view in &views {
            bytes += view.size_bytes().unwrap_or(0);
            if let Ok([pending, delayed, stopped, cache]) = view.engine_health() {
                health[0] += pending;
                health[1] = health[1].max(delayed);
                health[2] = health[2].max(stopped);
                health[3] += cache;
            }
        }
        metrics.store_bytes.set(bytes as i64);
        let gauges = [
            &metrics.pending_compaction_bytes,
            &metrics.delayed_write_rate,
            &metrics.write_stopped,
            &metrics.block_cache_bytes,
        ];
        for (gauge, value) in gauges.into_iter().zip(health) {
            gauge.set(value as i64);
        }
        {
            let mut counted = lock(&self.counted);
            if counted.is_some_and(|t| t.elapsed() < CASE_COUNTS_EVERY) {
                return;
            }
            *counted = Some(Instant::now());
        }
        let metrics = Arc::clone(metrics);
        tokio::task::spawn_blocking(move || count_cases(&views, &metrics));
    }
}

/// Sets `lockstep_cases{state}` to the cases of every store in `views`.
fn count_cases(views: &[StateView], metrics: &Metrics) {
    let mut totals = BTreeMap::new();
    for view in views {
        match view.case_counts() {
            Ok(counts) => {
                for (state, n) in counts {
                    let label = serde_json::to_value(state).unwrap_or_default();
                    let label = label.as_str().unwrap_or("?").to_owned();
                    *totals.entry(label).or_insert(0) += n;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "counting cases for /metrics failed");
                return;
            }
        }
    }
    for (state, n) in totals {
        metrics.cases.with_label_values(&[&state]).set(n);
    }
}
