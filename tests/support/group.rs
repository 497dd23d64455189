//! Members of one consumer group (`[kafka] assignment = "group"`, SPEC §7) for the tests
//! that run several `lockstep run` processes: their config, start, stop, kill -9,
//! SIGSTOP/SIGCONT, and what their logs say.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use lockstep::live::feed::Keys;

use super::{config, run, signal, terminate, Broker};

/// The repartition topic of the entity-keyed runs.
pub const ROUTES: &str = "lockstep.repartition";

/// A config of `broker` for a member of the group `lockstep-scale-out` (routing through
/// [`ROUTES`] when the feed is keyed by entity), with `extra` TOML appended.
pub fn group_config(dir: &Path, broker: &Broker, keys: Keys, extra: &str) -> PathBuf {
    let path = config(dir, broker, extra);
    let routes = match keys {
        Keys::Entity => format!("repartition_topic = \"{ROUTES}\"\n"),
        Keys::Root => String::new(),
    };
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[kafka.properties]\n",
        &format!("assignment = \"group\"\ngroup_id = \"lockstep-scale-out\"\n{routes}[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One member: its process and log (killed if the test fails before it stops it).
pub struct Member {
    child: Option<Child>,
    pub log: PathBuf,
    config: PathBuf,
    state: PathBuf,
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Member {
    pub fn start(dir: &Path, config: &Path, name: &str) -> Member {
        let state = dir.join(format!("state-{name}"));
        let log = dir.join(format!("{name}.log"));
        Member {
            child: Some(run(config, &state, &log)),
            log,
            config: config.to_path_buf(),
            state,
        }
    }

    /// Kills it with -9 and, after `pause`, starts it again on its disk (the same log).
    pub fn kill_and_restart(&mut self, pause: Duration) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        std::thread::sleep(pause);
        self.child = Some(run(&self.config, &self.state, &self.log));
    }

    /// Whether it still runs (it has not exited).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Starts it again on its disk if it exited by itself, as a supervisor would; returns
    /// how it exited.
    pub fn restart_if_exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = Some(run(&self.config, &self.state, &self.log));
        Some(status)
    }

    /// Stops it with SIGTERM; it must exit 0.
    pub fn stop(mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, &self.log);
        }
    }

    /// Kills it with -9.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Freezes it (SIGSTOP), as a stopped VM or a debugger would.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "STOP");
        }
    }

    /// Lets a frozen member run on (SIGCONT).
    pub fn thaw(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "CONT");
        }
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it runs the group's router now (it owns state shard 0).
    pub fn routes(&self) -> bool {
        let text = self.text();
        text.rfind("starting the router") > text.rfind("router stopped")
    }

    /// Whether the group has given this member partitions at some point.
    pub fn held_partitions(&self) -> bool {
        self.text()
            .lines()
            .any(|l| l.contains("partitions assigned") && !l.contains("partitions=0"))
    }
}

/// Waits until `done`, or fails after `timeout` with the members' logs.
pub fn wait_until(what: &str, timeout: Duration, members: &[&Member], done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "timed out waiting until {what}; logs:\n{}",
            members
                .iter()
                .map(|m| m.text())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
