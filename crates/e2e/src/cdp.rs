//! A small Chrome DevTools Protocol client: launch headless Chromium,
//! open pages, evaluate script, stop service workers, take screenshots.
//! (The usual crates generate the whole protocol and cost minutes of
//! compile time on a 2-core machine; these tests need a dozen commands.)

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

/// Anything that went wrong talking to the browser.
#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    /// Chromium could not be started.
    #[error("cannot start chromium ({path}): {source}")]
    Launch {
        /// The executable.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Chromium started but never announced its DevTools address.
    #[error("chromium did not announce a DevTools address; its output:\n{0}")]
    NoEndpoint(String),
    /// The WebSocket failed.
    #[error("DevTools connection: {0}")]
    Socket(String),
    /// A command returned an error.
    #[error("{method}: {message}")]
    Command {
        /// The command.
        method: String,
        /// The browser's message.
        message: String,
    },
    /// Script threw.
    #[error("script threw: {0}")]
    Script(String),
    /// Waited too long.
    #[error("timed out after {0:?} waiting for: {1}")]
    Timeout(Duration, String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, CdpError>>>>>;

/// The executable to use: `CHROME`, else Debian's `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROME").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// A running Chromium with a DevTools connection.
pub struct Browser {
    child: Child,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    events: Arc<Mutex<Vec<Value>>>,
    profile: PathBuf,
}

impl Browser {
    /// The browser's process id (its renderers and helpers are its
    /// descendants), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Starts headless Chromium on the profile folder `profile` (reuse the
    /// folder to simulate a browser restart).
    pub async fn launch(profile: &Path) -> Result<Browser, CdpError> {
        let path = chromium_path();
        let mut child = Command::new(&path)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-quic",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CdpError::Launch {
                path: path.display().to_string(),
                source,
            })?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| CdpError::NoEndpoint(String::new()))?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(pos) = line.find("ws://") {
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
        .ok_or_else(|| CdpError::NoEndpoint(seen.clone()))?;
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (socket, _) = tokio_tungstenite::connect_async(&endpoint)
            .await
            .map_err(|e| CdpError::Socket(e.to_string()))?;
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
                    if let Some(id) = v.get("id").and_then(Value::as_u64) {
                        if let Some(tx) = pending.lock().await.remove(&id) {
                            let result = match v.get("error") {
                                Some(e) => Err(CdpError::Command {
                                    method: String::new(),
                                    message: e.to_string(),
                                }),
                                None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
                            };
                            let _ = tx.send(result);
                        }
                    } else {
                        let mut ev = events.lock().await;
                        if ev.len() < 10_000 {
                            ev.push(v);
                        }
                    }
                }
            });
        }
        Ok(Browser {
            child,
            out,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            events,
            profile: profile.to_path_buf(),
        })
    }

    /// The profile folder.
    pub fn profile(&self) -> &Path {
        &self.profile
    }

    /// Sends a command (to the browser, or to a session) and waits for its result.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, CdpError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id, tx);
        self.out
            .send(Message::Text(msg.to_string().into()))
            .map_err(|e| CdpError::Socket(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(120), rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(CdpError::Command { message, .. }))) => Err(CdpError::Command {
                method: method.to_owned(),
                message,
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(CdpError::Socket("connection closed".into())),
            Err(_) => Err(CdpError::Timeout(
                Duration::from_secs(120),
                method.to_owned(),
            )),
        }
    }

    /// Opens a new tab at `url` and attaches to it.
    pub async fn new_page(&self, url: &str) -> Result<Page<'_>, CdpError> {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_owned();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let page = Page {
            browser: self,
            session,
            target_id,
        };
        page.call("Page.enable", json!({})).await?;
        page.call("Runtime.enable", json!({})).await?;
        page.goto(url).await?;
        Ok(page)
    }

    /// Stops every service worker (DevTools `ServiceWorker.stopAllWorkers`),
    /// as the browser does to an idle or misbehaving worker.
    pub async fn stop_service_workers(&self, page: &Page<'_>) -> Result<(), CdpError> {
        page.call("ServiceWorker.enable", json!({})).await?;
        page.call("ServiceWorker.stopAllWorkers", json!({})).await?;
        Ok(())
    }

    /// Every protocol event received so far (the first 10,000), for callers
    /// that need one no helper surfaces (e.g. `ServiceWorker.workerRegistrationUpdated`).
    pub async fn events(&self) -> Vec<Value> {
        self.events.lock().await.clone()
    }

    /// Console messages and exceptions seen so far (for failure reports).
    pub async fn console(&self) -> Vec<String> {
        self.events
            .lock()
            .await
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Runtime.consoleAPICalled" => Some(format!(
                    "console.{}: {}",
                    e["params"]["type"].as_str().unwrap_or(""),
                    e["params"]["args"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .map(|x| x
                                .get("value")
                                .map_or_else(|| x["description"].to_string(), |v| v.to_string()))
                            .collect::<Vec<_>>()
                            .join(" "))
                        .unwrap_or_default()
                )),
                "Runtime.exceptionThrown" => Some(format!(
                    "exception: {}",
                    e["params"]["exceptionDetails"]["exception"]["description"]
                        .as_str()
                        .unwrap_or_else(|| e["params"]["exceptionDetails"]["text"]
                            .as_str()
                            .unwrap_or(""))
                )),
                _ => None,
            })
            .collect()
    }

    /// Kills the browser process (SIGKILL: no shutdown, as a crash or the
    /// task manager would) and waits for it to end; the profile stays on disk.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Closes the browser and waits for the process to end (the profile
    /// stays on disk).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.call(None, "Browser.close", json!({})),
        )
        .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A tab.
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
    target_id: String,
}

