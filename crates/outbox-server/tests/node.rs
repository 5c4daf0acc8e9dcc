//! The Node.js example (`examples/node`), run by Node's own test runner
//! against `outbox serve` and the emulator: plain `fetch`, no addon.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::*;
use genesys_emulator::Config;

#[test]
fn the_node_example_sends_through_the_proxy() {
    let node = Command::new("node").arg("--version").output();
    let Ok(version) = node else {
        panic!("the Node.js example needs `node` (20 or later): apt-get install nodejs");
    };
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let emu = emulator(Config::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    // Backoff shortened (base 100 ms, cap 1 s) so the recovery is seen in
    // a test's time; the shipped backoff is tested in outbox-core.
    let proxy = Proxy::start(&ProxyConfig::new(
        dir.path(),
        &emu.base_url(),
        "[retry]\nbaseMs = 100\ncapMs = 1000\n",
    ));
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node");
    let out = Command::new("node")
        .arg("--test")
        .arg("test/")
        .current_dir(&example)
        .env("OUTBOX_URL", &proxy.base)
        .env("EMULATOR_URL", emu.base_url())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node {version} --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("# pass 3"), "{stdout}");
}
