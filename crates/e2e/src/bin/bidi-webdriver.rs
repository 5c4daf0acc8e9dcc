//! `bidi-webdriver --port=N`: just enough of a classic WebDriver server,
//! over Firefox's own WebDriver BiDi, for `wasm-bindgen-test-runner` to run
//! the wasm suites in Firefox without `geckodriver` (which has no Debian
//! package and costs minutes of compiling on every fresh machine).
//!
//! The runner needs five commands: new session, get session, navigate,
//! execute a synchronous script (to read the test page's output), and
//! close the window. Each maps to one BiDi command of [`e2e::bidi`]; the
//! session is one headless Firefox on a fresh profile, closed with the
//! window. Point the runner at it with `GECKODRIVER=…/bidi-webdriver`.

use std::path::PathBuf;

use e2e::bidi::Firefox;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The one session: the browser and its tab.
struct Session {
    firefox: Firefox,
    context: String,
    profile: PathBuf,
}

type Shared = std::sync::Arc<Mutex<Option<Session>>>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port = std::env::args()
        .find_map(|a| a.strip_prefix("--port=").map(str::to_owned))
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(4444);
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bidi-webdriver: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    let session: Shared = Shared::default();
    while let Ok((stream, _)) = listener.accept().await {
        let session = session.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, session).await {
                eprintln!("bidi-webdriver: {e}");
            }
        });
    }
}

/// Answers the requests of one connection (keep-alive).
async fn serve(stream: TcpStream, session: Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, answer) = match handle(&method, &path, body, &session).await {
            Ok(value) => (200, json!({ "value": value })),
            Err((error, message)) => (
                500,
                json!({ "value": { "error": error, "message": message, "stacktrace": "" } }),
            ),
        };
        let text = answer.to_string();
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\r\n",
            if status == 200 {
                "OK"
            } else {
                "Internal Server Error"
            },
            text.len()
        );
        write.write_all(head.as_bytes()).await?;
        write.write_all(text.as_bytes()).await?;
        write.flush().await?;
    }
}

type Failure = (&'static str, String);

fn failed(e: impl std::fmt::Display) -> Failure {
    ("unknown error", e.to_string())
}

async fn handle(method: &str, path: &str, body: Value, session: &Shared) -> Result<Value, Failure> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["status"]) => Ok(json!({ "ready": true, "message": "bidi-webdriver" })),
        ("POST", ["session"]) => {
            let mut slot = session.lock().await;
            if slot.is_some() {
                return Err(("session not created", "one session at a time".to_owned()));
            }
            let profile = std::env::temp_dir().join(format!(
                "bidi-webdriver-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            let firefox = Firefox::launch(&profile).await.map_err(failed)?;
            let context = firefox.new_tab().await.map_err(failed)?;
            *slot = Some(Session {
                firefox,
                context,
                profile,
            });
            Ok(json!({ "sessionId": "1", "capabilities": { "browserName": "firefox" } }))
        }
        ("GET", ["session", _]) => Ok(json!({ "capabilities": { "browserName": "firefox" } })),
        ("POST", ["session", _, "url"]) => {
            let slot = session.lock().await;
            let s = slot.as_ref().ok_or_else(no_session)?;
            let url = body["url"].as_str().unwrap_or("about:blank");
            s.firefox.navigate(&s.context, url).await.map_err(failed)?;
            Ok(Value::Null)
        }
        ("POST", ["session", _, "execute", "sync"]) => {
            let slot = session.lock().await;
            let s = slot.as_ref().ok_or_else(no_session)?;
            let script = body["script"].as_str().unwrap_or_default();
            let arguments: Vec<Value> = body["args"]
                .as_array()
                .map(|a| a.iter().map(local_value).collect())
                .unwrap_or_default();
            let r = s
                .firefox
                .call(
                    "script.callFunction",
                    json!({
                        "functionDeclaration": format!(
                            "function() {{ const v = (function() {{ {script} }}).apply(this, arguments); const s = JSON.stringify(v); return s === undefined ? 'null' : s; }}"
                        ),
                        "arguments": arguments,
                        "target": { "context": s.context },
                        "awaitPromise": false,
                        "resultOwnership": "none",
                    }),
                )
                .await
                .map_err(failed)?;
            match r["result"]["value"].as_str() {
                Some(text) if r["type"] == "success" => serde_json::from_str(text).map_err(failed),
                _ => Err(("javascript error", r["exceptionDetails"].to_string())),
            }
        }
        ("DELETE", ["session", _, "window"] | ["session", _]) => {
            if let Some(s) = session.lock().await.take() {
                s.firefox.close().await;
                let _ = std::fs::remove_dir_all(&s.profile);
            }
            Ok(json!([]))
        }
        _ => Err((
            "unknown command",
            format!("{method} {path} is not supported by bidi-webdriver"),
        )),
    }
}

fn no_session() -> Failure {
    ("invalid session id", "no session".to_owned())
}

/// A JSON argument as a BiDi local value (what the runner sends: numbers).
fn local_value(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!({ "type": "number", "value": n }),
        Value::String(s) => json!({ "type": "string", "value": s }),
        Value::Bool(b) => json!({ "type": "boolean", "value": b }),
        _ => json!({ "type": "null" }),
    }
}
