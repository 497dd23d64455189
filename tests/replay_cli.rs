//! End-to-end tests of the `lockstep` binary: simulate → replay, resuming a replay from
//! a state directory, Avro and JSON inputs agreeing, malformed lines reported and counted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lockstep(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "lockstep {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

fn lines(file: &str) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn simulate(dir: &Path, name: &str, accounts: &str) -> String {
    let out = path(dir, name);
    lockstep(&[
        "simulate",
        "--seed",
        "11",
        "--accounts",
        accounts,
        "--out",
        &out,
    ]);
    out
}

#[test]
fn replay_of_a_simulation_raises_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(dir.path(), "events.jsonl", "300");
    let alerts = path(dir.path(), "alerts.ndjson");
    lockstep(&[
        "replay",
        "--config",
        "config/lockstep.toml",
        "--input",
        &events,
        "--alerts",
        &alerts,
    ]);
    let got = lines(&alerts);
    for kind in [
        "echo_missing",
        "echo_late",
        "revoked_entity_used",
        "reactivated",
        "revocation_failed",
    ] {
        assert!(
            got.iter()
                .any(|l| l.contains(&format!("\"kind\":\"{kind}\""))),
            "no {kind}"
        );
    }
    let mut sorted = got.clone();
    sorted.sort_by_key(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["at"].as_str().unwrap().to_owned()
    });
    assert_eq!(sorted, got, "alerts are in time order");
}

#[test]
fn replaying_in_two_parts_with_state_equals_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(dir.path(), "events.jsonl", "200");
    let all = lines(&events);
    // Split at an instant T: everything before it, then the rest.
    let mut times: Vec<String> = all
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["time"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    times.sort();
    let t = times[times.len() / 2].clone();
    let (before, after): (Vec<_>, Vec<_>) = all.iter().partition(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["time"].as_str().unwrap() < t.as_str()
    });
    let first = path(dir.path(), "first.jsonl");
    let second = path(dir.path(), "second.jsonl");
    std::fs::write(
        &first,
        before.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    std::fs::write(
        &second,
        after.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();

    let one = path(dir.path(), "one.ndjson");
    lockstep(&["replay", "--input", &events, "--alerts", &one]);
    let state = path(dir.path(), "state");
    let a = path(dir.path(), "a.ndjson");
    let b = path(dir.path(), "b.ndjson");
    lockstep(&[
        "replay", "--input", &first, "--alerts", &a, "--state", &state,
    ]);
    lockstep(&[
        "replay", "--input", &second, "--alerts", &b, "--state", &state,
    ]);
    // Each run outputs every alert of the state: the second, those of one pass.
    let one = lines(&one);
    assert!(!lines(&a).is_empty() && lines(&a).len() < one.len());
    assert!(lines(&a).iter().all(|l| one.contains(l)));
    assert_eq!(lines(&b), one);

    // A replay of the whole input over a state that already applied part of it (a run
    // that was interrupted after a commit) outputs the alerts of one pass, not only those
    // raised after the point where the first run stopped.
    let resumed_state = path(dir.path(), "resumed");
    let resumed = path(dir.path(), "resumed.ndjson");
    lockstep(&[
        "replay",
        "--input",
        &first,
        "--alerts",
        &a,
        "--state",
        &resumed_state,
    ]);
    lockstep(&[
        "replay",
        "--input",
        &events,
        "--alerts",
        &resumed,
        "--state",
        &resumed_state,
    ]);
    assert_eq!(lines(&resumed), one);
}

#[test]
fn a_replay_killed_mid_run_and_resumed_outputs_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(dir.path(), "events.jsonl", "4000");
    let one = path(dir.path(), "one.ndjson");
    lockstep(&["replay", "--input", &events, "--alerts", &one]);
    let state = path(dir.path(), "state");
    let killed = path(dir.path(), "killed.ndjson");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "replay", "--input", &events, "--alerts", &killed, "--state", &state,
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wherever the kill lands (before the first commit, between commits, after the end),
    // the resumed run's output is the same.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let _ = child.kill();
    let _ = child.wait();
    let resumed = path(dir.path(), "resumed.ndjson");
    lockstep(&[
        "replay", "--input", &events, "--alerts", &resumed, "--state", &state,
    ]);
    assert_eq!(lines(&resumed), lines(&one));
}

#[test]
fn an_unwritable_alerts_path_fails_before_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(dir.path(), "events.jsonl", "20");
    let state = path(dir.path(), "state");
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "replay",
            "--input",
            &events,
            "--alerts",
            "/nonexistent-dir/alerts.ndjson",
            "--state",
            &state,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent-dir/alerts.ndjson"),
        "{stderr}"
    );
    assert!(
        !Path::new(&state).exists(),
        "nothing was replayed into the state"
    );
}

