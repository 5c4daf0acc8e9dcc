//! The servers a test talks to: the emulator (its own origin) and the demo
//! server (the page's origin, token broker, bundle).

use std::path::PathBuf;
use std::time::Duration;

use genesys_emulator::{Config, Emulator, Faults};
use outbox_demo::{DemoOptions, DemoServer, Upstream};

use crate::browser::{Browser, Error};

/// Emulator + demo server + a browser profile folder.
pub struct Stack {
    /// The emulator.
    pub emulator: Emulator,
    /// The demo server.
    pub demo: DemoServer,
    /// A fresh browser profile folder for this test.
    pub profile: PathBuf,
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where tests leave screenshots and logs.
pub fn artifacts() -> PathBuf {
    std::env::var_os("OUTBOX_ARTIFACTS")
        .map_or_else(|| root().join("target/e2e-artifacts"), PathBuf::from)
}

impl Stack {
    /// Starts both servers on ephemeral ports. `configure` adjusts the
    /// emulator first (idempotency, rate limits…).
    pub async fn start(name: &str, configure: impl FnOnce(&mut Config)) -> Stack {
        let dist = root().join("dist");
        assert!(
            dist.join("sw.js").is_file() && dist.join("outbox_page.js").is_file(),
            "the browser bundle is missing: run `cargo xtask build` (cargo xtask test does)"
        );
        let mut config = Config::ephemeral();
        configure(&mut config);
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let upstream = Upstream::emulator(&emulator.base_url(), "demo-client", "demo-secret");
        let demo = DemoServer::start(DemoOptions::new(
            "127.0.0.1:0".parse().expect("address"),
            upstream,
        ))
        .await
        .expect("demo server starts");
        let profile =
            std::env::temp_dir().join(format!("outbox-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile folder");
        Stack {
            emulator,
            demo,
            profile,
        }
    }

    /// Starts the browser `OUTBOX_BROWSER` names on this test's profile.
    pub async fn browser(&self) -> Result<Browser, Error> {
        Browser::launch(&self.profile).await
    }

    /// Starts the browser with a storage quota of about `bytes` for the
    /// page's origin (see [`Browser::launch_with_storage_limit`]).
    pub async fn browser_with_storage_limit(&self, bytes: u64) -> Result<Browser, Error> {
        Browser::launch_with_storage_limit(&self.profile, &self.demo.url(), bytes).await
    }

    /// The test page URL with an Outbox configuration (JSON).
    pub fn test_page(&self, config: &serde_json::Value) -> String {
        let mut config = config.clone();
        if config.get("origins").is_none() {
            config["origins"] = serde_json::json!([self.emulator.base_url()]);
        }
        if config.get("apiBase").is_none() {
            config["apiBase"] = serde_json::json!(self.emulator.base_url());
        }
        format!(
            "{}/test/?config={}",
            self.demo.url(),
            encode(&config.to_string())
        )
    }

    /// The guest test page with a guest configuration (the emulator's
    /// socket and deployment unless given).
    pub fn guest_page(&self, config: &serde_json::Value) -> String {
        let mut config = config.clone();
        if config.get("url").is_none() {
            config["url"] = serde_json::json!(self.emulator.ws_url());
        }
        if config.get("deploymentId").is_none() {
            config["deploymentId"] = serde_json::json!("demo-deployment");
        }
        format!(
            "{}/test/guest.html?config={}",
            self.demo.url(),
            encode(&config.to_string())
        )
    }

    /// Switches the emulator's outage (what a browser sees as offline).
    pub fn set_outage(&self, on: bool) {
        self.emulator
            .control()
            .update_faults(|f: &mut Faults| f.outage = on)
            .expect("faults accepted");
    }

    /// Stops the servers and removes the profile.
    pub async fn stop(self) {
        self.demo.shutdown().await;
        self.emulator.shutdown().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Milliseconds since the epoch of the emulator's ISO-8601 times
/// (`2024-05-01T12:00:00.123Z`).
pub fn iso_ms(s: &str) -> Option<u64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<u64>());
    let (h, mi, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some((days as u64 * 86_400 + h * 3600 + mi * 60 + sec) * 1000 + millis.parse::<u64>().ok()?)
}

/// Waits up to `timeout` for a condition on the test's side, such as the
/// emulator's state, looking every 20 ms: a condition, never a fixed time.
pub async fn wait_until(
    timeout: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("not within {timeout:?}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}
