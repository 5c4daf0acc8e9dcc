//! The `genesys-emulator` binary: flags, the ready line, `--help`.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_genesys-emulator");

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn starts_with_flags_and_prints_its_url() {
    let mut child = Command::new(BIN)
        .args([
            "--port",
            "0",
            "--rate-limit",
            "7",
            "--cors-origin",
            "http://127.0.0.1:8080",
            "--client",
            "a:b",
            "--idempotency",
            "--success-status",
            "202",
            "--deployment",
            "dep-x",
            "--ws-message-rate",
            "4",
            "--faults",
            r#"{"latencyMs":1}"#,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("genesys-emulator listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let config = get(&url, "/__emulator/config");
    let faults = get(&url, "/__emulator/faults");
    child.kill().unwrap();
    child.wait().unwrap();
    let body: serde_json::Value =
        serde_json::from_str(config.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let c = &body["config"];
    assert_eq!(c["rateLimit"], 7);
    assert_eq!(c["successStatus"], 202);
    assert_eq!(
        c["cors"],
        serde_json::json!({"mode": "origins", "origins": ["http://127.0.0.1:8080"]})
    );
    assert_eq!(c["clients"][0]["id"], "a");
    assert_eq!(c["guest"]["deployments"][0], "dep-x");
    assert_eq!(c["guest"]["messageRate"], 4);
    assert_eq!(body["idempotency"], true);
    assert!(faults.contains("\"latencyMs\":1"), "{faults}");
}

#[test]
fn help_documents_every_flag_and_bad_values_fail() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--port",
        "--bind",
        "--client",
        "--token-ttl",
        "--rate-limit",
        "--rate-window",
        "--idempotency",
        "--cors-origin",
        "--seed",
        "--faults",
        "--success-status",
        "--max-body-bytes",
        "--agent-text-max",
        "--agentless-text-max",
        "--sms-text-max",
        "--open-text-max",
        "--seed-text-max",
        "--guest-text-max",
        "--guest-attributes-max",
        "--daily-limit-retry-after",
        "--deployment",
        "--ws-message-rate",
        "--ws-retry-after",
        "--ws-connection-rate",
        "--ws-max-connections",
        "--guest-session-ttl",
        "--guest-jwt-ttl",
        "--history-rate-limit",
        "--request-log-capacity",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for count in ["failNext", "loseAcks", "forceUnauthorized", "holdAfter"] {
        assert!(help.contains(count), "--help lacks the {count} fault");
    }
    for bad in [
        &["--success-status", "201"][..],
        &["--client", "nosecret"],
        &["--faults", r#"{"errorRate":3}"#],
        &["--faults", r#"{"failStatus":429}"#],
        &["--bind", "not-an-ip"],
    ] {
        let out = Command::new(BIN).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}
