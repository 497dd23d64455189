//! The HTTP API over a real listener: `lockstep serve` on the state of a replayed
//! simulation, every route, paging through cases and alerts, 401 without the token (and
//! counted), 404 and 400 as JSON, the OpenAPI document listing every route and passing
//! a validator; and `lockstep lineage` / `lockstep cases` on the same state.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use lockstep::client;
use serde_json::Value;

const TOKEN: &str = "t0ken-for-tests";

fn lockstep() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
}

struct Served {
    dir: tempfile::TempDir,
    base: String,
    child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port no listener holds now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A replayed simulation in a state directory, served on a free loopback port.
fn served() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let state = dir.path().join("state");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success());
    ok(lockstep()
        .args(["simulate", "--seed", "21", "--accounts", "150", "--out"])
        .arg(&events)
        .stderr(std::process::Stdio::null()));
    ok(lockstep()
        .args(["replay", "--input"])
        .arg(&events)
        .arg("--state")
        .arg(&state)
        .arg("--alerts")
        .arg(dir.path().join("alerts.ndjson"))
        .stderr(std::process::Stdio::null()));
    let port = free_port();
    let child = lockstep()
        .args(["serve", "--state"])
        .arg(&state)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("LOCKSTEP_API_TOKEN", TOKEN)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while client::get(&base, "/healthz", Some(TOKEN)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Served { dir, base, child }
}

fn get(s: &Served, path: &str) -> Value {
    client::get_json(&s.base, path, Some(TOKEN)).unwrap()
}

