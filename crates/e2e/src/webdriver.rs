//! A small classic WebDriver client for WebKitGTK: an Xvfb display,
//! `WebKitWebDriver`, and MiniBrowser in automation mode, driven over
//! HTTP with the blocking `ureq` client (each call on tokio's blocking
//! pool).
//!
//! Classic WebDriver has one "current window" per session, so every tab
//! command first switches to its window, under one lock: commands of two
//! tabs run one after the other, never interleaved. WebKitGTK sessions are
//! ephemeral (a restart starts from empty storage) and WebDriver has no
//! command to stop a service worker; see [`crate::Engine::lacks`].

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::browser::Error;

/// `WEBKIT_WEBDRIVER`, else Debian's `/usr/bin/WebKitWebDriver`.
pub fn driver_path() -> PathBuf {
    std::env::var_os("WEBKIT_WEBDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/WebKitWebDriver"), PathBuf::from)
}

/// `WEBKIT_BROWSER`, else the MiniBrowser of Debian's `libwebkit2gtk-4.1-0`
/// (or another WebKitGTK API version) for any architecture.
pub fn minibrowser_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEBKIT_BROWSER") {
        return Some(PathBuf::from(p));
    }
    let lib = std::fs::read_dir("/usr/lib").ok()?;
    let mut found: Vec<PathBuf> = lib
        .flatten()
        .flat_map(|arch| {
            ["webkit2gtk-4.1", "webkitgtk-6.0", "webkit2gtk-4.0"]
                .map(|api| arch.path().join(api).join("MiniBrowser"))
        })
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// `XVFB`, else `/usr/bin/Xvfb`.
fn xvfb_path() -> PathBuf {
    std::env::var_os("XVFB").map_or_else(|| PathBuf::from("/usr/bin/Xvfb"), PathBuf::from)
}

/// The script that runs a source text and hands back its (awaited)
/// completion value as JSON text, or the error.
const EXECUTE: &str = r#"
const done = arguments[arguments.length - 1];
Promise.resolve()
  .then(() => (0, eval)(arguments[0]))
  .then(v => { const s = JSON.stringify(v); done({ ok: s === undefined ? "null" : s }); },
        e => done({ err: String(e) + (e && e.stack ? "\n" + e.stack : "") }));
"#;

/// A running MiniBrowser with a WebDriver session.
pub struct WebKit {
    _xvfb: Option<Child>,
    driver: Child,
    agent: ureq::Agent,
    base: String,
    /// The window commands currently go to; the lock serialises tabs.
    current: Arc<Mutex<String>>,
    /// The first window, handed to the first page.
    first: std::sync::Mutex<Option<String>>,
}

