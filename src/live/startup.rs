//! Starting against a broker that does not answer yet. Before it consumes, `lockstep
//! run` asks the broker for the source topics' partitions and reads back the last
//! records it consumed; a broker that is frozen, restarting or not up yet answers
//! nothing, and that is no reason to exit: the start waits, says what it waits for, and
//! asks again with a backoff (1 s, doubling to 30 s), `/readyz` answering 503 meanwhile.
//! What waiting cannot mend fails at once, naming the key: broker addresses that do not
//! resolve, properties librdkafka refuses, a missing `[kafka]`.

use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::LiveError;
use crate::config::KafkaConfig;

/// The first wait before asking again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a wait looks at the stop switch.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Fails unless at least one of `[kafka] brokers` resolves: a host name that does not is
/// a configuration to fix, not an outage to wait out.
pub(super) fn brokers_resolve(kafka: &KafkaConfig) -> Result<(), LiveError> {
    let mut failures = Vec::new();
    for entry in kafka
        .brokers
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let address = entry.rsplit_once("://").map_or(entry, |(_, a)| a);
        let with_port = match address.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => address.to_owned(),
            _ => format!("{address}:9092"),
        };
        match with_port.to_socket_addrs().map(|mut addrs| addrs.next()) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => failures.push(format!("{entry}: no address")),
            Err(e) => failures.push(format!("{entry}: {e}")),
        }
    }
    Err(LiveError::Config(format!(
        "kafka.brokers: none of the brokers resolves ({}): give host:port pairs this machine can resolve",
        failures.join("; ")
    )))
}

/// Whether `error` may go away by itself: the broker not answering (frozen, restarting,
/// not up yet, a partition leader moving). A refused configuration, a refused
/// credential, a rejected request are not.
pub(super) fn transient(error: &LiveError) -> bool {
    match error {
        LiveError::Unavailable(_) => true,
        LiveError::Kafka(e) => transient_kafka(e),
        _ => false,
    }
}

fn transient_kafka(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(
            OperationTimedOut
                | AllBrokersDown
                | BrokerTransportFailure
                | RequestTimedOut
                | BrokerNotAvailable
                | LeaderNotAvailable
                | NotLeaderForPartition
                | NetworkException
                | CoordinatorNotAvailable
                | NotCoordinator
                | CoordinatorLoadInProgress
                | UnknownTopicOrPartition
                | TimedOutQueue
        )
    )
}

/// Runs `ask` until it succeeds or fails for good, waiting between attempts while its
/// failure is [`transient`] (and saying so, with what it waits for). Returns
/// [`LiveError::Stopped`] if `stop` is set while it waits.
pub(super) fn wait_for_broker<T>(
    what: &str,
    stop: &AtomicBool,
    mut ask: impl FnMut() -> Result<T, LiveError>,
) -> Result<T, LiveError> {
    let mut backoff = FIRST_BACKOFF;
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        let error = match ask() {
            Ok(answer) => {
                if attempts > 0 {
                    tracing::info!(waited = ?started.elapsed(), "the broker answers: {what} done; starting");
                }
                return Ok(answer);
            }
            Err(e) if transient(&e) => e,
            Err(e) => return Err(e),
        };
        attempts += 1;
        tracing::warn!(
            error = %error,
            attempt = attempts,
            retry_in = ?backoff,
            "the broker does not answer yet ({what}): waiting for it before consuming; /readyz is 503 meanwhile"
        );
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return Err(LiveError::Stopped);
            }
            std::thread::sleep(STOP_CHECK);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(brokers: &str) -> KafkaConfig {
        let text = format!(
            "[kafka]\nbrokers = \"{brokers}\"\n[[sources]]\nsystem = \"iam\"\ntopic = \"t\"\nformat = \"canonical-json\"\n"
        );
        crate::config::Config::parse(&text).unwrap().kafka.unwrap()
    }

    #[test]
    fn brokers_that_do_not_resolve_fail_at_once_naming_the_key() {
        assert!(brokers_resolve(&kafka("127.0.0.1:9092")).is_ok());
        assert!(brokers_resolve(&kafka("nowhere.invalid:9092, localhost")).is_ok());
        assert!(brokers_resolve(&kafka("SASL_SSL://127.0.0.1:9093")).is_ok());
        let why = brokers_resolve(&kafka("nowhere.invalid:9092,also.invalid"))
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("kafka.brokers") && why.contains("nowhere.invalid:9092"),
            "{why}"
        );
    }

    #[test]
    fn a_broker_that_does_not_answer_is_waited_for_and_a_refused_config_is_not() {
        let timeout = LiveError::Kafka(KafkaError::MetadataFetch(
            RDKafkaErrorCode::OperationTimedOut,
        ));
        assert!(transient(&timeout));
        let refused = LiveError::Kafka(KafkaError::ClientCreation("No such property".into()));
        assert!(!transient(&refused));
        assert!(!transient(&LiveError::Kafka(KafkaError::MetadataFetch(
            RDKafkaErrorCode::SaslAuthenticationFailed
        ))));
        assert!(!transient(&LiveError::Config("bad".into())));
    }

    #[test]
    fn the_start_asks_again_until_the_broker_answers_and_stops_when_told() {
        let stop = AtomicBool::new(false);
        let mut asked = 0;
        let answer = wait_for_broker("reading partitions", &stop, || {
            asked += 1;
            match asked {
                1 => Err(LiveError::Kafka(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::OperationTimedOut,
                ))),
                _ => Ok(asked),
            }
        });
        assert_eq!(answer.unwrap(), 2);
        let refused = wait_for_broker("reading partitions", &stop, || -> Result<(), _> {
            Err(LiveError::Config("bad".into()))
        });
        assert!(matches!(refused, Err(LiveError::Config(_))));
        stop.store(true, Ordering::SeqCst);
        let stopped = wait_for_broker("reading partitions", &stop, || -> Result<(), _> {
            Err(LiveError::Kafka(KafkaError::MetadataFetch(
                RDKafkaErrorCode::AllBrokersDown,
            )))
        });
        assert!(matches!(stopped, Err(LiveError::Stopped)));
    }
}
