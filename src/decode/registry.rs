//! The Confluent Schema Registry. Input: writer schemas for canonical Avro in the
//! Confluent wire format — the schema id after the magic byte is looked up once
//! (`GET {url}/schemas/ids/{id}`) and kept, and each datum is read with Avro schema
//! resolution from that writer schema into the canonical one, so producers may add fields
//! with defaults, reorder them, or drop optional ones. Output: the alert schema is
//! registered under the alerts topic's subject (`POST {url}/subjects/{topic}-value/
//! versions`) so alerts go out framed (magic byte, schema id, datum), as ksqlDB, Kafka
//! Connect's AvroConverter and Confluent consumers read them.
//!
//! `http://` or `https://` (a private CA, a client certificate: `[registry]`), basic or
//! bearer authentication, request timeouts. A lookup that fails for now — a transport
//! error, a timeout, any answer but 200 or "not found" — is a transient
//! [`DecodeError`]: the live pipeline reads the record again later, with a backoff (it is
//! no dead letter), and the registry is asked again then. Only "this schema does not
//! exist" (404, error code 40403) or a schema that is no usable Avro makes the record a
//! dead letter; that answer is remembered for [`RETRY_AFTER`]. Registering the alert
//! schema at start is tried [`ATTEMPTS`] times with a doubling backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::Schema;

use crate::client::{Auth, Http};
use crate::error::DecodeError;

/// How long a schema the registry says does not exist is remembered before it is asked
/// again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Tries of a registration (transport errors and 5xx answers are tried again).
pub const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(200);

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    why: String,
    /// The registry answered that the schema or subject does not exist: asking again
    /// will not help. Anything else may.
    missing: bool,
}

impl Failure {
    fn missing(why: String) -> Failure {
        Failure { why, missing: true }
    }

    fn for_now(why: String) -> Failure {
        Failure {
            why,
            missing: false,
        }
    }
}

/// How an answer of `status` with `body` counts: a 200's JSON, or why not. Only 404 (or
/// Confluent's error code 40403, "schema not found", whatever the status) says the
/// schema does not exist; any other answer — 5xx, 401/403 of a credential being
/// rotated, 429, a proxy's error page — may change.
fn classify(url: &str, status: u16, body: &[u8]) -> Result<serde_json::Value, Failure> {
    if status == 200 {
        return serde_json::from_slice(body)
            .map_err(|e| Failure::for_now(format!("{url} answered 200 without JSON: {e}")));
    }
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let why = format!(
        "{url} answered {status}: {}",
        answer["message"].as_str().unwrap_or("")
    );
    if status == 404 || answer["error_code"].as_u64() == Some(40403) {
        Err(Failure::missing(why))
    } else {
        Err(Failure::for_now(why))
    }
}

type Lookup = Result<Arc<Schema>, (Instant, String)>;

/// A registry client with its schema cache.
#[derive(Debug)]
pub struct Registry {
    url: String,
    http: Http,
    schemas: Mutex<HashMap<u32, Lookup>>,
}

impl Registry {
    /// A client of the registry at `url` (`http://host:port` or `https://…`) through
    /// `http` (its timeouts, authentication and TLS).
    pub fn over(url: &str, http: Http) -> Registry {
        Registry {
            url: url.trim_end_matches('/').to_owned(),
            http,
            schemas: Mutex::default(),
        }
    }

    /// A client of the registry at `url` with the public TLS roots.
    pub fn new(url: &str, timeout: Duration, auth: Option<Auth>) -> Registry {
        Registry::over(url, Http::new(timeout, auth))
    }

