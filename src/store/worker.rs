//! The store's helper threads: a batch is written, and a prefetch read, on a thread that
//! lives as long as the store, one job at a time, instead of on a thread spawned for each
//! (a 10M-identity replay spawned some 3,000, each leaving its allocator's pages behind;
//! a named thread also shows in `top -H` and in the per-thread CPU of the benches).

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::StoreError;

type Job<T> = Box<dyn FnOnce() -> T + Send>;

/// A thread that runs one job at a time and hands back what it returned.
pub struct Worker<T> {
    name: &'static str,
    jobs: Option<Sender<Job<T>>>,
    done: Option<Receiver<T>>,
    thread: Option<JoinHandle<()>>,
    /// A job was started and its result not yet taken.
    busy: bool,
}

impl<T: Send + 'static> Worker<T> {
    /// A worker whose thread, named `name`, starts with its first job.
    pub fn new(name: &'static str) -> Worker<T> {
        Worker {
            name,
            jobs: None,
            done: None,
            thread: None,
            busy: false,
        }
    }

    /// Runs `job` on the thread, after taking the result of the job before, if any
    /// (dropped: the caller waits for what it needs first).
    pub fn start(&mut self, job: impl FnOnce() -> T + Send + 'static) -> Result<(), StoreError> {
        let _ = self.wait()?;
        if self.thread.is_none() {
            let (jobs, queued) = bounded::<Job<T>>(1);
            let (finished, done) = bounded::<T>(1);
            let thread = std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || {
                    for job in queued {
                        if finished.send(job()).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| {
                    StoreError::Incompatible(format!("cannot start {}: {e}", self.name))
                })?;
            (self.jobs, self.done, self.thread) = (Some(jobs), Some(done), Some(thread));
        }
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(Box::new(job)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.ended());
        }
        self.busy = true;
        Ok(())
    }

    /// Whether no job is running (then [`Worker::wait`] returns at once).
    pub fn is_finished(&self) -> bool {
        !self.busy || self.done.as_ref().is_some_and(|done| !done.is_empty())
    }

    /// What the job started last returned, waiting for it; None when every result was
    /// taken.
    pub fn wait(&mut self) -> Result<Option<T>, StoreError> {
        if !self.busy {
            return Ok(None);
        }
        self.busy = false;
        match self.done.as_ref().map(Receiver::recv) {
            Some(Ok(result)) => Ok(Some(result)),
            _ => Err(self.ended()),
        }
    }

    fn ended(&self) -> StoreError {
        StoreError::Incompatible(format!("the store's {} thread panicked", self.name))
    }
}

impl<T> Drop for Worker<T> {
    /// Lets the job under way finish, and the thread end.
    fn drop(&mut self) {
        self.jobs = None;
        self.done = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_turn_on_one_thread_and_hand_back_their_results() {
        let mut worker = Worker::new("test-worker");
        assert!(worker.is_finished());
        assert!(worker.wait().unwrap().is_none());
        let mut threads = Vec::new();
        for i in 0..3 {
            worker
                .start(move || (i, std::thread::current().id()))
                .unwrap();
            let (n, thread) = worker.wait().unwrap().unwrap();
            assert_eq!(n, i);
            threads.push(thread);
        }
        threads.dedup();
        assert_eq!(threads.len(), 1, "one thread for every job");
        assert_ne!(threads[0], std::thread::current().id());
    }

    #[test]
    fn a_job_that_panics_is_an_error_not_a_hang() {
        let mut worker: Worker<()> = Worker::new("test-worker");
        worker.start(|| panic!("a job that fails")).unwrap();
        let err = worker.wait().unwrap_err().to_string();
        assert!(err.contains("test-worker thread panicked"), "{err}");
        assert!(worker.start(|| ()).is_err(), "the thread is gone");
    }
}