fn status(s: &Served, path: &str, token: Option<&str>) -> (u16, Value) {
    let (status, body) = client::get(&s.base, path, token).unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn replayed_alerts(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("alerts.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_route_paging_errors_and_the_token() {
    let s = served();

    assert_eq!(get(&s, "/healthz")["status"], "ok");
    assert_eq!(get(&s, "/readyz")["status"], "ready");
    let (code, metrics) = client::get(&s.base, "/metrics", Some(TOKEN)).unwrap();
    assert_eq!(code, 200);
    let metrics = String::from_utf8_lossy(&metrics);
    for name in [
        "lockstep_api_unauthorized_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "lockstep_build_info{version=\"",
        "lockstep_rocksdb_pending_compaction_bytes",
        "lockstep_rocksdb_write_stopped 0",
        "lockstep_rocksdb_block_cache_bytes",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }

    // Cases: pages of 7 cover every case once; the filters hold.
    let mut ids = Vec::new();
    let mut path = "/v1/cases?limit=7".to_owned();
    loop {
        let page = get(&s, &path);
        let cases = page["cases"].as_array().unwrap();
        assert!(cases.len() <= 7);
        ids.extend(
            cases
                .iter()
                .map(|c| c["case_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/cases?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let all = get(&s, "/v1/cases?limit=1000")["cases"]
        .as_array()
        .unwrap()
        .clone();
    assert!(all.len() > 20, "the simulation opens cases");
    assert_eq!(ids.len(), all.len());
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "no case twice"
    );
    for state in ["open", "breached", "complete", "superseded"] {
        for c in get(&s, &format!("/v1/cases?state={state}&limit=1000"))["cases"]
            .as_array()
            .unwrap()
        {
            assert_eq!(c["state"], state);
        }
    }
    let breached = get(&s, "/v1/cases?state=breached&limit=1000")["cases"]
        .as_array()
        .unwrap()
        .len();
    assert!(breached > 0 && breached < all.len());
    let mid = all[all.len() / 2]["revoked_at"]
        .as_str()
        .unwrap()
        .to_owned();
    for c in get(&s, &format!("/v1/cases?since={mid}&limit=1000"))["cases"]
        .as_array()
        .unwrap()
    {
        assert!(c["revoked_at"].as_str().unwrap() >= mid.as_str());
    }
    for c in get(&s, "/v1/cases?system=siem&limit=1000")["cases"]
        .as_array()
        .unwrap()
    {
        let owes = c["obligations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["system"] == "siem");
        assert!(owes || c["origin_system"] == "siem");
    }

    // One case, with its obligations and evidence.
    let one = &all[0];
    let case = get(
        &s,
        &format!("/v1/cases/{}", one["case_id"].as_str().unwrap()),
    );
    assert_eq!(&case, one);
    assert!(case["opened_by"].is_string());
    for o in case["obligations"].as_array().unwrap() {
        assert!(o["deadline"].is_string() && o["status"].is_string());
    }

    // The root of that case as an entity and as a lineage.
    let root = lockstep::api::encode_path(one["root"].as_str().unwrap());
    let entity = get(&s, &format!("/v1/entities/{root}"));
    assert_eq!(entity["entity"], one["root"]);
    assert!(!entity["timeline"].as_array().unwrap().is_empty());
    assert!(entity["states"]
        .as_array()
        .unwrap()
        .iter()
        .any(|st| st["state"] == "revoked"));
    let lineage = get(&s, &format!("/v1/lineage/{root}"));
    assert_eq!(lineage["tree"]["entity"], one["root"]);
    assert!(!lineage["tree"]["children"].as_array().unwrap().is_empty());

    // Alerts: pages of 5 in time order give every alert of the replay.
    let mut got = Vec::new();
    let mut path = "/v1/alerts?limit=5".to_owned();
    loop {
        let page = get(&s, &path);
        got.extend(page["alerts"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/alerts?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    let times: Vec<&str> = got.iter().map(|a| a["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order");
    let ids = |alerts: &[Value]| -> BTreeSet<String> {
        alerts
            .iter()
            .map(|a| a["alert_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let replayed = replayed_alerts(s.dir.path());
    assert_eq!(ids(&got), ids(&replayed));
    let since = times[times.len() / 2];
    let later = get(&s, &format!("/v1/alerts?since={since}&limit=1000"));
    let later = later["alerts"].as_array().unwrap();
    assert!(later.iter().all(|a| a["at"].as_str().unwrap() >= since));
    assert_eq!(later.len(), times.iter().filter(|t| **t >= since).count());

    // 404 and 400, as JSON naming the problem.
    for path in [
        "/v1/cases/c-nope",
        "/v1/entities/nobody",
        "/v1/lineage/nobody",
        "/v2/anything",
    ] {
        let (code, body) = status(&s, path, Some(TOKEN));
        assert_eq!(code, 404, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    for (path, needle) in [
        ("/v1/cases?limit=0", "limit"),
        ("/v1/cases?limit=abc", "limit"),
        ("/v1/cases?state=closed", "closed"),
        ("/v1/cases?system=ldap", "ldap"),
        ("/v1/cases?since=yesterday", "since"),
        ("/v1/cases?colour=red", "colour"),
        ("/v1/alerts?cursor=zz", "cursor"),
    ] {
        let (code, body) = status(&s, path, Some(TOKEN));
        assert_eq!(code, 400, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }

    // Without the token, or with another: 401, counted.
    for token in [None, Some("wrong")] {
        for path in ["/v1/cases", "/v1/alerts", "/v1/entities/x"] {
            let (code, body) = status(&s, path, token);
            assert_eq!(code, 401, "{path} with {token:?}");
            assert!(body["error"].is_string());
        }
    }
    // What kubelet probes and a Prometheus scrape by annotation ask, with no token: 200.
    for path in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        let (code, _) = client::get(&s.base, path, None).unwrap();
        assert_eq!(code, 200, "{path} without a token");
    }
    let (_, metrics) = client::get(&s.base, "/metrics", None).unwrap();
    assert!(
        String::from_utf8_lossy(&metrics).contains("lockstep_api_unauthorized_total 6"),
        "refusals are counted"
    );
}

#[test]
fn the_openapi_document_lists_every_route_and_validates() {
    let s = served();
    let doc = get(&s, "/v1/openapi.json");
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let routes: BTreeSet<&str> = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/cases",
        "/v1/cases/{id}",
        "/v1/entities/{id}",
        "/v1/lineage/{id}",
        "/v1/alerts",
        "/v1/inventory",
        "/v1/openapi.json",
    ]
    .into();
    assert_eq!(paths, routes);
    for route in routes.iter().filter(|r| !r.contains('{')) {
        let (code, _) = client::get(&s.base, route, Some(TOKEN)).unwrap();
        assert_eq!(code, 200, "{route} is served");
    }
    let file = s.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let python = std::env::var("LOCKSTEP_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator ({python}; `make deps` installs it): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Real answers of every route with a body, validated against the document's closed
    // schemas: a field a handler adds or drops without the document fails here.
    let cases = get(&s, "/v1/cases?limit=50");
    let case_id = cases["cases"][0]["case_id"].as_str().unwrap().to_owned();
    let root = cases["cases"][0]["root"].as_str().unwrap().to_owned();
    let lineage = get(
        &s,
        &format!("/v1/lineage/{}", lockstep::api::encode_path(&root)),
    );
    let child = lineage["tree"]["children"][0]["entity"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut samples = vec![
        ("CasePage", cases),
        ("Case", get(&s, &format!("/v1/cases/{case_id}"))),
        (
            "Entity",
            get(
                &s,
                &format!("/v1/entities/{}", lockstep::api::encode_path(&root)),
            ),
        ),
        (
            "Entity",
            get(
                &s,
                &format!("/v1/entities/{}", lockstep::api::encode_path(&child)),
            ),
        ),
        ("Lineage", lineage),
        (
            "Lineage",
            get(
                &s,
                &format!("/v1/lineage/{}", lockstep::api::encode_path(&child)),
            ),
        ),
        ("AlertPage", get(&s, "/v1/alerts?limit=1000")),
        ("InventoryPage", get(&s, "/v1/inventory?limit=1000")),
        ("InventoryPage", get(&s, "/v1/inventory?drift=true&limit=5")),
        (
            "InventoryPage",
            get(&s, "/v1/inventory?unregistered=true&kind=agent"),
        ),
    ];
    let (code, body) = status(&s, "/v1/cases/nope", Some(TOKEN));
    assert_eq!(code, 404);
    samples.push(("Error", body));
    let checks = s.dir.path().join("samples.json");
    std::fs::write(
        &checks,
        serde_json::to_string(
            &samples
                .iter()
                .map(|(n, v)| serde_json::json!([n, v]))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    )
    .unwrap();
    let script = r##"
import json, sys
from openapi_schema_validator import OAS30Validator, validate
doc = json.load(open(sys.argv[1]))
for name, answer in json.load(open(sys.argv[2])):
    schema = {"$ref": "#/components/schemas/" + name, "components": doc["components"]}
    validate(answer, schema, cls=OAS30Validator)
print("ok")
"##;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&file)
        .arg(&checks)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "answers against the document: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_inventory_pages_through_the_api_as_the_command_streams_it() {
    let s = served();
    let state = s.dir.path().join("state");
    let command = |from: &[&str], filter: &[&str]| -> Vec<Value> {
        let out = lockstep()
            .arg("inventory")
            .args(from)
            .args(["--format", "json"])
            .args(filter)
            .env("LOCKSTEP_API_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let streamed = command(&["--state", state.to_str().unwrap()], &[]);
    assert!(streamed.len() > 500, "{}", streamed.len());
    // Pages of 7 by cursor: every entity once, in the same order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/v1/inventory?limit=7&cursor={}",
                lockstep::api::encode_path(c)
            ),
            None => "/v1/inventory?limit=7".to_owned(),
        };
        let page = get(&s, &path);
        let entities = page["entities"].as_array().unwrap();
        assert!(entities.len() <= 7);
        paged.extend(entities.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, streamed);
    // `--api` pages the same, filters included.
    assert_eq!(command(&["--api", &s.base], &[]), streamed);
    for filter in [
        &["--drift"][..],
        &["--active", "--kind", "api_key"],
        &["--system", "mdm"],
    ] {
        assert_eq!(
            command(&["--api", &s.base], filter),
            command(&["--state", state.to_str().unwrap()], filter),
            "{filter:?}"
        );
    }
    let (code, body) = status(&s, "/v1/inventory?drift=yes", Some(TOKEN));
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("drift"), "{body}");
    let (code, _) = status(&s, "/v1/inventory?kind=robot", Some(TOKEN));
    assert_eq!(code, 400);
}

#[test]
fn lineage_and_cases_commands_show_a_service_account_tree() {
    let s = served();
    let state = s.dir.path().join("state");
    // The simulation gives svc-000003 a key with its vault secret, a token and an agent.
    let out = lockstep()
        .args(["lineage", "svc-000003@corp.example", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "svc-000003@corp.example (service_account)",
        "├── ",
        "(api_key)",
        "(secret)",
        "(token)",
        "(agent)",
        "iam: ",
        "vault: ",
        "mdm: ",
    ] {
        assert!(tree.contains(needle), "{needle:?} missing from:\n{tree}");
    }
    // The same through the API, as JSON and dot.
    let via_api = lockstep()
        .args([
            "lineage",
            "svc-000003@corp.example",
            "--format",
            "json",
            "--api",
            &s.base,
        ])
        .env("LOCKSTEP_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        via_api.status.success(),
        "{}",
        String::from_utf8_lossy(&via_api.stderr)
    );
    let json: Value = serde_json::from_slice(&via_api.stdout).unwrap();
    assert_eq!(json["tree"]["entity"], "svc-000003@corp.example");
    let dot = lockstep()
        .args([
            "lineage",
            "svc-000003@corp.example",
            "--format",
            "dot",
            "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&dot.stdout).starts_with("digraph lineage {"));

    let cases = lockstep()
        .args([
            "cases", "--status", "breached", "--format", "json", "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(cases.status.success());
    let lines: Vec<Value> = String::from_utf8(cases.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty() && lines.iter().all(|c| c["state"] == "breached"));

    // With a system, the state is that system's obligation: breached in the vault means
    // the vault's echo is missing, whatever the other systems did.
    let vault = lockstep()
        .args([
            "cases", "--status", "breached", "--system", "vault", "--format", "json", "--limit",
            "1000", "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    let vault: Vec<Value> = String::from_utf8(vault.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!vault.is_empty());
    for c in &vault {
        let o = c["obligations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["system"] == "vault")
            .unwrap();
        assert_eq!(o["status"], "missing", "{c}");
    }
    assert!(
        vault.len() < lines.len(),
        "other systems' breaches are not listed"
    );

    // Paging: the cursor printed after a page continues it.
    let page = |cursor: Option<&str>| {
        let mut cmd = lockstep();
        cmd.args(["cases", "--limit", "3", "--format", "json", "--state"])
            .arg(&state);
        if let Some(c) = cursor {
            cmd.args(["--cursor", c]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let next = stderr
            .split("--cursor ")
            .nth(1)
            .map(|r| r.split_whitespace().next().unwrap().to_owned());
        (String::from_utf8(out.stdout).unwrap(), next)
    };
    let (first, next) = page(None);
    let (second, _) = page(next.as_deref());
    assert_eq!(first.lines().count(), 3);
    assert!(!second.is_empty() && first.lines().all(|l| !second.contains(l)));

    // A state directory that does not exist: one clear message.
    let missing = lockstep()
        .args(["cases", "--state", "/nonexistent/state"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert_eq!(stderr.matches("/nonexistent/state").count(), 1, "{stderr}");
    let unknown = lockstep()
        .args(["lineage", "no-such-entity", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !stderr.contains("404 Not Found") && stderr.contains("no-such-entity"),
        "{stderr}"
    );
}

/// Sends a raw HTTP/1.1 request and returns the whole answer (connection closed after).
fn raw(base: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer
}

#[test]
fn the_listener_cannot_be_tied_up_or_rebound() {
    let s = served();
    // A loopback listener without a token answers only to loopback names (on a port of
    // its own: the one after the first server's may be another test's).
    let port = free_port();
    let open = lockstep()
        .args(["serve", "--state"])
        .arg(s.dir.path().join("state"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("LOCKSTEP_API_TOKEN")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let open = Served {
        dir: tempfile::tempdir().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
        child: open,
    };
    let started = Instant::now();
    while client::get(&open.base, "/healthz", None).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rebound = raw(
        &open.base,
        "GET /v1/cases HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n",
    );
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    assert!(rebound.contains("\"error\""), "{rebound}");
    let local = raw(
        &open.base,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(local.starts_with("HTTP/1.1 200"), "{local}");
    // Another method: 405 with a JSON body.
    let post = raw(&s.base, "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(
        post.starts_with("HTTP/1.1 405") && post.contains("\"error\""),
        "{post}"
    );
    // A target or headers too large: 414 and 431 with JSON bodies.
    for (target, header, status, says) in [
        (
            format!("/v1/entities/{}", "a".repeat(9000)),
            String::new(),
            "414",
            "longer than 8192 bytes",
        ),
        (
            "/healthz".into(),
            format!("X-Pad: {}\r\n", "b".repeat(17_000)),
            "431",
            "larger than 16384 bytes",
        ),
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}Connection: close\r\n\r\n"
        );
        let answer = raw(&s.base, &request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")) && answer.contains(says),
            "{answer}"
        );
    }

    // 300 connections that never finish their header: they are closed after the header
    // timeout, and the API answers again.
    use std::io::Write;
    let mut idle = Vec::new();
    for _ in 0..300 {
        if let Ok(mut c) = std::net::TcpStream::connect(s.base.trim_start_matches("http://")) {
            let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            idle.push(c);
        }
    }
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = client::get(&s.base, "/healthz", None) {
            break;
        }
        assert!(
            started.elapsed() < lockstep::api::HEADER_TIMEOUT + Duration::from_secs(10),
            "the API stayed tied up by idle connections"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
}