#[test]
fn avro_container_input_equals_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let json = simulate(dir.path(), "events.jsonl", "100");
    let avro = simulate(dir.path(), "events.avro", "100");
    assert_eq!(&std::fs::read(&avro).unwrap()[..4], b"Obj\x01");
    let a = path(dir.path(), "a.ndjson");
    let b = path(dir.path(), "b.ndjson");
    lockstep(&["replay", "--input", &json, "--alerts", &a]);
    lockstep(&["replay", "--input", &avro, "--alerts", &b]);
    assert!(!lines(&a).is_empty());
    assert_eq!(lines(&a), lines(&b));
}

#[test]
fn malformed_lines_are_reported_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(dir.path(), "events.jsonl", "50");
    let clean = path(dir.path(), "clean.ndjson");
    lockstep(&["replay", "--input", &events, "--alerts", &clean]);

    let mut mixed = lines(&events);
    mixed.insert(3, "{not json".into());
    mixed.insert(10, r#"{"event_id":"x","system":"ldap","time":"2026-03-02T00:00:00Z","entity":"e","action":"used"}"#.into());
    mixed.insert(20, "\u{0}\u{1}binary".into());
    let bad = path(dir.path(), "bad.jsonl");
    std::fs::write(&bad, mixed.join("\n")).unwrap();
    let out_alerts = path(dir.path(), "alerts.ndjson");
    let dead = path(dir.path(), "dead.ndjson");
    let out = lockstep(&[
        "replay",
        "--input",
        &bad,
        "--alerts",
        &out_alerts,
        "--dead-letters",
        &dead,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 dead letters"), "{stderr}");
    assert!(
        stderr.contains(&format!("{bad}:4: invalid canonical JSON")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{bad}:11: ")) && stderr.contains("ldap"),
        "{stderr}"
    );
    let dead_lines = lines(&dead);
    assert_eq!(dead_lines.len(), 3);
    assert!(dead_lines[0].contains("\"line\":4") && dead_lines[0].contains("{not json"));
    assert_eq!(lines(&out_alerts), lines(&clean));
}

#[test]
fn alerts_in_the_encodings_of_the_live_topic() {
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(dir.path(), "events.jsonl", "80");
    let json = path(dir.path(), "a.ndjson");
    lockstep(&["replay", "--input", &events, "--alerts", &json]);
    let json = lines(&json);
    let ocsf = path(dir.path(), "a.ocsf.ndjson");
    lockstep(&[
        "replay",
        "--input",
        &events,
        "--alerts",
        &ocsf,
        "--alerts-format",
        "ocsf",
    ]);
    let ocsf = lines(&ocsf);
    assert_eq!(ocsf.len(), json.len());
    for (o, j) in ocsf.iter().zip(&json) {
        let o: serde_json::Value = serde_json::from_str(o).unwrap();
        let j: serde_json::Value = serde_json::from_str(j).unwrap();
        assert_eq!(o["class_uid"], 2004);
        assert_eq!(o["finding_info"]["uid"], j["alert_id"]);
    }
    let avro = path(dir.path(), "a.avro");
    lockstep(&[
        "replay",
        "--input",
        &events,
        "--alerts",
        &avro,
        "--alerts-format",
        "avro",
    ]);
    let reader = apache_avro::Reader::new(std::fs::File::open(&avro).unwrap()).unwrap();
    let ids: Vec<String> = reader
        .map(|v| match v.unwrap() {
            apache_avro::types::Value::Record(fields) => match &fields[0].1 {
                apache_avro::types::Value::String(id) => id.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    let json_ids: Vec<String> = json
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["alert_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, json_ids);
}

#[test]
fn standard_input_is_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(dir.path(), "events.jsonl", "60");
    let from_file = path(dir.path(), "file.ndjson");
    lockstep(&["replay", "--input", &events, "--alerts", &from_file]);
    let from_stdin = path(dir.path(), "stdin.ndjson");
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["replay", "--input", "-", "--alerts", &from_stdin])
        .stdin(std::fs::File::open(&events).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!lines(&from_file).is_empty());
    assert_eq!(lines(&from_stdin), lines(&from_file));
}

#[test]
fn a_native_file_with_a_bad_first_line_loses_only_that_line() {
    let dir = tempfile::tempdir().unwrap();
    let sample = "tests/fixtures/samples/aws_cloudtrail/panther_AssumeRole.jsonl";
    let clean = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["normalize", "--format", "cloudtrail", "--input", sample])
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&clean.stdout).lines().count();
    assert!(expected > 0);
    let broken = path(dir.path(), "broken.jsonl");
    let text = std::fs::read_to_string(sample).unwrap();
    std::fs::write(&broken, format!("{{\"Records\": [oops\n{text}")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["normalize", "--format", "cloudtrail", "--input", &broken])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        expected,
        "{stderr}"
    );
    assert!(stderr.contains("1 dead letters"), "{stderr}");
    assert!(stderr.contains(&format!("{broken}:1")), "{stderr}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let events = simulate(dir.path(), "events.jsonl", "20");
    let alerts = path(dir.path(), "alerts.ndjson");
    let out = lockstep(&[
        "--log-format",
        "json",
        "replay",
        "--input",
        &events,
        "--alerts",
        &alerts,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(lines.len() >= 3, "{stderr}");
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    assert!(lines
        .iter()
        .any(|l| l["message"].as_str().unwrap().contains("events/s")));
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["check-config", "/nonexistent.toml"])
        .env("LOCKSTEP_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["level"], "ERROR");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains('\x1b'),
        "no ANSI off a terminal"
    );
}

#[test]
fn a_lineage_hundreds_of_levels_deep_renders() {
    let dir = tempfile::tempdir().unwrap();
    let chain = path(dir.path(), "chain.jsonl");
    let lines: String = (0..300)
        .map(|i| {
            let parent = if i == 0 { String::new() } else { format!(",\"parent\":\"n{}\"", i - 1) };
            format!(
                "{{\"event_id\":\"e{i}\",\"system\":\"iam\",\"time\":\"2026-03-02T00:{:02}:{:02}Z\",\"entity\":\"n{i}\",\"entity_kind\":\"token\",\"action\":\"issued\"{parent}}}\n",
                i / 60,
                i % 60
            )
        })
        .collect();
    std::fs::write(&chain, lines).unwrap();
    let state = path(dir.path(), "state");
    lockstep(&[
        "replay",
        "--input",
        &chain,
        "--state",
        &state,
        "--alerts",
        &path(dir.path(), "a.nd"),
    ]);
    for (entity, format) in [
        ("n0", "tree"),
        ("n0", "json"),
        ("n299", "tree"),
        ("n150", "mermaid"),
    ] {
        let out = lockstep(&["lineage", entity, "--format", format, "--state", &state]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(entity), "{entity} {format}");
        if entity == "n0" && format == "tree" {
            assert!(text.contains("n39 (token) … more below"), "{text}");
            assert!(!text.contains("n40 "), "{text}");
        }
        if entity == "n299" {
            assert!(text.contains("↑ n0 (token)"), "every ancestor: {text}");
        }
    }
}

#[test]
fn one_record_stamped_in_the_year_9999_changes_nothing_but_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let ev = |id: &str, system: &str, time: &str, entity: &str, action: &str| {
        format!("{{\"event_id\":\"{id}\",\"system\":\"{system}\",\"time\":\"{time}\",\"entity\":\"{entity}\",\"entity_kind\":\"service_account\",\"action\":\"{action}\"}}\n")
    };
    let story = [
        ev("i1", "iam", "2026-03-02T09:00:00Z", "sa", "created"),
        ev("v1", "vault", "2026-03-02T09:00:00Z", "sa", "created"),
        ev("i2", "iam", "2026-03-02T09:10:00Z", "sa", "disabled"),
        ev("v2", "vault", "2026-03-02T09:15:00Z", "sa", "revoked"),
    ]
    .concat();
    let outlier = ev("x1", "vault", "9999-12-31T23:59:59Z", "other", "used");
    let clean = path(dir.path(), "clean.jsonl");
    let poisoned = path(dir.path(), "poisoned.jsonl");
    std::fs::write(&clean, &story).unwrap();
    // The outlier first: it must not move the replay's end or the reorder buffer.
    std::fs::write(&poisoned, format!("{outlier}{story}")).unwrap();
    let a = path(dir.path(), "a.nd");
    let b = path(dir.path(), "b.nd");
    let dead = path(dir.path(), "dead.nd");
    lockstep(&["replay", "--input", &clean, "--alerts", &a]);
    let out = lockstep(&[
        "replay",
        "--input",
        &poisoned,
        "--alerts",
        &b,
        "--dead-letters",
        &dead,
    ]);
    assert_eq!(lines(&a), lines(&b));
    assert!(
        lines(&b).is_empty(),
        "the vault echoed on time: {:?}",
        lines(&b)
    );
    let dead = lines(&dead);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].contains("9999-12-31T23:59:59") && dead[0].contains("wall clock"),
        "{dead:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 dead letters"));
}

