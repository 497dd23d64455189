//! A state directory that takes no writes: its filesystem full, a quota reached. RocksDB
//! refuses the step's write batch — nothing of it is written — and every write after it
//! until it is reopened (this build of RocksDB cannot `Resume`). The pipeline does not
//! exit: it stops consuming and says so (one log line, `lockstep_store_writable 0`,
//! `/readyz` 503), the API keeps answering from the committed state, and once the
//! directory has room again `lockstep run` starts over in place (the same process
//! image, re-executed) and carries on from the last commit exactly as a restart after
//! `kill -9` would: the state, the positions and the outbox of that commit, the records
//! after it consumed again. So nothing is lost and nothing is raised twice but what
//! `alert_id` de-duplicates.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::events::{Event, StoreUnwritable};
use super::instance::Instance;
use super::{Control, LiveError};
use crate::error::StoreError;

/// How often the state directory is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// The room the state directory must have again before the run resumes (a memtable
/// flush and a compaction's worth).
const ROOM: usize = 64 << 20;

/// Why the store cannot be written now, if `error` says so: an I/O error of RocksDB
/// (no space, a quota, a filesystem remounted read-only). Anything else is no fault of
/// the disk, and stops the run.
pub(super) fn unwritable(error: &LiveError) -> Option<String> {
    match error {
        LiveError::Store(StoreError::Rocks(e)) if e.kind() == rocksdb::ErrorKind::IOError => {
            Some(e.to_string())
        }
        _ => None,
    }
}

impl Instance {
    /// After the store refused a write (`why`): drops the consumer and everything held
    /// in memory (nothing of it is lost: it is what the last commit's positions lead
    /// to), and waits until the state directory has room again. Then returns
    /// [`LiveError::Reopen`]: RocksDB, stopped by the failed write, takes writes again
    /// only once reopened, which `lockstep run` does by starting over in place. Returns
    /// `Ok` if `control` asks to stop meanwhile (the next start resumes from that commit).
    pub(super) fn wait_for_disk(
        mut self,
        error: LiveError,
        why: &str,
        control: &Control,
    ) -> Result<(), LiveError> {
        if matches!(self.core.role, super::Role::Route(_)) {
            return Err(error);
        }
        let metrics = self.core.metrics.clone();
        StoreUnwritable { why }.emit(&metrics);
        let dir = self.core.role.store_mut().dir().to_owned();
        drop(self);
        while let Err(e) = crate::store::has_room(&dir, ROOM) {
            if control.shutdown.load(Ordering::SeqCst) {
                tracing::warn!(error = %e, "stopping while the state directory takes no writes: the next start resumes from the last commit");
                return Ok(());
            }
            std::thread::sleep(RETRY_EVERY);
        }
        tracing::info!(
            "the state directory has room again: reopening it and resuming from the last commit"
        );
        Err(LiveError::Reopen)
    }
}
