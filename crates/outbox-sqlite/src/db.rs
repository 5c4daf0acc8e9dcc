//! Core's reads answered and its writes made, in SQL, on the store's one
//! connection (inside whatever transaction the writer thread has open).
//! Nothing here decides: each [`Read`] is answered as
//! [`outbox_core::store`] describes it, each [`Write`] carried out so that
//! later reads of the same transaction see it.

use outbox_core::entry::{Entry, EntryState, Head, Seq};
use outbox_core::pacer::ScheduleState;
use outbox_core::store::{Among, Found, Read, Waiting, Write};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::codec::{self, COLS, Q_COLS, Raw};

/// The time used for salvaged records (a record that does not read back
/// has no trustworthy times of its own).
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads rows of [`COLS`] (queued entries), each decoded or salvaged.
fn queued_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Result<Entry, Entry>>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |row| Raw::of(row, 20))?;
    let mut out = Vec::new();
    for raw in rows {
        let raw = raw?;
        out.push(codec::entry(&raw, None).map_err(|why| codec::salvage(&raw, &why, now())));
    }
    Ok(out)
}

/// Reads rows of [`COLS`] + `dead_at` (dead letters), each decoded or
/// salvaged.
fn dead_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |row| {
        let raw = Raw::of(row, 20)?;
        let dead_at: Option<i64> = row.get(20).ok();
        Ok((raw, dead_at))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (raw, dead_at) = row?;
        let at = dead_at.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        out.push(codec::entry(&raw, Some(at)).unwrap_or_else(|why| {
            let mut e = codec::salvage(&raw, &why, now());
            e.state = EntryState::Dead { at };
            e
        }));
    }
    Ok(out)
}

fn with_body(conn: &Connection, mut entry: Entry) -> rusqlite::Result<Entry> {
    entry.request.body = body(conn, entry.seq)?.unwrap_or_default();
    Ok(entry)
}

fn body(conn: &Connection, seq: Seq) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT body FROM bodies WHERE seq = ?1")?
        .query_row([codec::seq_value(seq)], |row| row.get(0))
        .optional()
}

