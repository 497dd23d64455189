//! Alerts where people work (`[[notify]]`): a generic webhook, Slack, PagerDuty, Splunk
//! HEC and Elasticsearch, each through the outbox. An alert a sink wants is an outbox
//! record bound for `notify:<sink name>` (a name no Kafka topic can have), committed in
//! the same batch as the state that raised it; once durable it goes to the sink's
//! delivery thread ([`deliver`]), and it leaves the outbox when the receiver took it,
//! refused it for good (then it goes to the dead-letter topic, with the reason), or it
//! was dropped past the sink's `max_backlog`. A crash before that sends it again at the
//! next start: delivered at least once, and de-duplicated by `alert_id` where the
//! receiver can (PagerDuty `dedup_key`, Elasticsearch `_id`).

pub mod deliver;
pub mod format;
pub mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};

use crate::alert::Alert;
use crate::config::notify::NotifyConfig;
use crate::store::OutboxRecord;
use crate::telemetry::Metrics;
use deliver::{Notice, Outcome};

/// The prefix of the outbox destination of a sink's alerts.
pub const DESTINATION: &str = "notify:";

struct Sink {
    destination: String,
    config: NotifyConfig,
    notices: Sender<Notice>,
}

/// A pipeline's sinks: what it hands them, and what became of it.
pub struct Notifier {
    sinks: Vec<Sink>,
    outcomes: Receiver<Outcome>,
    /// Outcomes decided here (a record for a sink no longer configured).
    decided: Vec<Outcome>,
    /// Notices handed over without an outcome yet.
    pending: usize,
    dead_letter_topic: String,
}

impl Notifier {
    /// Starts a delivery thread for each sink; refused alerts go to `dead_letter_topic`.
    pub fn spawn(
        configs: &[NotifyConfig],
        dead_letter_topic: &str,
        metrics: &Arc<Metrics>,
    ) -> Notifier {
        let (report, outcomes) = unbounded();
        let sinks = configs
            .iter()
            .enumerate()
            .map(|(i, config)| {
                let name = config.name(i);
                let (notices, queue) = unbounded();
                let receiver = http::Receiver::new(config.clone());
                deliver::spawn(
                    name.clone(),
                    receiver,
                    config.max_backlog,
                    queue,
                    report.clone(),
                    metrics,
                );
                Sink {
                    destination: format!("{DESTINATION}{name}"),
                    config: config.clone(),
                    notices,
                }
            })
            .collect();
        Notifier {
            sinks,
            outcomes,
            decided: Vec::new(),
            pending: 0,
            dead_letter_topic: dead_letter_topic.to_owned(),
        }
    }

    /// The outbox records of `alert`: one for each sink that wants it.
    pub fn records(&self, alert: &Alert) -> Vec<OutboxRecord> {
        let wanted = self.sinks.iter().filter(|s| s.config.wants(alert));
        wanted
            .map(|sink| OutboxRecord {
                topic: sink.destination.clone(),
                key: Some(alert.alert_id.clone().into_bytes()),
                partition: None,
                payload: serde_json::to_vec(alert).unwrap_or_default(),
                headers: Vec::new(),
            })
            .collect()
    }

    /// Takes a durable outbox record bound for a sink to its delivery thread; gives back
    /// a record that is not (for Kafka).
    pub fn take(&mut self, seq: u64, record: OutboxRecord) -> Option<OutboxRecord> {
        let Some(name) = record.topic.strip_prefix(DESTINATION) else {
            return Some(record);
        };
        let sink = self.sinks.iter().find(|s| s.destination == record.topic);
        let alert = serde_json::from_slice::<Alert>(&record.payload);
        match (sink, alert) {
            (Some(sink), Ok(alert)) => {
                if sink.notices.send(Notice { seq, alert }).is_ok() {
                    self.pending += 1;
                }
            }
            (None, _) => {
                tracing::warn!(
                    sink = name,
                    "an alert waited for a [[notify]] sink no longer configured: dropped"
                );
                self.decided.push(Outcome::Done(seq));
            }
            (Some(_), Err(e)) => {
                tracing::error!(sink = name, seq, error = %e, "an undecodable alert in the outbox: dropped");
                self.decided.push(Outcome::Done(seq));
            }
        }
        None
    }

