//! The schema, as numbered steps, in a PostgreSQL schema of its own
//! (`outbox` by default: every table below lives there, so one database
//! can hold several outboxes, and the tests one per case).
//!
//! A step is only ever appended. On open, every instance runs
//! [`migrate_to`]: one transaction that takes an advisory lock on the
//! schema's name (instances starting together migrate one after the
//! other; the second finds nothing to do), reads the version in `info`,
//! runs the missing steps and writes the new version. A database from
//! newer code is refused and left untouched. The tests build a database
//! at every earlier version, fill it as that version would, and open it
//! with the current code (`tests/migrations.rs`).
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `info` (the version); `seq` (the sequence entries' numbers come from); `queue` (one row per queued entry, no body; `id` unique; indexed by lane and `seq`, and by state and `seq`); `dead` (dead letters); `bodies` (each body apart, so that leasing and settling never rewrite one); `lanes` (every lane with queued entries, and a version each enqueue bumps: see [`crate::sql`]); `counts` (the queue's length in 16 stripes, so that an enqueue checks the limit without counting the queue, and concurrent writers rarely meet on one row); `pacing` (one row per origin: the pacer's bucket, the pause, the herd throttle) and `holds` (the held lanes): core's `ScheduleState` in rows |
//! | 2 | `done` (what left the queue — delivered or cancelled — without its body: id, lane, route, when; pruned after the retention the store is opened with, see [`crate::maintain`]) |

use tokio_postgres::Client;

/// The schema version this code writes.
pub const CURRENT: u32 = 2;

/// The steps, in order: `STEPS[k]` brings a database from version `k` to
/// `k + 1`. Unqualified names: the connection's `search_path` is the
/// outbox's schema.
pub const STEPS: &[&str] = &[
    // 1: the queue, the dead letters, the bodies, the lanes, the counts and
    // the pacing state.
    r#"
    CREATE TABLE info (key text PRIMARY KEY, value text NOT NULL);
    CREATE SEQUENCE seq AS bigint START 1;
    CREATE TABLE queue (
        seq bigint PRIMARY KEY,
        id uuid NOT NULL UNIQUE,
        lane text NOT NULL,
        route text NOT NULL,
        origin text NOT NULL,
        method text NOT NULL,
        url text NOT NULL,
        headers text NOT NULL,
        idem_key text NOT NULL,
        needs_token boolean NOT NULL,
        created_at bigint NOT NULL,
        not_before bigint NOT NULL,
        attempts integer NOT NULL,
        failures integer NOT NULL,
        auth_failures integer NOT NULL,
        auth_since bigint,
        state text NOT NULL,
        lease_until bigint,
        error text,
        size bigint NOT NULL
    );
    CREATE INDEX queue_lane ON queue (lane, seq);
    CREATE INDEX queue_state ON queue (state, seq);
    CREATE TABLE dead (
        seq bigint PRIMARY KEY,
        id uuid NOT NULL UNIQUE,
        lane text NOT NULL,
        route text NOT NULL,
        origin text NOT NULL,
        method text NOT NULL,
        url text NOT NULL,
        headers text NOT NULL,
        idem_key text NOT NULL,
        needs_token boolean NOT NULL,
        created_at bigint NOT NULL,
        not_before bigint NOT NULL,
        attempts integer NOT NULL,
        failures integer NOT NULL,
        auth_failures integer NOT NULL,
        auth_since bigint,
        state text NOT NULL,
        lease_until bigint,
        error text,
        size bigint NOT NULL,
        dead_at bigint NOT NULL
    );
    CREATE TABLE bodies (seq bigint PRIMARY KEY, body bytea NOT NULL);
    CREATE TABLE lanes (lane text PRIMARY KEY, ver bigint NOT NULL DEFAULT 0);
    CREATE TABLE counts (stripe smallint PRIMARY KEY, queued bigint NOT NULL);
    INSERT INTO counts (stripe, queued) SELECT s, 0 FROM generate_series(0, 15) AS s;
    CREATE TABLE pacing (
        origin text PRIMARY KEY,
        credit bigint NOT NULL,
        updated_at bigint NOT NULL,
        paused_until bigint NOT NULL,
        throttle bigint[]
    );
    CREATE TABLE holds (lane text PRIMARY KEY, holder uuid NOT NULL);
    "#,
    // 2: what left the queue, kept small and for a while.
    r#"
    CREATE TABLE done (
        seq bigint PRIMARY KEY,
        id uuid NOT NULL,
        lane text NOT NULL,
        route text NOT NULL,
        attempts integer NOT NULL,
        created_at bigint NOT NULL,
        done_at bigint NOT NULL
    );
    CREATE INDEX done_at ON done (done_at);
    "#,
];

/// Why a database's schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database was written by newer code.
    #[error(
        "schema `{schema}` has version {found}, newer than this build's {CURRENT}; it was left untouched (run the newer `outbox`)"
    )]
    Newer {
        /// The schema.
        schema: String,
        /// Its version.
        found: u32,
    },
    /// PostgreSQL failed.
    #[error("migrating schema `{schema}` from version {from}: {source}")]
    Sql {
        /// The schema.
        schema: String,
        /// The version the step started from.
        from: u32,
        /// What PostgreSQL said.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// `name` quoted as an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The schema's version (0: no outbox there yet).
pub async fn version(client: &Client, schema: &str) -> Result<u32, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'info')",
            &[&schema],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let sql = format!(
        "SELECT value FROM {}.info WHERE key = 'version'",
        ident(schema)
    );
    let row = client.query_opt(&sql, &[]).await?;
    Ok(row
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or(0))
}

/// Brings `schema` to version `to` (at most [`CURRENT`]) in one
/// transaction, under an advisory lock on its name. Returns the version it
/// started from.
pub async fn migrate_to(client: &mut Client, schema: &str, to: u32) -> Result<u32, SchemaError> {
    let sql = |from: u32| {
        let schema = schema.to_owned();
        move |source| SchemaError::Sql {
            schema,
            from,
            source,
        }
    };
    let tx = client.transaction().await.map_err(sql(0))?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
        .await
        .map_err(sql(0))?;
    let from = version(tx.client(), schema).await.map_err(sql(0))?;
    if from > CURRENT {
        return Err(SchemaError::Newer {
            schema: schema.to_owned(),
            found: from,
        });
    }
    if from >= to {
        tx.rollback().await.map_err(sql(from))?;
        return Ok(from);
    }
    let quoted = ident(schema);
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {quoted}; SET LOCAL search_path TO {quoted}"
    ))
    .await
    .map_err(sql(from))?;
    for step in &STEPS[from as usize..to as usize] {
        tx.batch_execute(step).await.map_err(sql(from))?;
    }
    tx.execute(
        "INSERT INTO info (key, value) VALUES ('version', $1) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&to.to_string()],
    )
    .await
    .map_err(sql(from))?;
    tx.commit().await.map_err(sql(from))?;
    Ok(from)
}
