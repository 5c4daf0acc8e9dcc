//! `outbox-demo`: the demo server with the embedded Genesys Cloud emulator
//! (or a real region). `cargo xtask demo` builds the bundle and runs this.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use outbox_demo::{DemoOptions, DemoServer, Upstream};

/// Serves the Outbox demo page and bundle, brokers tokens, and runs a local
/// Genesys Cloud emulator (unless --region is given).
#[derive(Parser, Debug)]
#[command(name = "outbox-demo", version)]
struct Args {
    /// Port of the demo page and token broker.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Port of the embedded Genesys Cloud emulator.
    #[arg(long, default_value_t = 8081)]
    emulator_port: u16,
    /// Address to bind both servers to.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// The browser bundle folder (`cargo xtask build` output).
    #[arg(long)]
    dist: Option<PathBuf>,
    /// The `web/` folder holding `demo/` and `test/`.
    #[arg(long)]
    web: Option<PathBuf>,
    /// Use the real Genesys Cloud region DOMAIN (e.g. mypurecloud.ie) instead of
    /// the emulator; credentials come from OUTBOX_CLIENT_ID / OUTBOX_CLIENT_SECRET.
    #[arg(long, value_name = "DOMAIN")]
    region: Option<String>,
    /// OAuth client id (real region mode).
    #[arg(long, env = "OUTBOX_CLIENT_ID", hide_env_values = true)]
    client_id: Option<String>,
    /// OAuth client secret (real region mode; never sent to a browser).
    #[arg(long, env = "OUTBOX_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Replace the region's login/api hosts with this base URL (for testing the
    /// region mode against an emulator).
    #[arg(long, hide = true)]
    upstream_override: Option<String>,
    /// Web Messaging deployment id for the guest chat.
    #[arg(long, default_value = "demo-deployment")]
    deployment: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("outbox-demo: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut emulator = None;
    let upstream = match &args.region {
        Some(domain) => {
            if !genesys_regions().contains(&domain.as_str()) {
                return Err(format!(
                    "`{domain}` is not a Genesys Cloud region; use one of: {}",
                    genesys_regions().join(", ")
                ));
            }
            let (Some(id), Some(secret)) =
                (nonempty(&args.client_id), nonempty(&args.client_secret))
            else {
                return Err("real region mode needs OAuth client credentials: set OUTBOX_CLIENT_ID and OUTBOX_CLIENT_SECRET (a client-credentials client of your org)".into());
            };
            let mut up = Upstream::region(domain, id, secret);
            if let Some(base) = &args.upstream_override {
                up.api_base = base.trim_end_matches('/').to_owned();
                up.login_base = up.api_base.clone();
            }
            up
        }
        None => {
            let config = genesys_emulator::Config {
                bind: SocketAddr::new(args.bind, args.emulator_port),
                ..genesys_emulator::Config::default()
            };
            let emu = genesys_emulator::Emulator::start(config)
                .await
                .map_err(|e| {
                    format!(
                        "cannot start the emulator on {}:{}: {e}",
                        args.bind, args.emulator_port
                    )
                })?;
            let mut up = Upstream::emulator(&emu.base_url(), "demo-client", "demo-secret");
            if args.bind.is_unspecified() {
                // The broker reaches the emulator on loopback; pages get the
                // host they used to reach the demo (see `demo-config.json`).
                up.login_base = format!("http://{}", loopback(emu.local_addr()));
            }
            emulator = Some(emu);
            up
        }
    };
    let mut options = DemoOptions::new(SocketAddr::new(args.bind, args.port), upstream.clone());
    if let Some(dist) = args.dist {
        options.dist = dist;
    }
    if let Some(web) = args.web {
        options.web = web;
    }
    options.deployment_id = args.deployment;
    let server = DemoServer::start(options)
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.bind, args.port))?;
    // Listening for the stop before anything is printed: a Ctrl-C as soon
    // as the URL shows is a clean stop.
    let stop = genesys_emulator::stop_signal();
    let open = format!("http://{}", loopback(server.addr()));
    println!("Outbox demo:       {open}/");
    match &emulator {
        Some(emu) => println!(
            "Genesys emulator:  http://{}/  (faults and inspection under /__emulator/)",
            loopback(emu.local_addr())
        ),
        None => println!(
            "Genesys Cloud:     {} (tokens from {})",
            upstream.api_base, upstream.login_base
        ),
    }
    if args.bind.is_unspecified() {
        println!(
            "Listening on every interface: other machines use this one's address, but browsers \
             allow service workers only on localhost or HTTPS (elsewhere the page door works alone)."
        );
    }
    println!("Stop with Ctrl-C.");
    stop.await;
    eprintln!("outbox-demo: stopping");
    let stopping = async {
        server.shutdown().await;
        if let Some(emu) = emulator {
            emu.shutdown().await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .is_err()
    {
        eprintln!("outbox-demo: open connections did not close within 5 s; exiting anyway");
    }
    Ok(())
}

/// The address to open in a browser: loopback when bound to every interface.
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = match addr {
            SocketAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            SocketAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// A credential given but empty counts as missing.
fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

fn genesys_regions() -> &'static [&'static str] {
    outbox_core::genesys::REGIONS
}
