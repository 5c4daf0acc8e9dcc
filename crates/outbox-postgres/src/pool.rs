//! A small connection pool: idle connections in a list, a semaphore for
//! the limit, every statement prepared once per connection.
//!
//! Why not a pool crate: the store needs exactly three things of one —
//! a limit, statements prepared per connection ([`crate::sql::Statements`]),
//! and a way to *not* return a connection whose transaction did not commit
//! (it is closed, so PostgreSQL rolls the transaction back; a pooled one
//! would hand the next caller an open transaction). Forty lines do that
//! with nothing but `tokio-postgres` and `tokio`.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config, NoTls};

use crate::sql::Statements;
use crate::{OpenError, PgError};

/// The connection settings of `url` (the password from `PGPASSWORD` when
/// the URL has none), refused when it asks for TLS.
pub fn config(url: &str) -> Result<Config, OpenError> {
    let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
        // The parser's message never includes the password.
        OpenError::Url(e.to_string())
    })?;
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    match config.get_ssl_mode() {
        tokio_postgres::config::SslMode::Require => Err(OpenError::Tls("require".into())),
        _ => Ok(config),
    }
}

/// A pooled connection and its prepared statements.
pub struct Conn {
    client: Client,
    statements: Arc<Statements>,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Its prepared statements.
    pub fn statements(&self) -> &Statements {
        &self.statements
    }

    /// Closes it instead of pooling it (its transaction rolls back).
    pub fn discard(self) {
        drop(self);
    }
}

/// The pool.
pub struct Pool {
    config: Config,
    schema: String,
    idle: Mutex<Vec<(Client, Arc<Statements>)>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    /// A pool of at most `max` connections to `config`, each with its
    /// `search_path` set to `schema`.
    pub fn new(config: Config, schema: String, max: usize) -> Self {
        Self {
            config,
            schema,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    /// A new connection outside the pool (its task spawned on the current
    /// runtime), its `search_path` set.
    pub async fn raw(&self) -> Result<Client, PgError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| PgError::sql("connecting", e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute(&format!(
                "SET search_path TO {}",
                crate::schema::ident(&self.schema)
            ))
            .await
            .map_err(|e| PgError::sql("setting the search path", e))?;
        Ok(client)
    }

    /// A connection: an idle one, or a new one while under the limit (else
    /// it waits for one to come back).
    pub async fn get(&self) -> Result<Conn, PgError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PgError {
                kind: crate::ErrorKind::Closed,
                doing: "taking a connection",
                message: "the pool is closed".into(),
            })?;
        loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match idle {
                Some((client, _)) if client.is_closed() => continue,
                Some((client, statements)) => {
                    return Ok(Conn {
                        client,
                        statements,
                        _permit: permit,
                    });
                }
                None => break,
            }
        }
        let client = self.raw().await?;
        let statements = Statements::prepare(&client)
            .await
            .map_err(|e| PgError::sql("preparing statements", e))?;
        Ok(Conn {
            client,
            statements: Arc::new(statements),
            _permit: permit,
        })
    }

    /// Gives a connection back (its transaction committed).
    pub fn put(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((conn.client, conn.statements));
        }
    }
}
