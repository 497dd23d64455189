//! lockstep's own HTTP requests, on `ureq` (rustls for `https://`): the CLI's `--api`
//! mode, and the Confluent Schema Registry (writer schemas of framed input records, the
//! alert schema registered for framed Avro alerts). Connect and read timeouts bound every
//! request; a registry may want basic or bearer authentication.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Basic base64(user:password)`.
    Basic(String),
    /// `Authorization: Bearer token`.
    Bearer(String),
}

impl Auth {
    pub(crate) fn header(&self) -> String {
        match self {
            Auth::Basic(user_password) => format!("Basic {}", base64(user_password.as_bytes())),
            Auth::Bearer(token) => format!("Bearer {token}"),
        }
    }
}

/// An HTTP client: timeouts and authentication, connections kept alive.
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
    auth: Option<Auth>,
}

impl Http {
    /// A client whose requests time out after `timeout` (connecting: at most 5 s).
    pub fn new(timeout: Duration, auth: Option<Auth>) -> Http {
        Http::with_tls(timeout, auth, None)
    }

    /// [`Http::new`], with `tls` for `https://` (default: the public roots).
    pub fn with_tls(
        timeout: Duration,
        auth: Option<Auth>,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Http {
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(5)))
            .timeout(timeout);
        if let Some(tls) = tls {
            agent = agent.tls_config(tls);
        }
        Http {
            agent: agent.build(),
            auth,
        }
    }

    /// GETs `url`: the status and the body, whatever the status.
    pub fn get(&self, url: &str) -> Result<(u16, Vec<u8>)> {
        self.send(self.agent.get(url), None)
    }

    /// POSTs `body` as JSON (`content_type`) to `url`: the status and the body.
    pub fn post_json(&self, url: &str, content_type: &str, body: &Value) -> Result<(u16, Vec<u8>)> {
        let request = self.agent.post(url).set("Content-Type", content_type);
        self.send(request, Some(body.to_string()))
    }

    fn send(&self, mut request: ureq::Request, body: Option<String>) -> Result<(u16, Vec<u8>)> {
        let url = request.url().to_owned();
        request = request.set("Accept", "application/json");
        if let Some(auth) = &self.auth {
            request = request.set("Authorization", &auth.header());
        }
        let answer = match body {
            Some(body) => request.send_string(&body),
            None => request.call(),
        };
        let response = match answer {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow::anyhow!("{url}: {e}")),
        };
        let status = response.status();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)
            .with_context(|| format!("reading the answer of {url}"))?;
        Ok((status, bytes))
    }
}

/// GETs `path` (with its query) from `base` (`http://host:port` or `https://…`) with the
/// bearer token when one is given: the status and the body.
pub fn get(base: &str, path: &str, token: Option<&str>) -> Result<(u16, Vec<u8>)> {
    if !base.starts_with("http://") && !base.starts_with("https://") {
        bail!("--api {base:?}: expected http://host:port or https://host:port");
    }
    let http = Http::new(
        Duration::from_secs(30),
        token.map(|t| Auth::Bearer(t.into())),
    );
    http.get(&format!("{}{path}", base.trim_end_matches('/')))
}

/// GETs `path` from `base` and parses the JSON body; a non-2xx answer is an error carrying
/// the API's message.
pub fn get_json(base: &str, path: &str, token: Option<&str>) -> Result<Value> {
    let (status, body) = get(base, path, token)?;
    let value: Value = serde_json::from_slice(&body)
        .with_context(|| format!("{base}{path} answered {status} without JSON"))?;
    if !(200..300).contains(&status) {
        bail!(
            "{base}{path}: {status} {}",
            value["error"].as_str().unwrap_or("")
        );
    }
    Ok(value)
}

/// Standard base64 with padding (for basic authentication).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(Auth::Basic("u:p".into()).header(), "Basic dTpw");
    }
}
