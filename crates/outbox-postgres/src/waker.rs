//! Waking an idle instance when another enqueues: `LISTEN`, with polling
//! as the fallback.
//!
//! Every transaction that adds or revives entries sends `NOTIFY
//! outbox_<schema>` as it commits ([`crate::sql::finish`]). [`run`]
//! keeps one connection of its own listening on that channel and calls
//! `wake` for each notification, so an idle host's flusher runs at once
//! instead of at its next timer. While it cannot listen (the database
//! restarted, the network), it calls `wake` every `poll` instead, and
//! reconnects; while it listens, it still calls `wake` every ten `poll`s,
//! in case a notification was lost with a connection.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;

use crate::PostgresStore;

/// Listens for enqueues of `store`'s schema and calls `wake` for each, and
/// on a timer (see the [module](self)). Runs until `stop` says so (checked
/// at least every `poll`).
pub async fn run(
    store: PostgresStore,
    wake: impl Fn() + Send + 'static,
    poll: Duration,
    stop: impl Fn() -> bool,
) {
    while !stop() {
        match listen(&store, &wake, poll, &stop).await {
            Ok(()) => return,
            Err(_) => {
                // Down: poll instead, and try again.
                wake();
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// One listening connection, until it fails (`Err`) or `stop`.
async fn listen(
    store: &PostgresStore,
    wake: &impl Fn(),
    poll: Duration,
    stop: &impl Fn() -> bool,
) -> Result<(), String> {
    let config = crate::pool::config(&store.options().url).map_err(|e| e.to_string())?;
    let (client, mut connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let listening = client
        .batch_execute(&format!("LISTEN {}", crate::schema::ident(store.channel())))
        .await;
    if let Err(e) = listening {
        driver.abort();
        return Err(e.to_string());
    }
    // Whatever was enqueued before the LISTEN took effect.
    wake();
    let safety = poll * 10;
    let mut since = tokio::time::Instant::now();
    let result = loop {
        if stop() {
            break Ok(());
        }
        tokio::select! {
            note = notes.recv() => match note {
                Some(()) => {
                    // Many enqueues, one wake-up.
                    while notes.try_recv().is_ok() {}
                    wake();
                    since = tokio::time::Instant::now();
                }
                None => break Err("the listening connection closed".to_owned()),
            },
            () = tokio::time::sleep(poll) => {
                if since.elapsed() >= safety {
                    wake();
                    since = tokio::time::Instant::now();
                }
            }
        }
    };
    driver.abort();
    drop(client);
    result
}