fn meta_int(conn: &Connection, key: &str) -> rusqlite::Result<u64> {
    let value: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?;
    Ok(value.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

fn set_meta(conn: &Connection, key: &str, value: Value) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// Adds `by` (±1) to the queue's count.
fn count_queued(conn: &Connection, by: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('queued', max(?1, 0)) \
         ON CONFLICT (key) DO UPDATE SET value = max(value + ?1, 0)",
    )?
    .execute([by])?;
    Ok(())
}

fn schedule(conn: &Connection) -> rusqlite::Result<ScheduleState> {
    let text: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'schedule'")?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(text.map(|t| ScheduleState::decode(&t)).unwrap_or_default())
}

/// Answers one read.
pub fn read(conn: &Connection, read: Read) -> rusqlite::Result<Found> {
    Ok(match read {
        Read::Schedule(ask) => ask.reply(schedule(conn)?),
        Read::Heads(ask) => {
            // The lane list is written in the very transactions that write
            // the entries, by every version of this store (version 2 built
            // it from the queue), so it is exact, and a survey — which in
            // IndexedDB guards against a writer that lists nothing — reads
            // it too: walking the whole queue at each flush would cost a
            // scan of every entry.
            let _ = ask.survey;
            let sql = format!(
                "SELECT {Q_COLS} FROM lanes l JOIN queue q ON q.seq = \
                 (SELECT seq FROM queue WHERE lane = l.lane ORDER BY seq LIMIT 1)"
            );
            let heads = queued_rows(conn, &sql, [])?
                .into_iter()
                .map(|r| match r {
                    Ok(e) => e.head(),
                    Err(salvaged) => codec::corrupt_head(&salvaged),
                })
                .collect::<Vec<Head>>();
            ask.reply(heads)
        }
        Read::Entries(ask) => {
            let sql = format!("SELECT {COLS} FROM queue WHERE seq = ?1");
            let mut found = Vec::with_capacity(ask.seqs.len());
            for seq in &ask.seqs {
                found.extend(
                    queued_rows(conn, &sql, [codec::seq_value(*seq)])?
                        .into_iter()
                        .map(|r| r.unwrap_or_else(|salvaged| salvaged)),
                );
            }
            ask.reply(found)
        }
        Read::Behind(ask) => {
            let sql = format!(
                "SELECT {COLS} FROM queue WHERE lane = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            );
            let mut lists = Vec::with_capacity(ask.lanes.len());
            for behind in &ask.lanes {
                let limit = i64::try_from(behind.limit).unwrap_or(i64::MAX);
                let rows = queued_rows(
                    conn,
                    &sql,
                    params![behind.lane, codec::seq_value(behind.after), limit],
                )?;
                lists.push(rows.into_iter().map(Result::ok).collect());
            }
            ask.reply(lists)
        }
        Read::Bodies(ask) => {
            let mut bodies = Vec::with_capacity(ask.seqs.len());
            for seq in &ask.seqs {
                if let Some(b) = body(conn, *seq)? {
                    bodies.push((*seq, b));
                }
            }
            ask.reply(bodies)
        }
        Read::State(ask) => {
            let state = match ask.state {
                Waiting::Pending => "pending",
                Waiting::AwaitingToken => "awaiting-token",
            };
            // One page, and one row more to learn whether more follow.
            let after = i64::try_from(ask.after).unwrap_or(i64::MAX);
            let take = i64::try_from(ask.limit.saturating_add(1)).unwrap_or(i64::MAX);
            let mut rows = match &ask.origin {
                Some(origin) => queued_rows(
                    conn,
                    &format!(
                        "SELECT {COLS} FROM queue WHERE state = ?1 AND origin = ?2 AND seq > ?3 \
                         ORDER BY seq LIMIT ?4"
                    ),
                    params![state, origin, after, take],
                )?,
                None => queued_rows(
                    conn,
                    &format!(
                        "SELECT {COLS} FROM queue WHERE state = ?1 AND seq > ?2 \
                         ORDER BY seq LIMIT ?3"
                    ),
                    params![state, after, take],
                )?,
            };
            let more = rows.len() > ask.limit;
            rows.truncate(ask.limit);
            let next = rows
                .last()
                .map(|r| match r {
                    Ok(e) | Err(e) => e.seq,
                })
                .filter(|_| more);
            let entries = rows.into_iter().filter_map(Result::ok).collect();
            ask.reply(entries, next)
        }
        Read::Find(ask) => {
            let id = ask.id.as_bytes().to_vec();
            let queued = || -> rusqlite::Result<Option<Entry>> {
                let sql = format!("SELECT {COLS} FROM queue WHERE id = ?1");
                Ok(queued_rows(conn, &sql, [&id])?
                    .into_iter()
                    .next()
                    .map(|r| r.unwrap_or_else(|salvaged| salvaged)))
            };
            let dead = || -> rusqlite::Result<Option<Entry>> {
                let sql = format!("SELECT {COLS}, dead_at FROM dead WHERE id = ?1");
                Ok(dead_rows(conn, &sql, [&id])?.into_iter().next())
            };
            let found = match ask.among {
                Among::Queued => queued()?,
                Among::Dead => dead()?,
                Among::Either => match queued()? {
                    Some(e) => Some(e),
                    None => dead()?,
                },
            };
            let found = found.map(|e| with_body(conn, e)).transpose()?;
            ask.reply(found)
        }
        Read::List(ask) => {
            let limit = i64::try_from(ask.limit).unwrap_or(i64::MAX);
            let entries = match ask.among {
                Among::Dead => dead_rows(
                    conn,
                    &format!("SELECT {COLS}, dead_at FROM dead ORDER BY seq LIMIT ?1"),
                    [limit],
                )?,
                Among::Queued | Among::Either => queued_rows(
                    conn,
                    &format!("SELECT {COLS} FROM queue ORDER BY seq LIMIT ?1"),
                    [limit],
                )?
                .into_iter()
                .map(|r| r.unwrap_or_else(|salvaged| salvaged))
                .collect(),
            };
            let entries = entries
                .into_iter()
                .map(|e| with_body(conn, e))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            ask.reply(entries)
        }
        Read::Lane(ask) => {
            let busy = conn
                .prepare_cached("SELECT 1 FROM lanes WHERE lane = ?1")?
                .exists([&ask.lane])?;
            ask.reply(busy)
        }
        Read::Full(ask) => {
            let queued = meta_int(conn, "queued")?;
            let full = queued >= ask.at_least as u64;
            ask.reply(full)
        }
        Read::Taken(ask) => {
            let id = ask.id.as_bytes().to_vec();
            let taken = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM queue WHERE id = ?1) \
                     OR EXISTS (SELECT 1 FROM dead WHERE id = ?1)",
                )?
                .query_row([&id], |row| row.get(0))?;
            ask.reply(taken)
        }
        Read::LastSeq(ask) => ask.reply(meta_int(conn, "last_seq")?),
        Read::Count(ask) => {
            let n = match ask.among {
                Among::Dead => conn
                    .prepare_cached("SELECT count(*) FROM dead")?
                    .query_row([], |row| row.get::<_, i64>(0))?
                    .max(0) as u64,
                Among::Queued | Among::Either => meta_int(conn, "queued")?,
            };
            ask.reply(usize::try_from(n).unwrap_or(usize::MAX))
        }
        Read::Summaries(ask) => {
            let after = i64::try_from(ask.after).unwrap_or(i64::MAX);
            let take = i64::try_from(ask.limit.saturating_add(1)).unwrap_or(i64::MAX);
            let mut stmt = conn.prepare_cached(
                "SELECT lane, state, lease_until, created_at, size, seq FROM queue \
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, take], |row| {
                Ok((codec::summary(row)?, row.get::<_, i64>(5)?))
            })?;
            let mut page = Vec::new();
            for row in rows {
                let (summary, seq) = row?;
                page.push((
                    u64::try_from(seq).unwrap_or(0),
                    match summary {
                        Ok(summary) => summary,
                        Err((lane, _)) => ask.unreadable(lane),
                    },
                ));
            }
            let more = page.len() > ask.limit;
            page.truncate(ask.limit);
            let next = page.last().map(|(seq, _)| *seq).filter(|_| more);
            ask.reply(page.into_iter().map(|(_, s)| s).collect(), next)
        }
    })
}

