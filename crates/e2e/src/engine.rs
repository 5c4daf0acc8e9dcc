//! Which browser engine a run drives, what each one can do, and the skips
//! that follow from it.
//!
//! One test binary serves every engine: `OUTBOX_BROWSER` (`chromium`,
//! the default, `firefox` or `webkit`) picks it. A scenario needing a
//! [`Capability`] the engine lacks calls [`skip_without`] first; the skip
//! is printed (past the test harness's output capture) and appended to
//! `skipped-<engine>.txt` in the artifacts folder, so that a summary can
//! name every scenario that did not run and why. Nothing is left out
//! silently.

use std::io::Write as _;

/// A browser engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Headless Chromium over the Chrome DevTools Protocol.
    Chromium,
    /// Headless Firefox over WebDriver BiDi (no driver in between).
    Firefox,
    /// WebKitGTK's MiniBrowser under Xvfb, over WebKitWebDriver (classic
    /// WebDriver).
    Webkit,
}

impl Engine {
    /// Every engine, in the order runs take them.
    pub const ALL: [Engine; 3] = [Engine::Chromium, Engine::Firefox, Engine::Webkit];

    /// The engine named by `OUTBOX_BROWSER` (Chromium when unset).
    ///
    /// # Panics
    /// On a name that is not an engine: a typo must not quietly test
    /// Chromium instead.
    pub fn from_env() -> Engine {
        match std::env::var("OUTBOX_BROWSER") {
            Err(_) => Engine::Chromium,
            Ok(name) => Engine::parse(&name).unwrap_or_else(|| {
                panic!("OUTBOX_BROWSER={name}: expected chromium, firefox or webkit")
            }),
        }
    }

    /// The engine called `name` (`chromium`/`chrome`, `firefox`, `webkit`).
    pub fn parse(name: &str) -> Option<Engine> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "chromium" | "chrome" => Some(Engine::Chromium),
            "firefox" | "gecko" => Some(Engine::Firefox),
            "webkit" | "webkitgtk" => Some(Engine::Webkit),
            _ => None,
        }
    }

    /// The engine's name as `OUTBOX_BROWSER` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox",
            Engine::Webkit => "webkit",
        }
    }

    /// Why this engine cannot do `capability`, or `None` when it can.
    pub fn lacks(self, capability: Capability) -> Option<&'static str> {
        match (self, capability) {
            (Engine::Webkit, Capability::StopWorker) => Some(
                "WebKitWebDriver cannot stop a service worker (no protocol command, no privileged script)",
            ),
            (Engine::Webkit, Capability::Restart) => Some(
                "WebKitWebDriver sessions are ephemeral: a restarted MiniBrowser never sees the last one's data",
            ),
            (Engine::Webkit, Capability::StorageLimit) => Some(
                "WebKitGTK's storage quota cannot be lowered from WebDriver (and is hundreds of megabytes)",
            ),
            (Engine::Webkit, Capability::Kill) => Some(
                "MiniBrowser is WebKitWebDriver's child, not ours: it cannot be killed without a shutdown, and sessions are ephemeral anyway",
            ),
            (Engine::Chromium | Engine::Firefox, _) => None,
        }
    }
}

/// What a scenario may need beyond navigating and running script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Stop the origin's service workers, as the browser does to an idle
    /// or busy one ([`crate::Browser::stop_service_workers`]).
    StopWorker,
    /// Close the browser and start it again on the same profile.
    Restart,
    /// Start with a small storage quota for the site, so that a test can
    /// fill it ([`crate::Stack::browser_with_storage_limit`]).
    StorageLimit,
    /// Kill the browser process without a shutdown ([`crate::Browser::kill`]).
    Kill,
}

/// When the engine of this run lacks `capability`: reports the current
/// test as skipped (by name, with the reason) and returns `true`; the test
/// then returns at once. Otherwise returns `false`.
pub fn skip_without(capability: Capability) -> bool {
    let engine = Engine::from_env();
    let Some(reason) = engine.lacks(capability) else {
        return false;
    };
    report_skip(engine, reason);
    true
}

/// For one step of a scenario (`what`, e.g. "the worker restart") that
/// needs `capability`: when the engine of this run lacks it, reports the
/// current test as run without that step (by name, with the reason) and
/// returns `true`; the test then leaves the step out and goes on.
/// Otherwise returns `false`.
pub fn skip_step(capability: Capability, what: &str) -> bool {
    let engine = Engine::from_env();
    let Some(why) = engine.lacks(capability) else {
        return false;
    };
    report_skip(engine, &format!("ran without {what}: {why}"));
    true
}

/// Reports the current test as skipped in `engine` because of `reason`.
pub fn report_skip(engine: Engine, reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("an unnamed test")
        .to_owned();
    let binary = std::env::args()
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .map(|n| {
            n.rsplit_once('-')
                .map_or(n.clone(), |(stem, _)| stem.to_owned())
        })
        .unwrap_or_default();
    let line = format!("{binary}::{test} in {}: {reason}", engine.name());
    // Straight to the file descriptor: the harness captures `eprintln!`
    // of passing tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "\ne2e: SKIPPED {line}");
    let dir = crate::stack::artifacts();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("skipped-{}.txt", engine.name())))
    {
        let _ = writeln!(file, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_typos_are_refused() {
        for engine in Engine::ALL {
            assert_eq!(Engine::parse(engine.name()), Some(engine));
        }
        assert_eq!(Engine::parse(" Firefox "), Some(Engine::Firefox));
        assert_eq!(Engine::parse("safari"), None);
    }

    #[test]
    fn only_webkit_lacks_capabilities_and_says_why() {
        for capability in [
            Capability::StopWorker,
            Capability::Restart,
            Capability::StorageLimit,
        ] {
            assert_eq!(Engine::Chromium.lacks(capability), None);
            assert_eq!(Engine::Firefox.lacks(capability), None);
            assert!(
                Engine::Webkit
                    .lacks(capability)
                    .is_some_and(|r| !r.is_empty())
            );
        }
    }
}
