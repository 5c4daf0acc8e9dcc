//! The token broker and the page configuration, over real HTTP: tokens go
//! to same-origin pages only, the client secret never leaves the server,
//! and real-region mode works against an emulator standing in for
//! `login.<domain>` and `api.<domain>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use genesys_emulator::{BlockingEmulator, ClientCredentials, Config, Emulator, Outcome};
use outbox_demo::{DemoOptions, DemoServer, Upstream};

const SECRET: &str = "s3cret-that-must-stay-home";

/// A demo server on its own runtime (the test thread makes blocking calls).
struct Demo {
    runtime: tokio::runtime::Runtime,
    server: Option<DemoServer>,
}

impl Demo {
    fn start(upstream: Upstream) -> Demo {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime
            .block_on(DemoServer::start(DemoOptions::new(
                "127.0.0.1:0".parse().unwrap(),
                upstream,
            )))
            .unwrap();
        Demo {
            runtime,
            server: Some(server),
        }
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url()
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.get(format!("{}{path}", self.url()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.call().unwrap();
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

fn emulator_with_client() -> BlockingEmulator {
    Emulator::start_blocking(Config {
        clients: vec![ClientCredentials::new("org-client", SECRET)],
        ..Config::ephemeral()
    })
    .unwrap()
}

/// `Upstream::region` with both hosts replaced by `base` (what the binary's
/// hidden `--upstream-override` does).
fn region_via(base: &str, secret: &str) -> Upstream {
    let mut upstream = Upstream::region("mypurecloud.ie", "org-client", secret);
    upstream.api_base = base.to_owned();
    upstream.login_base = base.to_owned();
    upstream
}

const SAME_ORIGIN: &[(&str, &str)] = &[("Sec-Fetch-Site", "same-origin")];

#[test]
fn region_mode_brokers_tokens_from_the_region_login_and_never_hands_out_the_secret() {
    let emulator = emulator_with_client();
    let demo = Demo::start(region_via(&emulator.base_url(), SECRET));

    let (status, body) = demo.get("/token", SAME_ORIGIN);
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(SECRET), "{body}");
    let grant: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = grant["access_token"].as_str().unwrap();
    assert!(!token.is_empty());
    assert_eq!(grant["token_type"], "bearer");
    assert!(grant["expires_in"].as_u64().unwrap() > 0);
    // The broker asked the stand-in's /oauth/token with the org's client.
    let issued: Vec<_> = emulator
        .control()
        .requests()
        .entries
        .into_iter()
        .filter(|e| e.outcome == Outcome::TokenIssued)
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].client_id.as_deref(), Some("org-client"));
    // Every call mints a fresh token (a page refused one gets another).
    let (_, again) = demo.get("/token", SAME_ORIGIN);
    assert!(!again.contains(token), "a new token each time");
    // And the token is good for the API.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let sent = agent
        .post(format!(
            "{}/api/v2/conversations/messages/c-1/communications/m-1/messages",
            emulator.base_url()
        ))
        .header("Authorization", &format!("Bearer {token}"))
        .content_type("application/json")
        .send(r#"{"textBody":"hi"}"#)
        .unwrap();
    assert_eq!(sent.status().as_u16(), 200);

    let (status, body) = demo.get("/demo-config.json", &[]);
    assert_eq!(status, 200);
    assert!(!body.contains(SECRET), "{body}");
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["region"], "mypurecloud.ie");
    assert_eq!(
        config["apiBase"],
        emulator.base_url(),
        "the page talks to the stand-in"
    );
    assert!(config["emulator"].is_null(), "no emulator controls");
    assert_eq!(
        config["guestSocket"],
        "wss://webmessaging.mypurecloud.ie/v1"
    );
}

#[test]
fn real_hosts_are_the_regions_by_default() {
    let up = Upstream::region("mypurecloud.ie", "id", SECRET);
    assert_eq!(up.api_base, "https://api.mypurecloud.ie");
    assert_eq!(up.login_base, "https://login.mypurecloud.ie");
    assert_eq!(up.emulator, None);
}

#[test]
fn tokens_go_to_same_origin_pages_only() {
    let emulator = emulator_with_client();
    let demo = Demo::start(Upstream::emulator(
        &emulator.base_url(),
        "org-client",
        SECRET,
    ));
    let own_origin = demo.url();
    let refused: &[(&str, &[(&str, &str)])] = &[
        ("a cross-site page", &[("Sec-Fetch-Site", "cross-site")]),
        (
            "another port of the same host",
            &[("Sec-Fetch-Site", "same-site")],
        ),
        ("an address typed in the bar", &[("Sec-Fetch-Site", "none")]),
        ("a foreign Origin", &[("Origin", "http://evil.example")]),
        (
            "a foreign Origin on the same host",
            &[("Origin", "http://127.0.0.1:1")],
        ),
        ("no header at all", &[]),
        (
            "a same-origin claim that the browser contradicts",
            &[("Sec-Fetch-Site", "cross-site"), ("Origin", &own_origin)],
        ),
    ];
    for (who, headers) in refused {
        let (status, body) = demo.get("/token", headers);
        assert_eq!(status, 403, "{who}: {body}");
        assert!(!body.contains("access_token"), "{who}: {body}");
        assert!(!body.contains(SECRET));
    }
    assert!(
        emulator.control().requests().entries.is_empty(),
        "a refused request mints no token"
    );
    for (who, headers) in [
        ("a same-origin fetch", SAME_ORIGIN),
        (
            "an older browser sending only Origin",
            &[("Origin", own_origin.as_str())][..],
        ),
    ] {
        let (status, body) = demo.get("/token", headers);
        assert_eq!(status, 200, "{who}: {body}");
        assert!(body.contains("access_token") && !body.contains(SECRET));
    }
}

#[test]
fn an_upstream_failure_is_a_502_that_names_no_secret() {
    // A login server that refuses the client (wrong secret).
    let emulator = emulator_with_client();
    let demo = Demo::start(region_via(&emulator.base_url(), "wrong-secret-value"));
    let (status, body) = demo.get("/token", SAME_ORIGIN);
    assert_eq!(status, 502, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "token-upstream");
    assert!(
        error["message"].as_str().unwrap().contains("HTTP 400"),
        "{body}"
    );
    assert!(!body.contains("wrong-secret-value") && !body.contains(SECRET));
    drop(demo);

    // A login server that is not there.
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let demo = Demo::start(region_via(&format!("http://{closed}"), SECRET));
    let (status, body) = demo.get("/token", SAME_ORIGIN);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("cannot reach"), "{body}");
    assert!(!body.contains(SECRET));
}

#[test]
fn only_get_is_served() {
    let emulator = emulator_with_client();
    let demo = Demo::start(Upstream::emulator(
        &emulator.base_url(),
        "org-client",
        SECRET,
    ));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(format!("{}/token", demo.url()))
        .header("Sec-Fetch-Site", "same-origin")
        .send("")
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
}