#[test]
fn dead_letters_stream_out_instead_of_piling_up() {
    // 70 MB of undecodable lines: before, every one was kept until the end (336 MiB
    // peak); now they are written as they come and memory stays flat.
    let dir = tempfile::tempdir().unwrap();
    let bad = path(dir.path(), "bad.jsonl");
    let line = format!(
        "{{\"not\": \"an event\", \"pad\": \"{}\"}}\n",
        "x".repeat(200)
    );
    std::fs::write(&bad, line.repeat(300_000)).unwrap();
    let dead = path(dir.path(), "dead.nd");
    let out = lockstep(&[
        "replay",
        "--input",
        &bad,
        "--alerts",
        &path(dir.path(), "a.nd"),
        "--dead-letters",
        &dead,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("300000 dead letters"), "{stderr}");
    assert_eq!(lines(&dead).len(), 300_000);
    let rss: u64 = stderr
        .split("peak RSS ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the summary reports the peak RSS");
    assert!(rss < 250, "peak RSS {rss} MiB for 70 MB of dead letters");
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for bad in ["NaN", "-0.5", "2", "inf"] {
        let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args([
                "simulate",
                "--accounts",
                "1",
                &format!("--redelivery={bad}"),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--redelivery {bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("fraction"),
            "{bad}"
        );
    }
}

#[test]
fn bad_config_fails_at_start_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg: PathBuf = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[sla]\nvault = \"fast\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("vault") && stderr.contains("\"fast\"") && stderr.contains("15m"),
        "{stderr}"
    );
    lockstep(&["check-config", "config/lockstep.toml"]);
    // What `run` rejects, check-config rejects too (exit 2, naming the key).
    for (text, needle, args) in [
        (
            "[api]\nlisten = \"not an address\"\n",
            "api.listen",
            &[][..],
        ),
        ("[api]\ntoken = \"\"\n", "api.token is empty", &[][..]),
        (
            "[api]\nlisten = \"0.0.0.0:9464\"\n",
            "LOCKSTEP_API_TOKEN",
            &[][..],
        ),
        (
            "[correlator]\nidle_timeout = \"0s\"\n",
            "idle_timeout is 0",
            &[][..],
        ),
        ("[sla]\nvault = \"5m\"\n", "needs [kafka]", &["--run"][..]),
        (
            "[state]\nmemory_budget = \"512MB\"\n",
            "state.memory_budget",
            &[][..],
        ),
        (
            "[state]\nmemory_budget = \"8MiB\"\n",
            "minimum of 32MiB",
            &[][..],
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .arg("check-config")
            .args(args)
            .arg(&cfg)
            .env_remove("LOCKSTEP_API_TOKEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(needle), "{text}: {stderr}");
    }
    std::fs::write(&cfg, "[sla]\nvault = \"0s\"\n").unwrap();
    let out = lockstep(&["check-config", cfg.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("note: sla.vault = 0s"),
        "a zero SLA is accepted with a note"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["run", "--config", "config/lockstep.toml", "--state"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "run without [kafka] is a configuration error"
    );
}

#[test]
fn a_replay_over_several_shards_equals_one_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let simulated = simulate(dir.path(), "events.jsonl", "3000");
    // A tree that gains a parent after it has state of its own: key-b is revoked in
    // iam and used before it is found to belong to role-a, which is revoked later.
    let joined = path(dir.path(), "joined.jsonl");
    let line = |id: &str, t: &str, entity: &str, action: &str, parent: Option<&str>| {
        let parent = parent.map_or(String::new(), |p| format!(r#","parent":"{p}""#));
        format!(
            r#"{{"event_id":"{id}","system":"iam","time":"2026-03-01T00:{t}Z","entity":"{entity}","entity_kind":"api_key","action":"{action}"{parent}}}"#
        )
    };
    let events = [
        line("j1", "00:00", "role-a", "created", None),
        line("j2", "00:01", "key-b", "created", None),
        line("j3", "01:00", "key-b", "revoked", None),
        line("j4", "05:00", "key-b", "used", None),
        line("j5", "06:00", "key-b", "issued", Some("role-a")),
        line("j6", "07:00", "role-a", "revoked", None),
        line("j7", "30:00", "key-b", "used", None),
    ];
    std::fs::write(&joined, events.join("\n") + "\n").unwrap();
    for input in [simulated, joined] {
        let mut outputs = Vec::new();
        for shards in ["1", "2", "5"] {
            let alerts = path(dir.path(), &format!("alerts-{shards}.nd"));
            lockstep(&[
                "replay",
                "--config",
                "config/lockstep.toml",
                "--input",
                &input,
                "--alerts",
                &alerts,
                "--shards",
                shards,
            ]);
            outputs.push(std::fs::read(&alerts).unwrap());
        }
        assert!(!outputs[0].is_empty(), "{input}: no alerts");
        assert!(outputs[1] == outputs[0], "{input}: 2 shards differ from 1");
        assert!(outputs[2] == outputs[0], "{input}: 5 shards differ from 1");
    }
    // Standard input cannot be read twice.
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["replay", "--input", "-", "--shards", "2"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read twice"));
}
