//! The `outbox` command. `outbox serve --help` says everything.

use clap::{Parser, Subcommand};
use outbox_server::settings::{ServeArgs, Settings};

/// Outbox for backends: a durable outbox for Genesys Cloud messaging.
#[derive(Debug, Parser)]
#[command(name = "outbox", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the proxy: point your Genesys Cloud API base URL at it.
    ///
    /// Requests on Outbox's routes (agent sends, agentless, Open Messaging
    /// inbound, and any in the configuration's `routes`) go to Genesys
    /// live while it answers, its answer returned as is; when it does not
    /// (outage, 429, 5xx, 401), they are kept in the store (a SQLite file,
    /// or PostgreSQL shared by any number of instances) and
    /// answered `202 {"queued":true,"id",…}`, then delivered in order per
    /// conversation, paced and retried. Everything else is proxied as is.
    /// The API door is under /outbox/v1 (messages, dead letters, stats,
    /// events); /metrics and /healthz beside it. SIGTERM stops it
    /// gracefully: nothing queued is lost.
    ///
    /// Secrets come from the environment or files only:
    /// OUTBOX_CLIENT_SECRET (or --client-secret-file) and OUTBOX_API_KEY
    /// (or --api-key-file).
    Serve(ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    let settings = match Settings::read(&args, &|name| std::env::var(name).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("outbox: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("outbox: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let stop = outbox_server::stop_signal();
        outbox_server::serve(settings, stop).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outbox: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