impl WebKit {
    /// Starts Xvfb, WebKitWebDriver and a MiniBrowser session.
    pub async fn launch() -> Result<WebKit, Error> {
        let (xvfb, display) = start_xvfb().await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|source| Error::Launch {
                what: "a free port".into(),
                source,
            })?;
        let path = driver_path();
        let driver = Command::new(&path)
            .arg(format!("--port={port}"))
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Launch {
                what: path.display().to_string(),
                source,
            })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(180)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let mut webkit = WebKit {
            _xvfb: xvfb,
            driver,
            agent,
            base,
            current: Arc::default(),
            first: std::sync::Mutex::new(None),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while webkit.request("GET", "/status", None).await.is_err() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NoEndpoint(format!(
                    "{} did not answer on port {port}",
                    path.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let binary = minibrowser_path().ok_or_else(|| {
            Error::NoEndpoint(
                "no MiniBrowser found (Debian: apt-get install webkit2gtk-driver; or set WEBKIT_BROWSER)"
                    .into(),
            )
        })?;
        let session = webkit
            .request(
                "POST",
                "/session",
                Some(json!({ "capabilities": { "alwaysMatch": {
                    "webkitgtk:browserOptions": {
                        "binary": binary.display().to_string(),
                        "args": ["--automation"],
                    },
                } } })),
            )
            .await?;
        let id = session["sessionId"]
            .as_str()
            .ok_or_else(|| Error::Command {
                method: "new session".into(),
                message: format!("no session id in {session}"),
            })?
            .to_owned();
        webkit.base = format!("{}/session/{id}", webkit.base);
        webkit
            .request(
                "POST",
                "/timeouts",
                Some(json!({ "script": 150_000, "pageLoad": 60_000 })),
            )
            .await?;
        let handle = webkit.request("GET", "/window", None).await?;
        let handle = handle.as_str().unwrap_or_default().to_owned();
        *webkit.current.lock().await = handle.clone();
        if let Ok(mut first) = webkit.first.lock() {
            *first = Some(handle);
        }
        Ok(webkit)
    }

    /// One HTTP request to the driver (`path` below the session once
    /// there is one); the answer's `value`, or its error.
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let agent = self.agent.clone();
        let url = format!("{}{path}", self.base);
        let method_name = format!("{method} {path}");
        let method = method.to_owned();
        let what = method_name.clone();
        let answer = tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
            let response = match (method.as_str(), body) {
                ("POST", body) => agent
                    .post(&url)
                    .content_type("application/json")
                    .send(body.unwrap_or_else(|| json!({})).to_string()),
                ("DELETE", _) => agent.delete(&url).call(),
                _ => agent.get(&url).call(),
            };
            let mut response = response.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let text = response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .map_err(|e| e.to_string())?;
            Ok((status, text))
        })
        .await
        .map_err(|e| Error::Socket(e.to_string()))?
        .map_err(Error::Socket)?;
        let (status, text) = answer;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::Command {
            method: what.clone(),
            message: format!("HTTP {status}, not JSON ({e}): {text}"),
        })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status >= 400 || value.get("error").is_some_and(Value::is_string) {
            return Err(Error::Command {
                method: method_name,
                message: format!(
                    "{}: {}",
                    value["error"].as_str().unwrap_or("error"),
                    value["message"].as_str().unwrap_or(&text)
                ),
            });
        }
        Ok(value)
    }

    /// Runs `f` with `handle` as the current window (switching first).
    async fn in_window(
        &self,
        handle: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Error> {
        let mut current = self.current.lock().await;
        if *current != handle {
            self.request("POST", "/window", Some(json!({ "handle": handle })))
                .await?;
            *current = handle.to_owned();
        }
        self.request(method, path, body).await
    }

    /// A window for a new page: the session's first one, then new tabs.
    pub async fn new_tab(&self) -> Result<String, Error> {
        if let Some(first) = self.first.lock().ok().and_then(|mut f| f.take()) {
            return Ok(first);
        }
        let _current = self.current.lock().await;
        let created = self
            .request("POST", "/window/new", Some(json!({ "type": "tab" })))
            .await?;
        created["handle"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Command {
                method: "new window".into(),
                message: format!("no handle in {created}"),
            })
    }

    /// Navigates the window `handle` and waits for the load.
    pub async fn navigate(&self, handle: &str, url: &str) -> Result<(), Error> {
        self.in_window(handle, "POST", "/url", Some(json!({ "url": url })))
            .await
            .map(|_| ())
    }

    /// Evaluates `source` (a script; its completion value, awaited when a
    /// promise) in `handle`; returns the value as JSON text.
    pub async fn eval_json(&self, handle: &str, source: &str) -> Result<String, Error> {
        let r = self
            .in_window(
                handle,
                "POST",
                "/execute/async",
                Some(json!({ "script": EXECUTE, "args": [source] })),
            )
            .await?;
        match (r["ok"].as_str(), r["err"].as_str()) {
            (Some(ok), _) => Ok(ok.to_owned()),
            (_, Some(err)) => Err(Error::Script(err.to_owned())),
            _ => Err(Error::Script(format!("unexpected result: {r}"))),
        }
    }

    /// A PNG screenshot of `handle`'s viewport, base64.
    pub async fn screenshot(&self, handle: &str) -> Result<String, Error> {
        let r = self.in_window(handle, "GET", "/screenshot", None).await?;
        Ok(r.as_str().unwrap_or_default().to_owned())
    }

    /// Closes the window `handle`.
    pub async fn close_tab(&self, handle: &str) -> Result<(), Error> {
        self.in_window(handle, "DELETE", "/window", None)
            .await
            .map(|_| ())
    }

    /// Ends the session and stops MiniBrowser, the driver and Xvfb.
    pub async fn close(mut self) {
        let _ =
            tokio::time::timeout(Duration::from_secs(10), self.request("DELETE", "", None)).await;
        let _ = self.driver.kill().await;
    }
}

/// Starts Xvfb on a free display (`-displayfd`), or uses `DISPLAY` when
/// there is no Xvfb but a display.
async fn start_xvfb() -> Result<(Option<Child>, String), Error> {
    let path = xvfb_path();
    if !path.exists()
        && let Ok(display) = std::env::var("DISPLAY")
    {
        return Ok((None, display));
    }
    let mut child = Command::new(&path)
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x900x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Launch {
            what: format!("{} (Debian: apt-get install xvfb)", path.display()),
            source,
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::NoEndpoint("Xvfb".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let display = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .ok_or_else(|| Error::NoEndpoint("Xvfb did not report its display".into()))?;
    Ok((Some(child), format!(":{}", display.trim())))
}
