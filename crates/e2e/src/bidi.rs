//! A small WebDriver BiDi client for Firefox: launch headless Firefox with
//! its remote agent, open tabs, evaluate script, reload, stop service
//! workers from privileged script, take screenshots.
//!
//! Firefox speaks BiDi itself (`--remote-debugging-port`), so no driver
//! sits in between. The client must not send an `Origin` header (the
//! remote agent refuses one it does not expect); tungstenite sends none.
//! Stopping a worker needs the parent process: Firefox starts with
//! `--remote-allow-system-access`, `browsingContext.getTree` with
//! `moz:scope: "chrome"` lists the chrome windows, and script there calls
//! `nsIServiceWorkerInfo.terminateWorker()` on every registration.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::browser::{Error, wrap_for_eval};

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, Error>>>>>;

/// How long one protocol command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The executable: `FIREFOX`, else Debian's `firefox-esr`, else `firefox`.
pub fn firefox_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FIREFOX") {
        return PathBuf::from(p);
    }
    ["/usr/bin/firefox-esr", "/usr/bin/firefox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("firefox-esr"))
}

/// Preferences written to the profile before the first start: quiet,
/// no first-run pages, no updates or telemetry reaching out.
const USER_JS: &str = r#"
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("browser.sessionstore.resume_from_crash", false);
"#;

/// Adds preferences to `profile`'s `user.js` (read at the next start).
pub fn add_prefs(profile: &Path, prefs: &[(&str, i64)]) -> std::io::Result<()> {
    std::fs::create_dir_all(profile)?;
    let user_js = profile.join("user.js");
    let mut text = std::fs::read_to_string(&user_js).unwrap_or_else(|_| USER_JS.to_owned());
    for (name, value) in prefs {
        text.push_str(&format!("user_pref({name:?}, {value});\n"));
    }
    std::fs::write(user_js, text)
}

