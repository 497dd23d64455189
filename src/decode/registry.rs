//! Writer schemas from a Confluent Schema Registry, for canonical Avro in the Confluent
//! wire format: the schema id after the magic byte is looked up once
//! (`GET {url}/schemas/ids/{id}`) and kept, and each datum is read with Avro schema
//! resolution from that writer schema into the canonical one — so producers may add
//! fields with defaults, reorder them, or drop optional ones. Plain HTTP (a registry
//! behind TLS is reached through a local proxy); a failed lookup is retried after
//! [`RETRY_AFTER`], and its records are dead-lettered with the reason meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::Schema;

use crate::error::DecodeError;

/// How long a failed lookup is remembered before the registry is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

type Lookup = Result<Arc<Schema>, (Instant, String)>;

/// A registry client with its schema cache.
#[derive(Debug)]
pub struct Registry {
    url: String,
    schemas: Mutex<HashMap<u32, Lookup>>,
}

impl Registry {
    /// A client of the registry at `url` (`http://host:port`).
    pub fn new(url: &str) -> Registry {
        Registry {
            url: url.trim_end_matches('/').to_owned(),
            schemas: Mutex::default(),
        }
    }

    /// The writer schema registered under `id`.
    pub fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, DecodeError> {
        let mut schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        match schemas.get(&id) {
            Some(Ok(schema)) => return Ok(schema.clone()),
            Some(Err((at, why))) if at.elapsed() < RETRY_AFTER => {
                return Err(DecodeError::new(why.clone()))
            }
            _ => {}
        }
        let looked_up = self.fetch(id);
        schemas.insert(id, looked_up.clone().map_err(|why| (Instant::now(), why)));
        looked_up.map_err(DecodeError::new)
    }

    fn fetch(&self, id: u32) -> Result<Arc<Schema>, String> {
        let path = format!("/schemas/ids/{id}");
        let failed = |why: String| format!("schema id {id} from {}{path}: {why}", self.url);
        let (status, body) =
            crate::client::get(&self.url, &path, None).map_err(|e| failed(format!("{e:#}")))?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| failed(format!("answered {status} without JSON: {e}")))?;
        if status != 200 {
            return Err(failed(format!(
                "answered {status}: {}",
                answer["message"].as_str().unwrap_or("")
            )));
        }
        if answer["schemaType"].as_str().is_some_and(|t| t != "AVRO") {
            return Err(failed(format!(
                "is a {} schema, not Avro",
                answer["schemaType"]
            )));
        }
        let text = answer["schema"]
            .as_str()
            .ok_or_else(|| failed("the answer has no \"schema\"".into()))?;
        Schema::parse_str(text)
            .map(Arc::new)
            .map_err(|e| failed(format!("not a valid Avro schema: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serves `answers` (status, body) to successive requests on a loopback port.
    fn registry(answers: Vec<(u16, String)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut paths = Vec::new();
            for (status, body) in answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    let n = conn.read(&mut chunk).unwrap();
                    assert!(n > 0, "request cut short");
                    request.extend_from_slice(&chunk[..n]);
                }
                let line = String::from_utf8_lossy(&request)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
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
        let schema = serde_json::json!({"schema": r#"{"type":"record","name":"x","fields":[{"name":"a","type":"long"}]}"#});
        let (url, server) = registry(vec![
            (200, schema.to_string()),
            (
                404,
                r#"{"error_code":40403,"message":"Schema 9 not found"}"#.into(),
            ),
        ]);
        let registry = Registry::new(&url);
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

        let registry = Registry::new(&url);
        assert_eq!(decode_datum(&framed, Some(&registry)).unwrap(), ev);
        assert_ne!(decode_datum(&framed, None).ok(), Some(ev));
        server.join().unwrap();
    }

    #[test]
    fn an_unreachable_registry_is_a_reason_not_a_panic() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = Registry::new(&url).writer_schema(1).unwrap_err().reason;
        assert!(err.contains("schema id 1") && err.contains(&url), "{err}");
    }
}
