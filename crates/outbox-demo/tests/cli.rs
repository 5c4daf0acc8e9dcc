//! The `outbox-demo` binary: `--help`, the clear refusals, the lines it
//! prints, real-region mode against a stand-in, and a clean stop on Ctrl-C
//! (SIGINT) or SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use genesys_emulator::{ClientCredentials, Config, Emulator};

const BIN: &str = env!("CARGO_BIN_EXE_outbox-demo");

/// A `GET` with `connection: close`; returns the whole answer (head and body).
fn get(addr: &str, path: &str, extra: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\n{extra}connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The demo binary without any credentials in its environment.
fn demo() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("OUTBOX_CLIENT_ID")
        .env_remove("OUTBOX_CLIENT_SECRET");
    c
}

/// Starts the binary and reads its first standard-output lines (until
/// "Stop with Ctrl-C.").
fn start(command: &mut Command) -> (Child, Vec<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines
        .last()
        .is_some_and(|l: &String| l.starts_with("Stop with Ctrl-C"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "no start-up lines: {lines:?}\nstderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    (child, lines)
}

/// `host:port` of the URL on the line starting with `label`.
fn address(lines: &[String], label: &str) -> String {
    let line = lines
        .iter()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in {lines:?}"));
    let url = line.split_whitespace().find(|w| w.contains("://")).unwrap();
    url.split("://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_owned()
}

/// Sends `signal` and waits for the process to end. The deadline only
/// guards against a hang: the server gives open connections at most 5 s,
/// and on a starved machine the process may not get the CPU for seconds
/// (a 10 s deadline failed once under two busy loops and a build).
fn stop(mut child: Child, signal: &str) -> (std::process::ExitStatus, String) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 60 s after SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_describes_the_flags() {
    let out = demo().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--port",
        "--emulator-port",
        "--bind",
        "--dist",
        "--region",
        "OUTBOX_CLIENT_ID",
        "OUTBOX_CLIENT_SECRET",
        "--deployment",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(
        !help.contains("upstream-override"),
        "the test-only flag stays hidden"
    );
    assert!(demo().arg("--version").output().unwrap().status.success());
}

#[test]
fn region_mode_without_credentials_says_what_to_set() {
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("OUTBOX_CLIENT_ID", "id")],
        &[("OUTBOX_CLIENT_SECRET", "secret")],
        &[("OUTBOX_CLIENT_ID", ""), ("OUTBOX_CLIENT_SECRET", "")],
    ];
    for env in cases {
        let out = demo()
            .args(["--region", "mypurecloud.ie", "--port", "0"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{env:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("set OUTBOX_CLIENT_ID and OUTBOX_CLIENT_SECRET"),
            "{env:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing was started");
    }
}

#[test]
fn an_unknown_region_lists_the_real_ones() {
    let out = demo()
        .args(["--region", "mypurecloud.example"])
        .env("OUTBOX_CLIENT_ID", "id")
        .env("OUTBOX_CLIENT_SECRET", "secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("is not a Genesys Cloud region") && stderr.contains("mypurecloud.ie"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = demo()
        .args(["--port", &port, "--emulator-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn serves_the_demo_with_its_emulator_and_stops_cleanly_on_ctrl_c_and_sigterm() {
    for signal in ["INT", "TERM"] {
        let (child, lines) = start(demo().args(["--port", "0", "--emulator-port", "0"]));
        assert!(
            lines[0].starts_with("Outbox demo:"),
            "the URL comes first: {lines:?}"
        );
        let page = address(&lines, "Outbox demo:");
        let emulator = address(&lines, "Genesys emulator:");
        let home = get(&page, "/", "");
        assert!(home.starts_with("HTTP/1.1 200"), "{home}");
        assert!(home.contains("<title>Outbox demo"), "the demo page");
        let config = get(&page, "/demo-config.json", "");
        assert!(
            config.contains(&format!("\"emulator\":\"http://{emulator}\"")),
            "{config}"
        );
        assert!(get(&emulator, "/__emulator/health", "").contains("\"ok\":true"));
        // A connection left open does not hold the stop up.
        let idle = TcpStream::connect(&page).unwrap();
        let (status, stderr) = stop(child, signal);
        assert!(status.success(), "SIG{signal}: {status} {stderr}");
        assert!(stderr.contains("outbox-demo: stopping"), "{stderr}");
        for addr in [&page, &emulator] {
            assert!(
                TcpStream::connect(addr).is_err(),
                "{addr} still accepts after SIG{signal}"
            );
        }
        drop(idle);
    }
}

#[test]
fn region_mode_runs_against_a_stand_in_for_the_region_hosts() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime
        .block_on(Emulator::start(Config {
            clients: vec![ClientCredentials::new("org-client", "org-secret-value")],
            ..Config::ephemeral()
        }))
        .unwrap();
    let base = emulator.base_url();
    let (child, lines) = start(
        demo()
            .args(["--region", "mypurecloud.ie", "--port", "0"])
            .args(["--upstream-override", &base])
            .env("OUTBOX_CLIENT_ID", "org-client")
            .env("OUTBOX_CLIENT_SECRET", "org-secret-value"),
    );
    assert!(
        lines.iter().any(|l| l.starts_with("Genesys Cloud:")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("Genesys emulator:")));
    let page = address(&lines, "Outbox demo:");
    let token = get(&page, "/token", "sec-fetch-site: same-origin\r\n");
    assert!(token.starts_with("HTTP/1.1 200"), "{token}");
    assert!(token.contains("access_token") && !token.contains("org-secret-value"));
    let config = get(&page, "/demo-config.json", "");
    assert!(config.contains("\"region\":\"mypurecloud.ie\""), "{config}");
    assert!(
        config.contains(&format!("\"apiBase\":\"{base}\"")),
        "{config}"
    );
    assert!(config.contains("\"emulator\":null"), "{config}");
    assert!(!config.contains("org-secret-value"));
    let (status, _) = stop(child, "INT");
    assert!(status.success());
    runtime.block_on(emulator.shutdown());
}
