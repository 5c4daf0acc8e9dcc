//! `genesys-emulator`: a local Genesys Cloud on one port (REST, OAuth, the
//! Guest WebSocket on `/v1`, and the control API under `/__emulator/`).
//!
//! Prints `genesys-emulator listening on http://IP:PORT` on its first line of
//! standard output once ready, and stops cleanly on Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use genesys_emulator::{ClientCredentials, Config, CorsPolicy, Emulator, Faults};

/// A local Genesys Cloud for development, demos and tests.
///
/// Serves POST /oauth/token, the REST message routes under /api/v2/…, the
/// Guest WebSocket on /v1?deploymentId=…, guest history, and the control API
/// under /__emulator/ (faults, inspection, tokens, clock), all on one port.
#[derive(Debug, Parser)]
#[command(name = "genesys-emulator", version, about, long_about)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Address to listen on ("localhost" means 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// OAuth client as ID:SECRET; repeat for more. Default demo-client:demo-secret.
    #[arg(long = "client", value_name = "ID:SECRET")]
    clients: Vec<String>,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_399)]
    token_ttl: u64,
    /// REST requests allowed per token per rate window (Genesys: 300 per minute).
    #[arg(long, value_name = "N", default_value_t = 300)]
    rate_limit: u32,
    /// Length of the sliding rate window, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    rate_window: u64,
    /// Honour idempotency keys (Idempotency-Key header, externalId, channel.messageId).
    /// Off by default: the real service does not de-duplicate.
    #[arg(long)]
    idempotency: bool,
    /// Allowed browser origin (CORS), e.g. http://127.0.0.1:8080; repeat for more.
    /// "*" or "any" allows every origin, which is also the default when none is given.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Seed of the fault-injection random generator.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Initial faults as JSON, e.g. '{"latencyMs":200,"errorRate":0.1}' (see GET /__emulator/faults).
    /// Rates are rolled by the seeded generator; counts hit exactly the next N message requests:
    /// '{"failNext":3,"failStatus":503}', '{"loseAcks":2}', '{"forceUnauthorized":1}',
    /// '{"holdAfter":2}' (later message requests wait unrecorded until it is cleared, then 503).
    #[arg(long, value_name = "JSON")]
    faults: Option<String>,
    /// Status of successful message sends: 200 or 202 (which one Genesys uses is unconfirmed).
    #[arg(long, value_name = "STATUS", default_value_t = 200)]
    success_status: u16,
    /// Largest request body in bytes; larger answers 413.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    max_body_bytes: usize,
    /// Agent send textBody limit, in characters (Genesys: 2000 per the SDK, 4000 per the Help Center).
    #[arg(long, value_name = "CHARS", default_value_t = 4000)]
    agent_text_max: usize,
    /// Agentless textBody limit for non-SMS messengers, in characters.
    #[arg(long, value_name = "CHARS", default_value_t = 2000)]
    agentless_text_max: usize,
    /// Agentless textBody limit for SMS, in characters.
    #[arg(long, value_name = "CHARS", default_value_t = 765)]
    sms_text_max: usize,
    /// Open Messaging inbound text limit, in characters.
    #[arg(long, value_name = "CHARS", default_value_t = 4000)]
    open_text_max: usize,
    /// Seed-tutorial route text limit, in characters.
    #[arg(long, value_name = "CHARS", default_value_t = 4000)]
    seed_text_max: usize,
    /// Guest WebSocket message text limit, in characters (longer → error 4011).
    #[arg(long, value_name = "CHARS", default_value_t = 4096)]
    guest_text_max: usize,
    /// Guest custom attributes limit, in JSON bytes (larger → error 4013).
    #[arg(long, value_name = "BYTES", default_value_t = 2048)]
    guest_attributes_max: usize,
    /// Retry-After of the daily-limit fault, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 4 * 3600)]
    daily_limit_retry_after: u64,
    /// Known Web Messaging deployment id; repeat for more. Default demo-deployment.
    #[arg(long = "deployment", value_name = "ID")]
    deployments: Vec<String>,
    /// Guest onMessage requests allowed per second per session.
    #[arg(long, value_name = "N", default_value_t = 2)]
    ws_message_rate: u32,
    /// retryAfter (seconds) announced in the guest TooManyRequestsErrorMessage.
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    ws_retry_after: u32,
    /// Guest requests of any kind allowed per minute per connection.
    #[arg(long, value_name = "N", default_value_t = 60)]
    ws_connection_rate: u32,
    /// Simultaneous connections per guest session; one more closes the oldest.
    #[arg(long, value_name = "N", default_value_t = 3)]
    ws_max_connections: usize,
    /// Guest session lifetime, in seconds (then requests answer 4006).
    #[arg(long, value_name = "SECONDS", default_value_t = 72 * 3600)]
    guest_session_ttl: u64,
    /// Guest JWT lifetime (getJwt), in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    guest_jwt_ttl: u64,
    /// Guest history reads allowed per minute per session.
    #[arg(long, value_name = "N", default_value_t = 10)]
    history_rate_limit: u32,
    /// Guest metadata keys kept in echoes and history (repeatable); none
    /// given keeps every key.
    #[arg(long = "guest-metadata-key", value_name = "KEY")]
    guest_metadata_keys: Vec<String>,
    /// Largest guest attachment, in bytes (larger → error 4002).
    #[arg(long, value_name = "BYTES", default_value_t = 10_240_000)]
    guest_attachment_max_bytes: u64,
    /// Request-log entries kept (older ones are discarded and counted).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    request_log_capacity: usize,
}

