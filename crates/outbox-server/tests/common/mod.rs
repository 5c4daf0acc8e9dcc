//! The test stack: the emulator (a local Genesys Cloud) in this process,
//! and `outbox serve` — the real binary — as a child process on a SQLite
//! file of its own, so that it can be stopped with SIGTERM or killed with
//! SIGKILL like a real one.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use genesys_emulator::{Config, Emulator};

/// The emulator's default OAuth client.
pub const CLIENT_ID: &str = "demo-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "demo-secret";

/// An emulator on a runtime of its own.
pub fn emulator(config: Config) -> genesys_emulator::BlockingEmulator {
    Emulator::start_blocking(config).expect("the emulator starts")
}

/// A running `outbox serve`.
pub struct Proxy {
    pub child: Child,
    pub base: String,
    pub stderr: Option<std::thread::JoinHandle<String>>,
}

/// How a proxy is started.
#[derive(Clone)]
pub struct ProxyConfig {
    /// The TOML file's text (the browser's schema).
    pub toml: String,
    /// The SQLite file.
    pub store: PathBuf,
    /// The upstream (the emulator).
    pub api_base: String,
    /// Use the emulator's client credentials.
    pub credentials: bool,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Extra flags.
    pub args: Vec<String>,
    /// `--listen`.
    pub listen: String,
}

impl ProxyConfig {
    /// A proxy for `api_base` with `toml`, on `dir/outbox.db`, with client
    /// credentials.
    pub fn new(dir: &Path, api_base: &str, toml: &str) -> Self {
        Self {
            toml: toml.to_owned(),
            store: dir.join("outbox.db"),
            api_base: api_base.to_owned(),
            credentials: true,
            env: Vec::new(),
            args: Vec::new(),
            listen: "127.0.0.1:0".into(),
        }
    }
}

impl Proxy {
    /// Starts the binary; returns once it prints its address, or with its
    /// error output if it exits first.
    pub fn try_start(config: &ProxyConfig) -> Result<Proxy, String> {
        let toml_path = config.store.with_extension("toml");
        std::fs::write(&toml_path, &config.toml).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_outbox"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&toml_path)
            .arg("--store")
            .arg(&config.store)
            .arg("--api-base")
            .arg(&config.api_base)
            .arg("--listen")
            .arg(&config.listen)
            .args(&config.args)
            .env_remove("OUTBOX_CLIENT_SECRET")
            .env_remove("OUTBOX_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if config.credentials {
            command
                .arg("--client-id")
                .arg(CLIENT_ID)
                .env("OUTBOX_CLIENT_SECRET", CLIENT_SECRET);
        }
        for (k, v) in &config.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the outbox binary runs");
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut first);
        // Keep draining stdout so the child never blocks on it.
        std::thread::spawn(move || for _ in reader.lines().map_while(Result::ok) {});
        match first.trim().strip_prefix("outbox listening on ") {
            Some(base) => Ok(Proxy {
                child,
                base: base.to_owned(),
                stderr: Some(stderr),
            }),
            None => {
                let _ = child.wait();
                Err(stderr.join().unwrap_or_default())
            }
        }
    }

    /// Starts the binary, or panics with its error output.
    pub fn start(config: &ProxyConfig) -> Proxy {
        Self::try_start(config).unwrap_or_else(|e| panic!("outbox serve did not start:\n{e}"))
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(mut self) {
        signal(&self.child, libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, waits for the exit; returns its status and its error
    /// output.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        signal(&self.child, libc::SIGTERM);
        let status = self.child.wait().unwrap();
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(&self.child, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn signal(child: &Child, sig: i32) {
    // Safe wrapper-free: the workspace forbids `unsafe`, so go through
    // the `kill` command.
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

/// Polls `check` until it gives `Some`, or panics with `what` after
/// `limit` (a bound against hanging, not a timing assertion).
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "gave up waiting for {what} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A blocking HTTP client (reqwest's async one on a small runtime).
pub struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// An answer: status, headers, body.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Got {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Client {
    pub fn new() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Got, reqwest::Error> {
        self.rt.block_on(async {
            let mut r = self
                .http
                .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            if let Some(b) = body {
                r = r
                    .header("content-type", "application/json")
                    .body(b.to_owned());
            }
            let resp = r.send().await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.text().await?;
            Ok(Got {
                status,
                headers,
                body,
            })
        })
    }

    pub fn get(&self, url: &str) -> Got {
        self.send("GET", url, &[], None).expect("GET answers")
    }

    pub fn post(&self, url: &str, headers: &[(&str, &str)], body: &str) -> Got {
        self.send("POST", url, headers, Some(body))
            .expect("POST answers")
    }
}

/// An agentless message to `to` with `text`.
pub fn agentless(to: &str, text: &str) -> String {
    serde_json::json!({
        "fromAddress": "+15550000000",
        "toAddress": to,
        "toAddressMessengerType": "sms",
        "textBody": text,
    })
    .to_string()
}

/// The agentless route's path.
pub const AGENTLESS: &str = "/api/v2/conversations/messages/agentless";
