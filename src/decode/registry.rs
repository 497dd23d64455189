//! The Confluent Schema Registry. Input: writer schemas for canonical Avro in the
//! Confluent wire format — the schema id after the magic byte is looked up once
//! (`GET {url}/schemas/ids/{id}`) and kept, and each datum is read with Avro schema
//! resolution from that writer schema into the canonical one, so producers may add fields
//! with defaults, reorder them, or drop optional ones. Output: the alert schema is
//! registered under the alerts topic's subject (`POST {url}/subjects/{topic}-value/
//! versions`) so alerts go out framed (magic byte, schema id, datum), as ksqlDB, Kafka
//! Connect's AvroConverter and Confluent consumers read them.
//!
//! `http://` or `https://`, basic or bearer authentication (`[registry]`), request
//! timeouts, and [`ATTEMPTS`] tries with a doubling backoff on transport errors and 5xx
//! answers. The cache is not locked while a request is under way. A failed lookup is
//! remembered for [`RETRY_AFTER`], its records dead-lettered with the reason meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::Schema;

use crate::client::{Auth, Http};
use crate::error::DecodeError;

/// How long a failed lookup is remembered before the registry is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Tries of one request (transport errors and 5xx answers are tried again).
pub const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(200);

type Lookup = Result<Arc<Schema>, (Instant, String)>;

/// A registry client with its schema cache.
#[derive(Debug)]
pub struct Registry {
    url: String,
    http: Http,
    schemas: Mutex<HashMap<u32, Lookup>>,
}

impl Registry {
    /// A client of the registry at `url` (`http://host:port` or `https://…`).
    pub fn new(url: &str, timeout: Duration, auth: Option<Auth>) -> Registry {
        Registry {
            url: url.trim_end_matches('/').to_owned(),
            http: Http::new(timeout, auth),
            schemas: Mutex::default(),
        }
    }

    /// The writer schema registered under `id`.
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
        let looked_up = self.fetch(id);
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
        let answer = self.request(&path, |url| {
            self.http
                .post_json(url, "application/vnd.schemaregistry.v1+json", &body)
        })?;
        answer["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| format!("{}{path}: the answer has no schema \"id\"", self.url))
    }

    fn fetch(&self, id: u32) -> Result<Arc<Schema>, String> {
        let path = format!("/schemas/ids/{id}");
        let failed = |why: String| format!("schema id {id}: {why}");
        let answer = self
            .request(&path, |url| self.http.get(url))
            .map_err(failed)?;
        if answer["schemaType"].as_str().is_some_and(|t| t != "AVRO") {
            return Err(failed(format!(
                "{}{path} is a {} schema, not Avro",
                self.url, answer["schemaType"]
            )));
        }
        let text = answer["schema"]
            .as_str()
            .ok_or_else(|| failed(format!("{}{path}: the answer has no \"schema\"", self.url)))?;
        Schema::parse_str(text).map(Arc::new).map_err(|e| {
            failed(format!(
                "{}{path} is not a valid Avro schema: {e}",
                self.url
            ))
        })
    }

    /// Sends a request to `path` up to [`ATTEMPTS`] times: the JSON of a 200 answer.
    fn request(
        &self,
        path: &str,
        send: impl Fn(&str) -> anyhow::Result<(u16, Vec<u8>)>,
    ) -> Result<serde_json::Value, String> {
        let url = format!("{}{path}", self.url);
        let mut wait = BACKOFF;
        let mut attempt = 1;
        loop {
            let why = match send(&url) {
                Ok((200, body)) => {
                    return serde_json::from_slice(&body)
                        .map_err(|e| format!("{url} answered 200 without JSON: {e}"))
                }
                Ok((status, body)) => {
                    let answer: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    let why = format!(
                        "{url} answered {status}: {}",
                        answer["message"].as_str().unwrap_or("")
                    );
                    if status < 500 {
                        return Err(why);
                    }
                    why
                }
                Err(e) => format!("{e:#}"),
            };
            if attempt == ATTEMPTS {
                return Err(format!("{why} (after {ATTEMPTS} tries)"));
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
        let err = registry.writer_schema(9).unwrap_err().reason;
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
    fn an_unreachable_registry_is_a_reason_not_a_panic() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = Registry::new(&url, Duration::from_secs(5), None)
            .writer_schema(1)
            .unwrap_err()
            .reason;
        assert!(
            err.contains("schema id 1") && err.contains(&url) && err.contains("after 3 tries"),
            "{err}"
        );
    }

    #[test]
    fn server_errors_are_tried_again_and_authentication_is_sent() {
        let schema = serde_json::json!({"schema": r#""long""#});
        let (url, server) = registry(vec![
            (503, r#"{"message":"busy"}"#.into()),
            (200, schema.to_string()),
            (200, r#"{"id":42}"#.into()),
        ]);
        let registry = Registry::new(
            &url,
            Duration::from_secs(5),
            Some(Auth::Basic("sr-user:p&ss".into())),
        );
        assert!(registry.writer_schema(5).is_ok(), "the 503 was tried again");
        assert_eq!(
            registry.register("lockstep.alerts-value", "\"long\""),
            Ok(42)
        );
        let requests = server.join().unwrap();
        assert!(
            requests[0]
                .starts_with("GET /schemas/ids/5 HTTP/1.1 | Authorization: Basic c3ItdXNlcjpwJnNz"),
            "{requests:?}"
        );
        assert!(
            requests[2].starts_with("POST /subjects/lockstep.alerts-value/versions"),
            "{requests:?}"
        );
        assert!(
            requests[2].ends_with(r#"{"schema":"\"long\""}"#),
            "{requests:?}"
        );
    }
}