fn config(a: Args) -> Result<(Config, Option<Faults>), String> {
    let ip: IpAddr = if a.bind.eq_ignore_ascii_case("localhost") {
        IpAddr::from([127, 0, 0, 1])
    } else {
        a.bind
            .parse()
            .map_err(|_| format!("--bind must be an IP address, got {:?}", a.bind))?
    };
    if !matches!(a.success_status, 200 | 202) {
        return Err("--success-status must be 200 or 202".to_owned());
    }
    let mut c = Config {
        bind: SocketAddr::new(ip, a.port),
        token_ttl: Duration::from_secs(a.token_ttl),
        rate_limit: a.rate_limit,
        rate_window: Duration::from_secs(a.rate_window),
        idempotency: a.idempotency,
        seed: a.seed,
        success_status: a.success_status,
        max_body_bytes: a.max_body_bytes,
        daily_limit_retry_after: Duration::from_secs(a.daily_limit_retry_after),
        request_log_capacity: a.request_log_capacity,
        ..Config::default()
    };
    if !a.clients.is_empty() {
        c.clients = a
            .clients
            .iter()
            .map(|s| ClientCredentials::parse(s))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
    }
    if !a.cors_origins.is_empty()
        && !a
            .cors_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case("any"))
    {
        c.cors = CorsPolicy::Origins(a.cors_origins);
    }
    let t = &mut c.text_limits;
    t.agent = a.agent_text_max;
    t.agentless = a.agentless_text_max;
    t.sms = a.sms_text_max;
    t.open = a.open_text_max;
    t.seed = a.seed_text_max;
    t.guest = a.guest_text_max;
    t.guest_attributes_bytes = a.guest_attributes_max;
    let g = &mut c.guest;
    if !a.deployments.is_empty() {
        g.deployments = a.deployments;
    }
    g.message_rate = a.ws_message_rate;
    g.retry_after_secs = a.ws_retry_after;
    g.connection_rate = a.ws_connection_rate;
    g.max_connections = a.ws_max_connections;
    g.session_ttl = Duration::from_secs(a.guest_session_ttl);
    g.jwt_ttl = Duration::from_secs(a.guest_jwt_ttl);
    g.history_rate = a.history_rate_limit;
    g.attachment_max_bytes = a.guest_attachment_max_bytes;
    if !a.guest_metadata_keys.is_empty() {
        g.metadata_keys = Some(a.guest_metadata_keys);
    }
    let faults = match a.faults {
        None => None,
        Some(j) => {
            let v: serde_json::Value =
                serde_json::from_str(&j).map_err(|e| format!("--faults: {e}"))?;
            Some(
                Faults::default()
                    .merged(&v)
                    .map_err(|e| format!("--faults: {e}"))?,
            )
        }
    };
    c.validate().map_err(|e| e.to_string())?;
    Ok((c, faults))
}

fn main() -> ExitCode {
    let (cfg, faults) = match config(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("genesys-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("genesys-emulator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let emu = match Emulator::start(cfg).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("genesys-emulator: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(f) = faults
            && let Err(e) = emu.control().set_faults(f)
        {
            eprintln!("genesys-emulator: {e}");
            return ExitCode::from(2);
        }
        let stop = genesys_emulator::stop_signal();
        println!("genesys-emulator listening on {}", emu.base_url());
        stop.await;
        emu.shutdown().await;
        ExitCode::SUCCESS
    })
}