    /// The writer schema registered under `id`; a transient [`DecodeError`] when the
    /// registry cannot say now.
    pub fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        let cached = |schemas: &HashMap<u32, Lookup>| match schemas.get(&id) {
            Some(Ok(schema)) => Some(Ok(schema.clone())),
            Some(Err((at, why))) if at.elapsed() < RETRY_AFTER => {
                Some(Err(DecodeError::new(why.clone())))
            }
            _ => None,
        };
        if let Some(answer) = cached(&self.schemas.lock().unwrap_or_else(|e| e.into_inner())) {
            return answer;
        }
        let looked_up = match self.fetch(id) {
            Ok(schema) => Ok(schema),
            Err(Failure {
                why,
                missing: false,
            }) => return Err(DecodeError::unavailable(why)),
            Err(Failure { why, .. }) => Err(why),
        };
        self.schemas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, looked_up.clone().map_err(|why| (Instant::now(), why)));
        looked_up.map_err(DecodeError::new)
    }

    /// Registers `schema` under `subject` (or finds it registered): its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, String> {
        let path = format!("/subjects/{subject}/versions");
        let body = serde_json::json!({ "schema": schema });
        let answer = self
            .request(&path, ATTEMPTS, |url| {
                self.http
                    .post_json(url, "application/vnd.schemaregistry.v1+json", &body)
            })
            .map_err(|f| f.why)?;
        answer["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| format!("{}{path}: the answer has no schema \"id\"", self.url))
    }

    /// The schema `id`, asked once (the pipeline asks again later, not this call): an
    /// answer that is no Avro schema is a missing schema.
    fn fetch(&self, id: u32) -> Result<Arc<Schema>, Failure> {
        let path = format!("/schemas/ids/{id}");
        let failed = |why: String| format!("schema id {id}: {why}");
        let answer = self
            .request(&path, 1, |url| self.http.get(url))
            .map_err(|f| Failure {
                why: failed(f.why),
                ..f
            })?;
        if answer["schemaType"].as_str().is_some_and(|t| t != "AVRO") {
            return Err(Failure::missing(failed(format!(
                "{}{path} is a {} schema, not Avro",
                self.url, answer["schemaType"]
            ))));
        }
        let text = answer["schema"].as_str().ok_or_else(|| {
            Failure::missing(failed(format!(
                "{}{path}: the answer has no \"schema\"",
                self.url
            )))
        })?;
        Schema::parse_str(text).map(Arc::new).map_err(|e| {
            Failure::missing(failed(format!(
                "{}{path} is not a valid Avro schema: {e}",
                self.url
            )))
        })
    }

    /// Sends a request to `path` up to `attempts` times while it fails for now: the JSON
    /// of a 200 answer.
    fn request(
        &self,
        path: &str,
        attempts: u32,
        send: impl Fn(&str) -> anyhow::Result<(u16, Vec<u8>)>,
    ) -> Result<serde_json::Value, Failure> {
        let url = format!("{}{path}", self.url);
        let mut wait = BACKOFF;
        let mut attempt = 1;
        loop {
            let failure = match send(&url) {
                Ok((status, body)) => match classify(&url, status, &body) {
                    Err(failure) if !failure.missing => failure,
                    answer => return answer,
                },
                Err(e) => Failure::for_now(format!("{e:#}")),
            };
            if attempt >= attempts {
                return Err(match attempts {
                    1 => failure,
                    n => Failure::for_now(format!("{} (after {n} tries)", failure.why)),
                });
            }
            std::thread::sleep(wait);
            wait *= 2;
            attempt += 1;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serves `answers` (status, body) to successive requests on a loopback port, one
    /// connection each; returns each request's first line, `Authorization` and body.
    pub(crate) fn registry(
        answers: Vec<(u16, String)>,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut paths = Vec::new();
            for (status, body) in answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let n = conn.read(&mut chunk).unwrap();
                    assert!(n > 0, "request cut short");
                    request.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while request.len() < head_end + length {
                    let n = conn.read(&mut chunk).unwrap();
                    request.extend_from_slice(&chunk[..n]);
                }
                let mut line = head.lines().next().unwrap_or("").to_owned();
                if let Some(auth) = head
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
                {
                    line = format!("{line} | {}", auth.trim());
                }
                if length > 0 {
                    line = format!("{line} | {}", String::from_utf8_lossy(&request[head_end..]));
                }
                paths.push(line);
                write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            paths
        });
        (url, server)
    }

    #[test]
    fn a_schema_is_fetched_once_and_failures_carry_the_reason() {
        // 404 is the registry's answer, not a transport failure: asked once, remembered.
        let schema = serde_json::json!({"schema": r#"{"type":"record","name":"x","fields":[{"name":"a","type":"long"}]}"#});
        let (url, server) = registry(vec![
            (200, schema.to_string()),
            (
                404,
                r#"{"error_code":40403,"message":"Schema 9 not found"}"#.into(),
            ),
        ]);
        let registry = Registry::new(&url, Duration::from_secs(5), None);
        assert!(registry.writer_schema(3).is_ok());
        assert!(
            registry.writer_schema(3).is_ok(),
            "cached: no second request"
        );
        let err = registry.writer_schema(9).unwrap_err();
        assert!(!err.transient, "a dead letter: {err:?}");
        let err = err.reason;
        assert!(
            err.contains("schema id 9")
                && err.contains("404")
                && err.contains("Schema 9 not found"),
            "{err}"
        );
        assert_eq!(
            registry.writer_schema(9).unwrap_err().reason,
            err,
            "remembered"
        );
        let paths = server.join().unwrap();
        assert_eq!(
            paths,
            ["GET /schemas/ids/3 HTTP/1.1", "GET /schemas/ids/9 HTTP/1.1"]
        );
    }

    /// A producer whose schema has a field more (first, with a default) registers it as
    /// id 7: its framed records resolve into canonical events; read as if written with
    /// the canonical schema they would not.
    #[test]
    fn an_evolved_writer_schema_resolves_into_the_canonical_event() {
        use crate::decode::avro::{decode_datum, to_value, IDENTITY_EVENT_SCHEMA};
        use apache_avro::types::Value;

        let mut writer: serde_json::Value = serde_json::from_str(IDENTITY_EVENT_SCHEMA).unwrap();
        writer["fields"].as_array_mut().unwrap().insert(
            0,
            serde_json::json!({"name": "region", "type": "string", "default": "eu"}),
        );
        let writer_text = writer.to_string();
        let (url, server) = registry(vec![(
            200,
            serde_json::json!({ "schema": writer_text }).to_string(),
        )]);
        let ev = crate::decode::json::decode(br#"{"event_id":"e1","system":"vault","source":"v","time":"2026-03-02T10:31:29.552037Z","entity":"tok-1","entity_kind":"token","action":"revoked","outcome":"success","parent":"sa-1"}"#).unwrap();
        let Value::Record(mut fields) = to_value(&ev) else {
            panic!("a record")
        };
        fields.insert(0, ("region".into(), Value::String("us-east-1".into())));
        let writer = Schema::parse_str(&writer_text).unwrap();
        let mut framed = vec![0, 0, 0, 0, 7];
        framed.extend(apache_avro::to_avro_datum(&writer, Value::Record(fields)).unwrap());

        let registry = Registry::new(&url, Duration::from_secs(5), None);
        assert_eq!(decode_datum(&framed, Some(&registry)).unwrap(), ev);
        assert_ne!(decode_datum(&framed, None).ok(), Some(ev));
        server.join().unwrap();
    }

    #[test]
    fn an_unreachable_registry_is_a_transient_failure_not_a_panic() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = Registry::new(&url, Duration::from_secs(5), None)
            .writer_schema(1)
            .unwrap_err();
        assert!(err.transient, "{err:?}");
        assert!(
            err.reason.contains("schema id 1") && err.reason.contains(&url),
            "{err:?}"
        );
    }

    #[test]
    fn only_a_missing_schema_is_final_every_other_answer_may_change() {
        let url = "http://sr/schemas/ids/3";
        let missing = |status, body: &str| classify(url, status, body.as_bytes()).unwrap_err();
        assert!(
            missing(
                404,
                r#"{"error_code":40403,"message":"Schema 3 not found"}"#
            )
            .missing
        );
        assert!(missing(404, "<html>no such page</html>").missing);
        assert!(missing(422, r#"{"error_code":40403,"message":"not found"}"#).missing);
        for (status, body) in [
            (500, r#"{"error_code":50001,"message":"store error"}"#),
            (502, "<html>bad gateway</html>"),
            (503, ""),
            (401, r#"{"error_code":40101,"message":"unauthorized"}"#),
            (429, ""),
        ] {
            let failure = missing(status, body);
            assert!(!failure.missing, "{status}: {failure:?}");
            assert!(failure.why.contains(&status.to_string()), "{failure:?}");
        }
        assert!(
            !classify(url, 200, b"<html>proxy</html>")
                .unwrap_err()
                .missing
        );
        assert_eq!(classify(url, 200, br#"{"id":1}"#).unwrap()["id"], 1);
    }

    /// A 503 is not remembered: the next lookup asks again, and the schema it then gets is
    /// kept. An answer that is no Avro schema is final, like a 404.
    #[test]
    fn an_outage_is_asked_about_again_and_a_bad_schema_is_final() {
        let schema = serde_json::json!({"schema": r#""long""#});
        let protobuf =
            serde_json::json!({"schemaType": "PROTOBUF", "schema": "syntax = \"proto3\";"});
        let (url, server) = registry(vec![
            (503, r#"{"message":"busy"}"#.into()),
            (200, schema.to_string()),
            (200, protobuf.to_string()),
        ]);
        let registry = Registry::new(&url, Duration::from_secs(5), None);
        let outage = registry.writer_schema(5).unwrap_err();
        assert!(
            outage.transient && outage.reason.contains("503"),
            "{outage:?}"
        );
        assert!(registry.writer_schema(5).is_ok(), "asked again");
        assert!(registry.writer_schema(5).is_ok(), "kept");
        let bad = registry.writer_schema(6).unwrap_err();
        assert!(!bad.transient && bad.reason.contains("not Avro"), "{bad:?}");
        assert_eq!(server.join().unwrap().len(), 3);
    }

    #[test]
    fn a_registration_is_tried_again_and_authentication_is_sent() {
        let (url, server) = registry(vec![
            (503, r#"{"message":"busy"}"#.into()),
            (200, r#"{"id":42}"#.into()),
        ]);
        let registry = Registry::new(
            &url,
            Duration::from_secs(5),
            Some(Auth::Basic("sr-user:p&ss".into())),
        );
        assert_eq!(
            registry.register("lockstep.alerts-value", "\"long\""),
            Ok(42),
            "the 503 was tried again"
        );
        let requests = server.join().unwrap();
        assert!(
            requests[0].starts_with(
                "POST /subjects/lockstep.alerts-value/versions HTTP/1.1 | Authorization: Basic c3ItdXNlcjpwJnNz"
            ),
            "{requests:?}"
        );
        assert!(
            requests[1].ends_with(r#"{"schema":"\"long\""}"#),
            "{requests:?}"
        );
    }
}