/// A running Firefox with a BiDi session.
pub struct Firefox {
    child: Child,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Firefox {
    /// Starts headless Firefox on `profile` (reuse the folder to simulate
    /// a browser restart) and opens a BiDi session.
    pub async fn launch(profile: &Path) -> Result<Firefox, Error> {
        let path = firefox_path();
        std::fs::create_dir_all(profile).map_err(|source| Error::Launch {
            what: profile.display().to_string(),
            source,
        })?;
        let user_js = profile.join("user.js");
        if !user_js.exists() {
            std::fs::write(&user_js, USER_JS).map_err(|source| Error::Launch {
                what: user_js.display().to_string(),
                source,
            })?;
        }
        let mut child = Command::new(&path)
            .args([
                "--headless",
                "--no-remote",
                "--remote-debugging-port=0",
                "--remote-allow-system-access",
                "--width=1280",
                "--height=900",
                "--profile",
            ])
            .arg(profile)
            .arg("about:blank")
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Launch {
                what: path.display().to_string(),
                source,
            })?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| Error::NoEndpoint(String::new()))?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        let endpoint = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("WebDriver BiDi listening on")
                    && let Some(pos) = line.find("ws://")
                {
                    return Some(line[pos..].trim().to_owned());
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| Error::NoEndpoint(seen.clone()))?;
        // Keep draining stderr so Firefox never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let url = format!("{}/session", endpoint.trim_end_matches('/'));
        let (socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| Error::Socket(format!("{url}: {e}")))?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        {
            let pending = pending.clone();
            let events = events.clone();
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    match (v["type"].as_str(), v.get("id").and_then(Value::as_u64)) {
                        (Some("event"), _) | (_, None) => {
                            let mut ev = events.lock().await;
                            if ev.len() < 10_000 {
                                ev.push(v);
                            }
                        }
                        (kind, Some(id)) => {
                            if let Some(tx) = pending.lock().await.remove(&id) {
                                let result = if kind == Some("error") {
                                    Err(Error::Command {
                                        method: String::new(),
                                        message: format!(
                                            "{}: {}",
                                            v["error"].as_str().unwrap_or("error"),
                                            v["message"].as_str().unwrap_or("")
                                        ),
                                    })
                                } else {
                                    Ok(v.get("result").cloned().unwrap_or(Value::Null))
                                };
                                let _ = tx.send(result);
                            }
                        }
                    }
                }
                // The connection is gone: fail whoever still waits.
                for (_, tx) in pending.lock().await.drain() {
                    let _ = tx.send(Err(Error::Socket("connection closed".into())));
                }
            });
        }
        let firefox = Firefox {
            child,
            out,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            events,
        };
        firefox
            .call("session.new", json!({ "capabilities": {} }))
            .await?;
        firefox
            .call("session.subscribe", json!({ "events": ["log.entryAdded"] }))
            .await?;
        Ok(firefox)
    }

    /// Sends a command and waits for its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let msg = json!({ "id": id, "method": method, "params": params });
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id, tx);
        self.out
            .send(Message::Text(msg.to_string().into()))
            .map_err(|e| Error::Socket(e.to_string()))?;
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(Error::Command { message, .. }))) => Err(Error::Command {
                method: method.to_owned(),
                message,
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(Error::Socket("connection closed".into())),
            Err(_) => Err(Error::Timeout(COMMAND_TIMEOUT, method.to_owned())),
        }
    }

    /// Opens a new tab (at `about:blank`); returns its browsing context.
    pub async fn new_tab(&self) -> Result<String, Error> {
        let created = self
            .call("browsingContext.create", json!({ "type": "tab" }))
            .await?;
        created["context"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Command {
                method: "browsingContext.create".into(),
                message: format!("no context in {created}"),
            })
    }

    /// Navigates `context` and waits for the load.
    pub async fn navigate(&self, context: &str, url: &str) -> Result<(), Error> {
        self.call(
            "browsingContext.navigate",
            json!({ "context": context, "url": url, "wait": "complete" }),
        )
        .await
        .map(|_| ())
    }

    /// Reloads `context` (the service worker keeps controlling it) and
    /// waits for the load.
    pub async fn reload(&self, context: &str) -> Result<(), Error> {
        self.call(
            "browsingContext.reload",
            json!({ "context": context, "wait": "complete" }),
        )
        .await
        .map(|_| ())
    }

    /// Evaluates `source` (a script; its completion value, awaited when a
    /// promise) in `context`; returns the value as JSON text.
    pub async fn eval_json(&self, context: &str, source: &str) -> Result<String, Error> {
        let r = self
            .call(
                "script.evaluate",
                json!({
                    "expression": wrap_for_eval(source),
                    "target": { "context": context },
                    "awaitPromise": true,
                    "userActivation": true,
                    "resultOwnership": "none",
                }),
            )
            .await?;
        match r["type"].as_str() {
            Some("success") => r["result"]["value"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::Script(format!("unexpected result: {r}"))),
            _ => Err(Error::Script(
                r["exceptionDetails"]["text"]
                    .as_str()
                    .map_or_else(|| r["exceptionDetails"].to_string(), str::to_owned),
            )),
        }
    }

    /// Terminates every service worker of the profile, from privileged
    /// script in the parent process.
    pub async fn stop_service_workers(&self) -> Result<(), Error> {
        let tree = self
            .call("browsingContext.getTree", json!({ "moz:scope": "chrome" }))
            .await?;
        let chrome = tree["contexts"]
            .as_array()
            .and_then(|c| c.first())
            .and_then(|c| c["context"].as_str())
            .ok_or_else(|| Error::Command {
                method: "browsingContext.getTree".into(),
                message: format!("no chrome window in {tree}"),
            })?;
        let r = self
            .call(
                "script.evaluate",
                json!({
                    "expression": STOP_WORKERS,
                    "target": { "context": chrome },
                    "awaitPromise": true,
                }),
            )
            .await?;
        if r["type"].as_str() == Some("success") {
            Ok(())
        } else {
            Err(Error::Script(format!(
                "terminating service workers: {}",
                r["exceptionDetails"]
            )))
        }
    }

    /// A PNG screenshot of `context`'s viewport, base64.
    pub async fn screenshot(&self, context: &str) -> Result<String, Error> {
        let r = self
            .call(
                "browsingContext.captureScreenshot",
                json!({ "context": context }),
            )
            .await?;
        Ok(r["data"].as_str().unwrap_or_default().to_owned())
    }

    /// Closes a tab.
    pub async fn close_tab(&self, context: &str) -> Result<(), Error> {
        self.call("browsingContext.close", json!({ "context": context }))
            .await
            .map(|_| ())
    }

    /// Every BiDi event received so far (the first 10,000).
    pub async fn events(&self) -> Vec<Value> {
        self.events.lock().await.clone()
    }

    /// Console messages and script errors seen so far.
    pub async fn console(&self) -> Vec<String> {
        self.events
            .lock()
            .await
            .iter()
            .filter(|e| e["method"] == "log.entryAdded")
            .map(|e| {
                let p = &e["params"];
                format!(
                    "{}.{}: {}",
                    p["type"].as_str().unwrap_or("log"),
                    p["level"].as_str().unwrap_or(""),
                    p["text"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Kills the browser process at once (SIGKILL: no shutdown, as when a
    /// phone kills it); the profile stays on disk as it was.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Closes the browser and waits for the process to end (the profile
    /// stays on disk).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            self.call("browser.close", json!({})),
        )
        .await;
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Privileged script (parent process): terminate the active, waiting and
/// installing worker of every registration.
const STOP_WORKERS: &str = r#"(async () => {
  const swm = Cc["@mozilla.org/serviceworkers/manager;1"].getService(Ci.nsIServiceWorkerManager);
  const regs = swm.getAllRegistrations();
  let stopped = 0;
  for (let i = 0; i < regs.length; i++) {
    const reg = regs.queryElementAt(i, Ci.nsIServiceWorkerRegistrationInfo);
    for (const worker of [reg.activeWorker, reg.waitingWorker, reg.installingWorker]) {
      if (worker) {
        await worker.terminateWorker();
        stopped++;
      }
    }
  }
  return stopped;
})()"#;