    /// What became of the notices since last asked: the sequences done with go to
    /// `done`; the dead-letter records of refused alerts are returned.
    pub fn settle(&mut self, done: &mut Vec<u64>) -> Vec<OutboxRecord> {
        let mut dead = Vec::new();
        let decided = std::mem::take(&mut self.decided);
        for outcome in decided.into_iter().chain(self.outcomes.try_iter()) {
            self.pending = self.pending.saturating_sub(1);
            match outcome {
                Outcome::Done(seq) => done.push(seq),
                Outcome::Refused {
                    seq,
                    alert,
                    sink,
                    reason,
                } => {
                    done.push(seq);
                    dead.push(OutboxRecord {
                        topic: self.dead_letter_topic.clone(),
                        key: Some(alert.root.clone().into_bytes()),
                        partition: None,
                        payload: serde_json::to_vec(&alert).unwrap_or_default(),
                        headers: vec![
                            ("alert_id".into(), alert.alert_id.into_bytes()),
                            ("notify.sink".into(), sink.into_bytes()),
                            ("reason".into(), reason.into_bytes()),
                        ],
                    });
                }
            }
        }
        dead
    }

    /// [`Notifier::settle`], waiting up to `timeout` for every notice handed over.
    pub fn flush(&mut self, timeout: Duration, done: &mut Vec<u64>) -> Vec<OutboxRecord> {
        let until = Instant::now() + timeout;
        let mut dead = self.settle(done);
        while self.pending > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            dead.extend(self.settle(done));
        }
        if self.pending > 0 {
            tracing::warn!(
                alerts = self.pending,
                "alerts not delivered to their [[notify]] sinks yet stay in the outbox for the next run"
            );
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A sink nobody answers (port 1 refuses connections), keeping at most 3 alerts.
    fn unreachable() -> (Notifier, Arc<Metrics>) {
        let config = Config::parse(
            "[[notify]]\ntype = \"webhook\"\nname = \"down\"\nurl = \"http://127.0.0.1:1/\"\nmax_backlog = 3\n",
        )
        .unwrap();
        let metrics = Arc::new(Metrics::new());
        (Notifier::spawn(&config.notify, "dead", &metrics), metrics)
    }

    #[test]
    fn past_its_backlog_a_sink_drops_the_oldest_and_counts_them() {
        let (mut notifier, metrics) = unreachable();
        let alert = format::tests::echo_missing();
        let record = notifier.records(&alert).remove(0);
        assert_eq!(record.topic, "notify:down");
        for seq in 0..10 {
            assert!(
                notifier.take(seq, record.clone()).is_none(),
                "taken by the sink"
            );
        }
        let kafka = OutboxRecord {
            topic: "lockstep.alerts".into(),
            ..record
        };
        assert_eq!(notifier.take(10, kafka.clone()), Some(kafka), "for Kafka");
        let mut done = Vec::new();
        let backlog = metrics.notify_backlog.with_label_values(&["down"]);
        let started = Instant::now();
        while (done.len() < 7 || backlog.get() != 3) && started.elapsed() < Duration::from_secs(10)
        {
            notifier.settle(&mut done);
            std::thread::sleep(Duration::from_millis(10));
        }
        done.sort_unstable();
        assert_eq!(done, (0..7).collect::<Vec<u64>>(), "the oldest dropped");
        let dropped = metrics.notify_dropped.with_label_values(&["down"]).get();
        assert_eq!(dropped, 7);
        assert_eq!(backlog.get(), 3);
        assert!(metrics.notify_retried.with_label_values(&["down"]).get() >= 1);
        assert_eq!(notifier.pending, 3, "the newest wait for the receiver");
    }

    #[test]
    fn an_alert_for_a_sink_no_longer_configured_leaves_the_outbox() {
        let (mut notifier, _) = unreachable();
        let mut record = notifier.records(&format::tests::echo_missing()).remove(0);
        record.topic = "notify:removed".into();
        assert!(notifier.take(4, record).is_none());
        let mut done = Vec::new();
        assert!(notifier.settle(&mut done).is_empty());
        assert_eq!(done, vec![4]);
    }
}