fn insert(
    conn: &Connection,
    table: &str,
    entry: &Entry,
    dead_at: Option<u64>,
) -> rusqlite::Result<()> {
    let mut values = codec::values(entry);
    let sql = match dead_at {
        Some(at) => {
            values.push(Value::Integer(i64::try_from(at).unwrap_or(i64::MAX)));
            format!(
                "INSERT INTO {table} ({COLS}, dead_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                 ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
            )
        }
        None => format!(
            "INSERT INTO {table} ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
        ),
    };
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(values))?;
    Ok(())
}

/// Deletes a queued entry's row; returns its lane if it was there.
fn take_queued(conn: &Connection, seq: Seq) -> rusqlite::Result<Option<String>> {
    let lane: Option<String> = conn
        .prepare_cached("DELETE FROM queue WHERE seq = ?1 RETURNING lane")?
        .query_row([codec::seq_value(seq)], |row| row.get(0))
        .optional()?;
    if let Some(lane) = &lane {
        count_queued(conn, -1)?;
        conn.prepare_cached(
            "DELETE FROM lanes WHERE lane = ?1 AND NOT EXISTS (SELECT 1 FROM queue WHERE lane = ?1)",
        )?
        .execute([lane])?;
    }
    Ok(lane)
}

/// Adds a queued entry's row (its lane listed, the count kept).
fn put_queued(conn: &Connection, entry: &Entry) -> rusqlite::Result<()> {
    insert(conn, "queue", entry, None)?;
    count_queued(conn, 1)?;
    conn.prepare_cached("INSERT OR IGNORE INTO lanes (lane) VALUES (?1)")?
        .execute([&entry.lane])?;
    Ok(())
}

/// Carries out one write.
pub fn write(conn: &Connection, write: Write) -> rusqlite::Result<()> {
    match write {
        Write::Add(entry) => {
            put_queued(conn, &entry)?;
            conn.prepare_cached("INSERT OR REPLACE INTO bodies (seq, body) VALUES (?1, ?2)")?
                .execute(params![codec::seq_value(entry.seq), entry.request.body])?;
            let last = meta_int(conn, "last_seq")?.max(entry.seq);
            set_meta(conn, "last_seq", Value::Integer(codec::seq_value(last)))?;
        }
        Write::Put(entry) => {
            let mut values = codec::values(&entry);
            values.truncate(19);
            // Every column but seq, id, lane, route, origin, the request
            // and size, which never change after an enqueue.
            conn.prepare_cached(
                "UPDATE queue SET needs_token = ?10, created_at = ?11, not_before = ?12, attempts = ?13, \
                 failures = ?14, auth_failures = ?15, auth_since = ?16, state = ?17, lease_until = ?18, \
                 error = ?19 WHERE seq = ?1",
            )?
            .execute(params_from_iter(values))?;
        }
        Write::Remove(seq) => {
            if take_queued(conn, seq)?.is_some() {
                conn.prepare_cached("DELETE FROM bodies WHERE seq = ?1")?
                    .execute([codec::seq_value(seq)])?;
            }
        }
        Write::Bury(entry) => {
            if take_queued(conn, entry.seq)?.is_some() {
                let at = match entry.state {
                    EntryState::Dead { at } => at,
                    _ => now(),
                };
                insert(conn, "dead", &entry, Some(at))?;
            }
        }
        Write::Revive(entry) => {
            let removed = conn
                .prepare_cached("DELETE FROM dead WHERE seq = ?1")?
                .execute([codec::seq_value(entry.seq)])?;
            if removed > 0 {
                put_queued(conn, &entry)?;
            }
        }
        Write::Discard(seq) => {
            let removed = conn
                .prepare_cached("DELETE FROM dead WHERE seq = ?1")?
                .execute([codec::seq_value(seq)])?;
            if removed > 0 {
                conn.prepare_cached("DELETE FROM bodies WHERE seq = ?1")?
                    .execute([codec::seq_value(seq)])?;
            }
        }
        Write::Schedule(schedule) => {
            set_meta(conn, "schedule", Value::Text(schedule.encode()))?;
        }
        Write::Purge => {
            conn.execute_batch(
                "DELETE FROM queue; DELETE FROM dead; DELETE FROM bodies; DELETE FROM lanes; \
                 DELETE FROM meta WHERE key = 'schedule'; \
                 INSERT OR REPLACE INTO meta (key, value) VALUES ('queued', 0);",
            )?;
        }
    }
    Ok(())
}
