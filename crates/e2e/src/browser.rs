//! One browser API over three engines: what the scenarios call.
//!
//! [`Browser`] and [`Page`] hide which engine runs ([`Engine`], chosen by
//! `OUTBOX_BROWSER`): Chromium over the DevTools protocol ([`crate::cdp`]),
//! Firefox over WebDriver BiDi ([`crate::bidi`]), WebKitGTK over classic
//! WebDriver ([`crate::webdriver`]). A scenario is written once.
//!
//! [`Page::eval`] has the same meaning everywhere: the text is a script
//! whose completion value (awaited when it is a promise) comes back as
//! JSON. Chromium evaluates it with `Runtime.evaluate`; the other engines
//! run it through an indirect `eval` and `JSON.stringify` (the test pages
//! have no content security policy forbidding it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::bidi::Firefox;
use crate::cdp::{self, CdpError};
use crate::engine::Engine;
use crate::webdriver::WebKit;

/// Anything that went wrong driving a browser.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the Chromium client.
    #[error(transparent)]
    Cdp(#[from] CdpError),
    /// A program (browser, driver, display) could not be started.
    #[error("cannot start {what}: {source}")]
    Launch {
        /// What.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The browser or driver started but never became reachable.
    #[error("no endpoint: {0}")]
    NoEndpoint(String),
    /// The connection failed.
    #[error("connection: {0}")]
    Socket(String),
    /// A command returned an error.
    #[error("{method}: {message}")]
    Command {
        /// The command.
        method: String,
        /// The browser's message.
        message: String,
    },
    /// Script threw, or returned what the caller did not expect.
    #[error("script threw: {0}")]
    Script(String),
    /// Waited too long.
    #[error("timed out after {0:?} waiting for: {1}")]
    Timeout(Duration, String),
    /// The engine cannot do this (see [`Engine::lacks`]).
    #[error("{engine:?} cannot {what}")]
    Unsupported {
        /// The engine.
        engine: Engine,
        /// The operation.
        what: &'static str,
    },
}

/// Wraps a script so that its awaited completion value comes back as JSON
/// text (`"null"` for `undefined`).
pub(crate) fn wrap_for_eval(source: &str) -> String {
    format!(
        "(async () => {{ const v = await (0, eval)({}); const s = JSON.stringify(v); return s === undefined ? \"null\" : s; }})()",
        Value::String(source.to_owned())
    )
}

enum Inner {
    Chromium(cdp::Browser),
    Firefox(Firefox),
    Webkit(Box<WebKit>),
}

/// A running browser of the engine `OUTBOX_BROWSER` names.
pub struct Browser {
    inner: Inner,
    profile: PathBuf,
}

impl Browser {
    /// Starts the engine `OUTBOX_BROWSER` names on the profile folder
    /// `profile` (reuse the folder to simulate a browser restart, where
    /// the engine can: [`crate::Capability::Restart`]).
    pub async fn launch(profile: &Path) -> Result<Browser, Error> {
        Browser::launch_engine(Engine::from_env(), profile).await
    }

    /// Starts `engine` on `profile`.
    pub async fn launch_engine(engine: Engine, profile: &Path) -> Result<Browser, Error> {
        let inner = match engine {
            Engine::Chromium => Inner::Chromium(cdp::Browser::launch(profile).await?),
            Engine::Firefox => Inner::Firefox(Firefox::launch(profile).await?),
            Engine::Webkit => Inner::Webkit(Box::new(WebKit::launch().await?)),
        };
        Ok(Browser {
            inner,
            profile: profile.to_path_buf(),
        })
    }

    /// Starts the engine `OUTBOX_BROWSER` names on `profile` with a storage
    /// quota of about `bytes` for `origin` (Chromium: DevTools
    /// `Storage.overrideQuotaForOrigin`; Firefox: the temporary storage
    /// limit, which bounds every site; WebKit: unsupported, see
    /// [`crate::Capability::StorageLimit`]).
    pub async fn launch_with_storage_limit(
        profile: &Path,
        origin: &str,
        bytes: u64,
    ) -> Result<Browser, Error> {
        let engine = Engine::from_env();
        match engine {
            Engine::Chromium => {
                let browser = Browser::launch_engine(engine, profile).await?;
                // The Storage domain answers on a page's session, not the
                // browser's: borrow the first tab's.
                let targets = browser
                    .call(None, "Target.getTargets", serde_json::json!({}))
                    .await?;
                let page = targets["targetInfos"]
                    .as_array()
                    .and_then(|t| t.iter().find(|t| t["type"] == "page"))
                    .and_then(|t| t["targetId"].as_str())
                    .ok_or_else(|| Error::Command {
                        method: "Target.getTargets".into(),
                        message: format!("no page in {targets}"),
                    })?
                    .to_owned();
                let attached = browser
                    .call(
                        None,
                        "Target.attachToTarget",
                        serde_json::json!({ "targetId": page, "flatten": true }),
                    )
                    .await?;
                let session = attached["sessionId"].as_str().unwrap_or_default();
                browser
                    .call(
                        Some(session),
                        "Storage.overrideQuotaForOrigin",
                        serde_json::json!({ "origin": origin, "quotaSize": bytes }),
                    )
                    .await?;
                Ok(browser)
            }
            Engine::Firefox => {
                let kib = i64::try_from(bytes / 1024).unwrap_or(i64::MAX);
                crate::bidi::add_prefs(
                    profile,
                    &[("dom.quotaManager.temporaryStorage.fixedLimit", kib)],
                )
                .map_err(|source| Error::Launch {
                    what: profile.display().to_string(),
                    source,
                })?;
                Browser::launch_engine(engine, profile).await
            }
            Engine::Webkit => Err(Error::Unsupported {
                engine,
                what: "limit a site's storage",
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Chromium(_) => Engine::Chromium,
            Inner::Firefox(_) => Engine::Firefox,
            Inner::Webkit(_) => Engine::Webkit,
        }
    }

    /// The profile folder.
    pub fn profile(&self) -> &Path {
        &self.profile
    }

    /// The Chromium client, for DevTools commands no helper covers.
    pub fn cdp(&self) -> Option<&cdp::Browser> {
        match &self.inner {
            Inner::Chromium(c) => Some(c),
            _ => None,
        }
    }

    /// The WebDriver BiDi client (Firefox only).
    pub fn bidi(&self) -> Option<&Firefox> {
        match &self.inner {
            Inner::Firefox(f) => Some(f),
            _ => None,
        }
    }

    /// Sends a DevTools command (Chromium only).
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Error> {
        match &self.inner {
            Inner::Chromium(c) => Ok(c.call(session, method, params).await?),
            _ => Err(self.unsupported("send DevTools commands")),
        }
    }

    fn unsupported(&self, what: &'static str) -> Error {
        Error::Unsupported {
            engine: self.engine(),
            what,
        }
    }

    /// Opens a new tab at `url` and waits until it has loaded.
    pub async fn new_page(&self, url: &str) -> Result<Page<'_>, Error> {
        let inner = match &self.inner {
            Inner::Chromium(c) => PageInner::Chromium(c.new_page(url).await?),
            Inner::Firefox(f) => PageInner::Firefox(f.new_tab().await?),
            Inner::Webkit(w) => PageInner::Webkit(w.new_tab().await?),
        };
        let page = Page {
            browser: self,
            inner,
        };
        if !matches!(page.inner, PageInner::Chromium(_)) {
            page.goto(url).await?;
        }
        Ok(page)
    }

    /// Stops every service worker, as the browser does to an idle or
    /// misbehaving worker (Chromium: `ServiceWorker.stopAllWorkers`;
    /// Firefox: `terminateWorker()` from privileged script; WebKit:
    /// unsupported, see [`crate::Capability::StopWorker`]).
    pub async fn stop_service_workers(&self, page: &Page<'_>) -> Result<(), Error> {
        match (&self.inner, &page.inner) {
            (Inner::Chromium(c), PageInner::Chromium(p)) => Ok(c.stop_service_workers(p).await?),
            (Inner::Firefox(f), _) => f.stop_service_workers().await,
            _ => Err(self.unsupported("stop a service worker")),
        }
    }

    /// Every protocol event received so far (the first 10,000; none for
    /// WebKit).
    pub async fn events(&self) -> Vec<Value> {
        match &self.inner {
            Inner::Chromium(c) => c.events().await,
            Inner::Firefox(f) => f.events().await,
            Inner::Webkit(_) => Vec::new(),
        }
    }

    /// Console messages and exceptions seen so far (for failure reports;
    /// classic WebDriver has no console, so none for WebKit).
    pub async fn console(&self) -> Vec<String> {
        match &self.inner {
            Inner::Chromium(c) => c.console().await,
            Inner::Firefox(f) => f.console().await,
            Inner::Webkit(_) => vec!["(WebKitWebDriver reports no console messages)".into()],
        }
    }

    /// Kills the browser process without a shutdown, where the engine can
    /// ([`crate::Capability::Kill`]); elsewhere closes it.
    pub async fn kill(self) {
        match self.inner {
            Inner::Chromium(c) => c.kill().await,
            Inner::Firefox(f) => f.kill().await,
            Inner::Webkit(w) => w.close().await,
        }
    }

    /// Closes the browser and waits for it to end (the profile stays on
    /// disk).
    pub async fn close(self) {
        match self.inner {
            Inner::Chromium(c) => c.close().await,
            Inner::Firefox(f) => f.close().await,
            Inner::Webkit(w) => w.close().await,
        }
    }
}

enum PageInner<'b> {
    Chromium(cdp::Page<'b>),
    /// A BiDi browsing context.
    Firefox(String),
    /// A WebDriver window handle.
    Webkit(String),
}

/// A tab.
pub struct Page<'b> {
    browser: &'b Browser,
    inner: PageInner<'b>,
}

impl Page<'_> {
    /// The Chromium tab, for DevTools commands no helper covers.
    pub fn cdp(&self) -> Option<&cdp::Page<'_>> {
        match &self.inner {
            PageInner::Chromium(p) => Some(p),
            _ => None,
        }
    }

    /// Sends a DevTools command to this tab (Chromium only).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        match &self.inner {
            PageInner::Chromium(p) => Ok(p.call(method, params).await?),
            _ => Err(self.browser.unsupported("send DevTools commands")),
        }
    }

    /// Navigates and waits until the document has loaded.
    pub async fn goto(&self, url: &str) -> Result<(), Error> {
        match (&self.browser.inner, &self.inner) {
            (_, PageInner::Chromium(p)) => return Ok(p.goto(url).await?),
            (Inner::Firefox(f), PageInner::Firefox(c)) => f.navigate(c, url).await?,
            (Inner::Webkit(w), PageInner::Webkit(h)) => w.navigate(h, url).await?,
            _ => unreachable!("a page belongs to its browser's engine"),
        }
        self.wait_for(
            "document.readyState === 'complete' && location.href !== 'about:blank'",
            Duration::from_secs(30),
        )
        .await
    }

    /// Reloads the page (keeping its service worker) and waits for it.
    pub async fn reload(&self) -> Result<(), Error> {
        match (&self.browser.inner, &self.inner) {
            (_, PageInner::Chromium(p)) => return Ok(p.reload().await?),
            (Inner::Firefox(f), PageInner::Firefox(c)) => f.reload(c).await?,
            (Inner::Webkit(_), PageInner::Webkit(_)) => {
                // WebDriver's Refresh may drop the service worker (Firefox
                // does); a script reload keeps it.
                self.eval::<Value>(
                    "window.__reloading = true; setTimeout(() => location.reload(), 0); null",
                )
                .await?;
            }
            _ => unreachable!("a page belongs to its browser's engine"),
        }
        self.wait_for(
            "document.readyState === 'complete' && !window.__reloading",
            Duration::from_secs(30),
        )
        .await
    }

    /// Evaluates a script (awaiting a promise) and returns its value.
    pub async fn eval<T: serde::de::DeserializeOwned>(&self, expression: &str) -> Result<T, Error> {
        let json = match (&self.browser.inner, &self.inner) {
            (_, PageInner::Chromium(p)) => return Ok(p.eval(expression).await?),
            (Inner::Firefox(f), PageInner::Firefox(c)) => f.eval_json(c, expression).await?,
            (Inner::Webkit(w), PageInner::Webkit(h)) => w.eval_json(h, expression).await?,
            _ => unreachable!("a page belongs to its browser's engine"),
        };
        serde_json::from_str(&json)
            .map_err(|e| Error::Script(format!("unexpected result {json}: {e}")))
    }

    /// Polls `condition` (a JS expression, may be async) until it is truthy.
    pub async fn wait_for(&self, condition: &str, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let expr = format!("(async () => !!(await ({condition})))().catch(() => false)");
        loop {
            if let Ok(true) = self.eval::<bool>(&expr).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(timeout, condition.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the viewport.
    pub async fn screenshot(&self, path: &Path) -> Result<(), Error> {
        let data = match (&self.browser.inner, &self.inner) {
            (_, PageInner::Chromium(p)) => return Ok(p.screenshot(path).await?),
            (Inner::Firefox(f), PageInner::Firefox(c)) => f.screenshot(c).await?,
            (Inner::Webkit(w), PageInner::Webkit(h)) => w.screenshot(h).await?,
            _ => unreachable!("a page belongs to its browser's engine"),
        };
        let bytes =
            cdp::base64_decode(&data).ok_or_else(|| Error::Script("bad screenshot data".into()))?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, bytes).map_err(|e| Error::Script(e.to_string()))
    }

    /// Closes the tab.
    pub async fn close(self) -> Result<(), Error> {
        match (&self.browser.inner, self.inner) {
            (_, PageInner::Chromium(p)) => Ok(p.close().await?),
            (Inner::Firefox(f), PageInner::Firefox(c)) => f.close_tab(&c).await,
            (Inner::Webkit(w), PageInner::Webkit(h)) => w.close_tab(&h).await,
            _ => unreachable!("a page belongs to its browser's engine"),
        }
    }
}