impl Page<'_> {
    /// Sends a command to this tab.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.browser.call(Some(&self.session), method, params).await
    }

    /// Navigates and waits until the document has loaded.
    pub async fn goto(&self, url: &str) -> Result<(), CdpError> {
        self.call("Page.navigate", json!({ "url": url })).await?;
        self.wait_for(
            "document.readyState === 'complete' && location.href !== 'about:blank'",
            Duration::from_secs(30),
        )
        .await
    }

    /// Reloads the page and waits for it.
    pub async fn reload(&self) -> Result<(), CdpError> {
        self.eval::<Value>("window.__reloading = true; 1").await?;
        self.call("Page.reload", json!({ "ignoreCache": false }))
            .await?;
        self.wait_for(
            "document.readyState === 'complete' && !window.__reloading",
            Duration::from_secs(30),
        )
        .await
    }

    /// Evaluates an expression (awaiting a promise) and returns its value.
    pub async fn eval<T: serde::de::DeserializeOwned>(
        &self,
        expression: &str,
    ) -> Result<T, CdpError> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true, "userGesture": true }),
            )
            .await?;
        if let Some(details) = r.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["exception"]["value"].as_str())
                .or_else(|| details["text"].as_str())
                .unwrap_or("unknown error");
            return Err(CdpError::Script(text.to_owned()));
        }
        let value = r["result"].get("value").cloned().unwrap_or(Value::Null);
        serde_json::from_value(value)
            .map_err(|e| CdpError::Script(format!("unexpected result: {e}")))
    }

    /// Polls `condition` (a JS expression, may be async) until it is truthy.
    pub async fn wait_for(&self, condition: &str, timeout: Duration) -> Result<(), CdpError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let expr = format!("(async () => !!(await ({condition})))().catch(() => false)");
        loop {
            if let Ok(true) = self.eval::<bool>(&expr).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CdpError::Timeout(timeout, condition.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the viewport.
    pub async fn screenshot(&self, path: &Path) -> Result<(), CdpError> {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await?;
        let data = r["data"].as_str().unwrap_or_default();
        let bytes =
            base64_decode(data).ok_or_else(|| CdpError::Script("bad screenshot data".into()))?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, bytes).map_err(|e| CdpError::Script(e.to_string()))
    }

    /// Closes the tab.
    pub async fn close(self) -> Result<(), CdpError> {
        self.browser
            .call(
                None,
                "Target.closeTarget",
                json!({ "targetId": self.target_id }),
            )
            .await?;
        Ok(())
    }
}

pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            b'\n' | b'\r' => continue,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    Some(out)
}
