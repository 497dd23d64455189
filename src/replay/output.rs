//! A replay's alerts, read back from the stores of its shards in the output order of
//! SPEC §4 an instant at a time: memory holds the alerts of one instant, not every alert
//! of the replay (a 10M-identity estate raises hundreds of thousands).

use crate::alert::{sort_alerts, Alert};
use crate::correlate::Correlator;
use crate::error::StoreError;
use crate::store::view::StateView;

/// Where the alerts of a replay are: the committed states of its shards.
pub struct AlertLog {
    views: Vec<StateView>,
    /// The shards' temporary stores beyond the caller's correlator, kept until the views
    /// are read.
    shards: Vec<Correlator>,
}

impl AlertLog {
    /// The alerts of the committed states `views`.
    pub fn new(views: Vec<StateView>) -> AlertLog {
        AlertLog {
            views,
            shards: Vec::new(),
        }
    }

    /// Keeps the stores of `shards` (temporary: removed when dropped) open while the
    /// log is.
    pub fn keep_open(&mut self, shards: Vec<Correlator>) {
        self.shards = shards;
    }

    /// Calls `f` with every alert, in output order.
    pub fn for_each<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(&Alert) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut heads = Vec::with_capacity(self.views.len());
        for view in &self.views {
            heads.push(view.alerts_by_time()?.peekable());
        }
        let mut instant = Vec::new();
        loop {
            let mut earliest = None;
            for head in &mut heads {
                if head.peek().is_some_and(Result::is_err) {
                    head.next().transpose()?;
                }
                if let Some(Ok(a)) = head.peek() {
                    earliest = Some(earliest.map_or(a.at, |t| a.at.min(t)));
                }
            }
            let Some(at) = earliest else {
                return Ok(());
            };
            for head in &mut heads {
                while let Some(alert) = head.next_if(|a| a.as_ref().is_ok_and(|a| a.at == at)) {
                    instant.push(alert?);
                }
            }
            sort_alerts(&mut instant);
            for alert in instant.drain(..) {
                f(&alert)?;
            }
        }
    }

    /// Every alert, in output order, in memory (for an evidence report).
    pub fn collect(&self) -> Result<Vec<Alert>, StoreError> {
        let mut all = Vec::new();
        self.for_each(|a| {
            all.push(a.clone());
            Ok::<(), StoreError>(())
        })?;
        Ok(all)
    }
}
