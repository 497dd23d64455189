//! A small HTTP/1.1 client for the CLI's `--api` mode: GET a JSON document from a
//! running instance's API (plain HTTP, as on a loopback listener or behind a TLS proxy
//! terminating in the pod), with the bearer token when one is given.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// GETs `path` (with its query) from `base` (`http://host:port`) and parses the JSON body;
/// a non-2xx answer is an error carrying the API's message.
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

/// GETs `path` from `base`: the status and the body.
pub fn get(base: &str, path: &str, token: Option<&str>) -> Result<(u16, Vec<u8>)> {
    let authority = base
        .strip_prefix("http://")
        .with_context(|| format!("--api {base:?}: expected http://host:port"))?
        .trim_end_matches('/');
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("connecting to {base}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n{auth}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer of {base}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the answer has no HTTP header")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the answer has no HTTP status")?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).context("truncated chunk")?);
        body = body.get(size + 2..).context("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            super::dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(super::dechunk(b"5\r\nab").is_err());
    }
}
