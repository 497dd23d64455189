//! A receiver's stand-in: an HTTP/1.1 server on a free loopback port that keeps every
//! request (path, headers, body) with the status it answered, the answer chosen by a
//! script given the request and how many came before.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request received, and the status answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub status: u16,
}

/// An answer: status, extra header lines, body.
pub type Answer = (u16, Vec<(String, String)>, String);

type Script = dyn Fn(&Request, usize) -> Answer + Send + Sync;

/// A running stand-in.
pub struct StandIn {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl StandIn {
    /// Serves on 127.0.0.1 until the test process ends, answering as `script` says.
    pub fn start(script: impl Fn(&Request, usize) -> Answer + Send + Sync + 'static) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let kept = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (kept, script) = (kept.clone(), script.clone());
                std::thread::spawn(move || serve(stream, &kept, &*script));
            }
        });
        StandIn { url, requests }
    }

    /// The requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Request> {
        let all = self.requests.lock().unwrap();
        all.iter()
            .filter(|r| (200..300).contains(&r.status))
            .cloned()
            .collect()
    }

    /// How many requests were answered with `status`.
    pub fn answered(&self, status: u16) -> usize {
        let all = self.requests.lock().unwrap();
        all.iter().filter(|r| r.status == status).count()
    }
}

/// Serves the requests of one keep-alive connection.
fn serve(stream: TcpStream, kept: &Mutex<Vec<Request>>, script: &Script) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut request = Request {
            path,
            headers,
            body,
            status: 0,
        };
        let (status, extra, answer) = {
            let mut all = kept.lock().unwrap();
            let answer = script(&request, all.len());
            request.status = answer.0;
            all.push(request);
            answer
        };
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            answer.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).is_err() || out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
