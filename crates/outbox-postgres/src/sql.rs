//! Core's reads answered and its writes made, in SQL, on one connection
//! inside one transaction. Nothing here decides: each [`Read`] is answered
//! as [`outbox_core::store`] describes it, each [`Write`] carried out so
//! that later reads of the same transaction see it. What only the
//! database can enforce is here:
//!
//! * **Locks.** A transaction that writes locks what it reads: the pacing
//!   rows (`FOR UPDATE`, every origin, in origin order: the fleet's claims
//!   take turns on one budget per origin, and never deadlock on it), the
//!   lane heads (`FOR UPDATE SKIP LOCKED`: a head another transaction is
//!   working on is left out, and so is its whole lane, never the entry
//!   behind it), the entries behind a head and the entries it settles
//!   (`FOR UPDATE`: they are the claim's own lanes). A transaction that
//!   only reads locks nothing.
//! * **One lane's seqs in commit order.** An enqueue first locks its lane's
//!   row in `lanes` (bumping its version), then takes the next number of
//!   the sequence `seq` ([`outbox_core::store::LastSeqRead`]): two enqueues
//!   of one lane commit one after the other, in `seq` order, so a claim
//!   never sees a lane's later entry before an earlier one commits.
//! * **Fencing.** Every `UPDATE`/`DELETE` of an entry this transaction read
//!   carries `AND attempts = <the attempt read>` (the attempt number is the
//!   lease's token): if the row changed under the transaction — which the
//!   locks above rule out — nothing is written and the transaction fails
//!   ([`crate::ErrorKind::Fenced`]) instead of overwriting another
//!   instance's lease.
//! * **The lane list** (`lanes`) is pruned in the transaction that empties
//!   a lane, only if no enqueue touched the lane since (its version): an
//!   enqueue racing the prune keeps its lane listed.
//! * **The queue's length** is kept in 16 stripes (`counts`, by `seq`),
//!   updated at the end of the transaction in stripe order.

use std::collections::HashMap;

use outbox_core::entry::{Entry, EntryId, EntryState, Seq};
use outbox_core::hold::Hold;
use outbox_core::pacer::{OriginPace, ScheduleState};
use outbox_core::store::{Among, Found, Read, Waiting, Write};
use outbox_core::throttle::Throttle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::codec::{self, COLS, Param, Values, big};
use crate::{ErrorKind, PgError};

/// How many stripes the queue's length is kept in.
pub const STRIPES: usize = 16;

/// The columns of an entry as written (no casts).
const INSERT_COLS: &str = "seq, id, lane, route, origin, method, url, headers, idem_key, \
     needs_token, created_at, not_before, attempts, failures, auth_failures, auth_since, state, \
     lease_until, error, size";

/// The twenty placeholders of an entry, `id` cast from text.
const VALUES: &str = "$1, $2::text::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
     $15, $16, $17, $18, $19, $20";

/// Every statement, prepared once per connection (one round trip each
/// saved on every use).
pub struct Statements {
    pacing: [Statement; 2],
    holds: Statement,
    heads_survey: [Statement; 2],
    heads_listed: [Statement; 2],
    entries: [Statement; 2],
    behind: [Statement; 2],
    bodies: Statement,
    state: [Statement; 2],
    find_queued: [Statement; 2],
    find_dead: [Statement; 2],
    body: Statement,
    list_queued: Statement,
    list_dead: Statement,
    lane: Statement,
    queued: Statement,
    taken: Statement,
    lock_lane: Statement,
    next_seq: Statement,
    count_dead: Statement,
    summaries: Statement,
    add: Statement,
    add_body: Statement,
    list_lane: Statement,
    put: Statement,
    remove: Statement,
    bury: Statement,
    revive: Statement,
    discard: Statement,
    pace: Statement,
    unpace: Statement,
    hold: Statement,
    lift: Statement,
    prune: Statement,
    count: Statement,
    notify: Statement,
}

/// `sql` and `sql` + `lock`: the plain and the locking form of a read.
fn both(sql: &str, lock: &str) -> [String; 2] {
    [sql.to_owned(), format!("{sql} {lock}")]
}

impl Statements {
    /// Prepares every statement on `client` (all at once: one round trip).
    pub async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        const UPDATE: &str = "FOR UPDATE";
        const SKIP: &str = "FOR UPDATE SKIP LOCKED";
        let texts: Vec<String> = [
            both(
                "SELECT origin, credit, updated_at, paused_until, throttle FROM pacing ORDER BY origin",
                UPDATE,
            ),
            [
                "SELECT lane, holder::text FROM holds ORDER BY lane".into(),
                "SELECT seq, body FROM bodies WHERE seq = ANY($1)".into(),
            ],
            both(
                &format!(
                    "SELECT {COLS} FROM queue WHERE seq IN (SELECT min(seq) FROM queue GROUP BY lane)"
                ),
                SKIP,
            ),
            both(
                &format!(
                    "SELECT {COLS} FROM queue WHERE seq IN (SELECT (SELECT q.seq FROM queue q \
                     WHERE q.lane = l.lane ORDER BY q.seq LIMIT 1) FROM lanes l)"
                ),
                SKIP,
            ),
            both(&format!("SELECT {COLS} FROM queue WHERE seq = ANY($1)"), UPDATE),
            both(
                &format!(
                    "SELECT {COLS} FROM queue WHERE lane = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ),
                UPDATE,
            ),
            both(
                &format!(
                    "SELECT {COLS} FROM queue WHERE state = $1 AND ($2::text IS NULL OR origin = $2) \
                     AND seq > $3 ORDER BY seq LIMIT $4"
                ),
                UPDATE,
            ),
            both(
                &format!("SELECT {COLS} FROM queue WHERE id = $1::text::uuid"),
                UPDATE,
            ),
            both(
                &format!("SELECT {COLS}, dead_at FROM dead WHERE id = $1::text::uuid"),
                UPDATE,
            ),
            [
                "SELECT body FROM bodies WHERE seq = $1".into(),
                format!("SELECT {COLS} FROM queue ORDER BY seq LIMIT $1"),
            ],
            [
                format!("SELECT {COLS}, dead_at FROM dead ORDER BY seq LIMIT $1"),
                "SELECT EXISTS (SELECT 1 FROM queue WHERE lane = $1)".into(),
            ],
            [
                "SELECT coalesce(sum(queued), 0)::bigint FROM counts".into(),
                "SELECT EXISTS (SELECT 1 FROM queue WHERE id = $1::text::uuid) \
                 OR EXISTS (SELECT 1 FROM dead WHERE id = $1::text::uuid)"
                    .into(),
            ],
            [
                "INSERT INTO lanes (lane) VALUES ($1) ON CONFLICT (lane) DO UPDATE SET ver = lanes.ver + 1"
                    .into(),
                "SELECT nextval('seq') - 1".into(),
            ],
            [
                "SELECT count(*) FROM dead".into(),
                "SELECT lane, state, lease_until, created_at, size, seq FROM queue \
                 WHERE seq > $1 ORDER BY seq LIMIT $2"
                    .into(),
            ],
            [
                format!("INSERT INTO queue ({INSERT_COLS}) VALUES ({VALUES}) RETURNING lane"),
                "INSERT INTO bodies (seq, body) VALUES ($1, $2) \
                 ON CONFLICT (seq) DO UPDATE SET body = EXCLUDED.body"
                    .into(),
            ],
            [
                "INSERT INTO lanes (lane) VALUES ($1) ON CONFLICT (lane) DO NOTHING".into(),
                "UPDATE queue SET needs_token = $2, created_at = $3, not_before = $4, attempts = $5, \
                 failures = $6, auth_failures = $7, auth_since = $8, state = $9, lease_until = $10, \
                 error = $11 WHERE seq = $1 AND ($12::int IS NULL OR attempts = $12) RETURNING seq"
                    .into(),
            ],
            [
                "WITH gone AS (DELETE FROM queue WHERE seq = $1 AND ($2::int IS NULL OR attempts = $2) \
                 RETURNING seq, id, lane, route, attempts, created_at), \
                 body AS (DELETE FROM bodies WHERE seq IN (SELECT seq FROM gone)), \
                 kept AS (INSERT INTO done (seq, id, lane, route, attempts, created_at, done_at) \
                 SELECT seq, id, lane, route, attempts, created_at, $3 FROM gone WHERE $4 \
                 ON CONFLICT (seq) DO NOTHING) \
                 SELECT lane FROM gone"
                    .into(),
                format!(
                    "WITH gone AS (DELETE FROM queue WHERE seq = $1 AND ($22::int IS NULL OR attempts = $22) \
                     RETURNING lane) INSERT INTO dead ({INSERT_COLS}, dead_at) SELECT {VALUES}, $21 \
                     FROM gone RETURNING lane"
                ),
            ],
            [
                format!(
                    "WITH back AS (DELETE FROM dead WHERE seq = $1 RETURNING seq) \
                     INSERT INTO queue ({INSERT_COLS}) SELECT {VALUES} FROM back RETURNING lane"
                ),
                "WITH gone AS (DELETE FROM dead WHERE seq = $1 RETURNING seq) \
                 DELETE FROM bodies WHERE seq IN (SELECT seq FROM gone)"
                    .into(),
            ],
            [
                "INSERT INTO pacing (origin, credit, updated_at, paused_until, throttle) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (origin) DO UPDATE SET \
                 credit = EXCLUDED.credit, updated_at = EXCLUDED.updated_at, \
                 paused_until = EXCLUDED.paused_until, throttle = EXCLUDED.throttle"
                    .into(),
                "DELETE FROM pacing WHERE origin = $1".into(),
            ],
            [
                "INSERT INTO holds (lane, holder) VALUES ($1, $2::text::uuid) \
                 ON CONFLICT (lane) DO UPDATE SET holder = EXCLUDED.holder"
                    .into(),
                "DELETE FROM holds WHERE lane = $1 AND holder = $2::text::uuid".into(),
            ],
            [
                "WITH empty AS (SELECT lane, ver FROM lanes l WHERE lane = ANY($1) \
                 AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.lane = l.lane)) \
                 DELETE FROM lanes d USING empty e WHERE d.lane = e.lane AND d.ver = e.ver"
                    .into(),
                "UPDATE counts SET queued = queued + $2 WHERE stripe = $1".into(),
            ],
            [
                "SELECT pg_notify($1, '')".into(),
                "SELECT 1".into(),
            ],
        ]
        .into_iter()
        .flatten()
        .collect();
        let prepared =
            futures_util::future::try_join_all(texts.iter().map(|t| client.prepare(t))).await?;
        let mut it = prepared.into_iter();
        let mut next = || match it.next() {
            Some(s) => s,
            None => unreachable!("as many statements as texts"),
        };
        Ok(Self {
            pacing: [next(), next()],
            holds: next(),
            bodies: next(),
            heads_survey: [next(), next()],
            heads_listed: [next(), next()],
            entries: [next(), next()],
            behind: [next(), next()],
            state: [next(), next()],
            find_queued: [next(), next()],
            find_dead: [next(), next()],
            body: next(),
            list_queued: next(),
            list_dead: next(),
            lane: next(),
            queued: next(),
            taken: next(),
            lock_lane: next(),
            next_seq: next(),
            count_dead: next(),
            summaries: next(),
            add: next(),
            add_body: next(),
            list_lane: next(),
            put: next(),
            remove: next(),
            bury: next(),
            revive: next(),
            discard: next(),
            pace: next(),
            unpace: next(),
            hold: next(),
            lift: next(),
            prune: next(),
            count: next(),
            notify: next(),
        })
    }
}

/// The time used for salvaged records and dead letters without a time.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What one transaction keeps between its steps.
#[derive(Debug, Default)]
pub struct TxState {
    /// It writes: lock what it reads.
    pub lock: bool,
    /// Keep what leaves the queue in `done`.
    pub archive: bool,
    /// The attempt each entry had when this transaction read it (its
    /// lease's token), updated by its own writes.
    pub attempts: HashMap<Seq, u32>,
    /// The pacing state as read, to write only what changed.
    pub schedule: Option<ScheduleState>,
    /// Changes to the queue's length, per stripe.
    pub deltas: [i64; STRIPES],
    /// Lanes this transaction removed entries from.
    pub emptied: Vec<String>,
    /// Entries were added or revived: wake the other instances.
    pub notify: bool,
}

fn pg(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> PgError {
    move |e| PgError::sql(doing, e)
}

/// The rows of `statement`.
async fn rows(
    client: &Client,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
    doing: &'static str,
) -> Result<Vec<Row>, PgError> {
    client.query(statement, params).await.map_err(pg(doing))
}

fn seqs(list: &[Seq]) -> Vec<i64> {
    list.iter().map(|s| big(*s)).collect()
}

/// What answering one read found, and what the transaction learnt.
struct Answered {
    found: Found,
    attempts: Vec<(Seq, u32)>,
    schedule: Option<ScheduleState>,
}

impl Answered {
    fn plain(found: Found) -> Self {
        Self {
            found,
            attempts: Vec::new(),
            schedule: None,
        }
    }

    fn of_entries(found: Found, entries: &[Entry]) -> Self {
        Self {
            found,
            attempts: entries.iter().map(|e| (e.seq, e.attempts)).collect(),
            schedule: None,
        }
    }
}

/// Answers a step's reads, all sent at once (pipelined, in order: the
/// pacing rows are locked before the heads are read).
pub async fn read(
    client: &Client,
    sql: &Statements,
    state: &mut TxState,
    reads: Vec<Read>,
) -> Result<Vec<Found>, PgError> {
    let lock = usize::from(state.lock);
    let answered = futures_util::future::try_join_all(
        reads
            .into_iter()
            .map(|r| Box::pin(answer(client, sql, lock, r))),
    )
    .await?;
    let mut found = Vec::with_capacity(answered.len());
    for a in answered {
        state.attempts.extend(a.attempts);
        if let Some(s) = a.schedule {
            state.schedule = Some(s);
        }
        found.push(a.found);
    }
    Ok(found)
}

async fn schedule(
    client: &Client,
    sql: &Statements,
    lock: usize,
) -> Result<ScheduleState, PgError> {
    let (pacing, holds) = futures_util::future::try_join(
        rows(client, &sql.pacing[lock], &[], "reading the pacing state"),
        rows(client, &sql.holds, &[], "reading the held lanes"),
    )
    .await?;
    let mut state = ScheduleState::default();
    for row in pacing {
        let n = |i: usize| -> u64 { u64::try_from(row.get::<_, i64>(i)).unwrap_or(0) };
        let throttle = row
            .get::<_, Option<Vec<i64>>>(4)
            .and_then(|f| {
                let f: Vec<u64> = f
                    .into_iter()
                    .map(|v| u64::try_from(v).unwrap_or(0))
                    .collect();
                <[u64; 7]>::try_from(f).ok()
            })
            .map(Throttle::from_fields)
            .unwrap_or_default();
        state.origins.push((
            row.get(0),
            OriginPace {
                credit: n(1),
                updated_at: n(2),
                paused_until: n(3),
                throttle,
            },
        ));
    }
    for row in holds {
        let id = codec::parse_id(&row.get::<_, String>(1))
            .unwrap_or_else(|_| EntryId::from_bytes([0; 16]));
        state.holds.0.push(Hold {
            lane: row.get(0),
            id,
        });
    }
    Ok(state)
}

async fn with_bodies(
    client: &Client,
    sql: &Statements,
    mut entries: Vec<Entry>,
) -> Result<Vec<Entry>, PgError> {
    if entries.is_empty() {
        return Ok(entries);
    }
    let wanted: Vec<i64> = entries.iter().map(|e| big(e.seq)).collect();
    let bodies = rows(client, &sql.bodies, &[&wanted], "reading bodies").await?;
    let mut by_seq: HashMap<i64, Vec<u8>> = bodies
        .into_iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)))
        .collect();
    for e in &mut entries {
        if let Some(b) = by_seq.remove(&big(e.seq)) {
            e.request.body = b;
        }
    }
    Ok(entries)
}

async fn answer(
    client: &Client,
    sql: &Statements,
    lock: usize,
    read: Read,
) -> Result<Answered, PgError> {
    let now = wall_ms();
    Ok(match read {
        Read::Schedule(ask) => {
            let s = schedule(client, sql, lock).await?;
            Answered {
                found: ask.reply(s.clone()),
                attempts: Vec::new(),
                schedule: Some(s),
            }
        }
        Read::Heads(ask) => {
            let statement = if ask.survey {
                &sql.heads_survey[lock]
            } else {
                &sql.heads_listed[lock]
            };
            let found = rows(client, statement, &[], "reading lane heads").await?;
            let mut heads = Vec::with_capacity(found.len());
            let mut attempts = Vec::with_capacity(found.len());
            for row in &found {
                match codec::queued(row, now) {
                    Ok(e) => {
                        attempts.push((e.seq, e.attempts));
                        heads.push(e.head());
                    }
                    Err(salvaged) => heads.push(codec::corrupt_head(&salvaged)),
                }
            }
            Answered {
                found: ask.reply(heads),
                attempts,
                schedule: None,
            }
        }
        Read::Entries(ask) => {
            let wanted = seqs(&ask.seqs);
            let found = rows(client, &sql.entries[lock], &[&wanted], "reading entries").await?;
            let entries: Vec<Entry> = found
                .iter()
                .map(|r| codec::queued(r, now).unwrap_or_else(|salvaged| *salvaged))
                .collect();
            Answered::of_entries(ask.reply(entries.clone()), &entries)
        }
        Read::Behind(ask) => {
            // Every lane's at once (pipelined on the connection).
            let asks: Vec<(i64, i64)> = ask
                .lanes
                .iter()
                .map(|b| (big(b.after), i64::try_from(b.limit).unwrap_or(i64::MAX)))
                .collect();
            let found = futures_util::future::try_join_all(ask.lanes.iter().zip(&asks).map(
                |(behind, (after, limit))| async move {
                    rows(
                        client,
                        &sql.behind[lock],
                        &[&behind.lane, after, limit],
                        "reading the entries behind a head",
                    )
                    .await
                },
            ))
            .await?;
            let mut lists = Vec::with_capacity(found.len());
            let mut seen = Vec::new();
            for rows in &found {
                let list: Vec<Option<Entry>> =
                    rows.iter().map(|r| codec::queued(r, now).ok()).collect();
                seen.extend(list.iter().flatten().map(|e| (e.seq, e.attempts)));
                lists.push(list);
            }
            Answered {
                found: ask.reply(lists),
                attempts: seen,
                schedule: None,
            }
        }
        Read::Bodies(ask) => {
            let wanted = seqs(&ask.seqs);
            let found = rows(client, &sql.bodies, &[&wanted], "reading bodies").await?;
            let bodies = found
                .into_iter()
                .filter_map(|r| {
                    let seq = u64::try_from(r.get::<_, i64>(0)).ok()?;
                    Some((seq, r.get::<_, Vec<u8>>(1)))
                })
                .collect();
            Answered::plain(ask.reply(bodies))
        }
        Read::State(ask) => {
            let state = match ask.state {
                Waiting::Pending => "pending",
                Waiting::AwaitingToken => "awaiting-token",
            };
            // One page, and one row more to learn whether more follow.
            let after = i64::try_from(ask.after).unwrap_or(i64::MAX);
            let take = i64::try_from(ask.limit.saturating_add(1)).unwrap_or(i64::MAX);
            let mut found = rows(
                client,
                &sql.state[lock],
                &[&state, &ask.origin, &after, &take],
                "reading entries by state",
            )
            .await?;
            let more = found.len() > ask.limit;
            found.truncate(ask.limit);
            let next = found
                .last()
                .and_then(|r| u64::try_from(r.get::<_, i64>(0)).ok())
                .filter(|_| more);
            let entries: Vec<Entry> = found
                .iter()
                .filter_map(|r| codec::queued(r, now).ok())
                .collect();
            Answered::of_entries(ask.reply(entries.clone(), next), &entries)
        }
        Read::Find(ask) => {
            let id = ask.id.hyphenated();
            let queued = || async {
                let found =
                    rows(client, &sql.find_queued[lock], &[&id], "finding an entry").await?;
                Ok::<_, PgError>(
                    found
                        .first()
                        .map(|r| codec::queued(r, now).unwrap_or_else(|salvaged| *salvaged)),
                )
            };
            let dead = || async {
                let found = rows(
                    client,
                    &sql.find_dead[lock],
                    &[&id],
                    "finding a dead letter",
                )
                .await?;
                Ok::<_, PgError>(found.first().map(|r| codec::dead(r, now)))
            };
            let found = match ask.among {
                Among::Queued => queued().await?,
                Among::Dead => dead().await?,
                Among::Either => match queued().await? {
                    Some(e) => Some(e),
                    None => dead().await?,
                },
            };
            let mut attempts = Vec::new();
            let found = match found {
                Some(mut e) => {
                    if !matches!(e.state, EntryState::Dead { .. }) {
                        attempts.push((e.seq, e.attempts));
                    }
                    let body = rows(client, &sql.body, &[&big(e.seq)], "reading a body").await?;
                    if let Some(row) = body.first() {
                        e.request.body = row.get(0);
                    }
                    Some(e)
                }
                None => None,
            };
            Answered {
                found: ask.reply(found),
                attempts,
                schedule: None,
            }
        }
        Read::List(ask) => {
            let limit = i64::try_from(ask.limit).unwrap_or(i64::MAX);
            let entries = match ask.among {
                Among::Dead => rows(client, &sql.list_dead, &[&limit], "listing dead letters")
                    .await?
                    .iter()
                    .map(|r| codec::dead(r, now))
                    .collect(),
                Among::Queued | Among::Either => {
                    rows(client, &sql.list_queued, &[&limit], "listing entries")
                        .await?
                        .iter()
                        .map(|r| codec::queued(r, now).unwrap_or_else(|salvaged| *salvaged))
                        .collect()
                }
            };
            Answered::plain(ask.reply(with_bodies(client, sql, entries).await?))
        }
        Read::Lane(ask) => {
            let found = rows(client, &sql.lane, &[&ask.lane], "reading a lane").await?;
            Answered::plain(ask.reply(found.first().is_some_and(|r| r.get(0))))
        }
        Read::Full(ask) => {
            let found = rows(client, &sql.queued, &[], "counting the queue").await?;
            let queued = found.first().map_or(0, |r| r.get::<_, i64>(0));
            let full = u64::try_from(queued).unwrap_or(0) >= ask.at_least as u64;
            Answered::plain(ask.reply(full))
        }
        Read::Taken(ask) => {
            let id = ask.id.hyphenated();
            let found = rows(client, &sql.taken, &[&id], "checking an id").await?;
            Answered::plain(ask.reply(found.first().is_some_and(|r| r.get(0))))
        }
        Read::LastSeq(ask) => {
            // The lane first (kept locked to the commit), then the number.
            client
                .execute(&sql.lock_lane, &[&ask.lane])
                .await
                .map_err(pg("locking a lane"))?;
            let found = rows(client, &sql.next_seq, &[], "taking a seq").await?;
            let last = found.first().map_or(0, |r| r.get::<_, i64>(0));
            Answered::plain(ask.reply(u64::try_from(last).unwrap_or(0)))
        }
        Read::Count(ask) => {
            let n = match ask.among {
                Among::Dead => rows(client, &sql.count_dead, &[], "counting dead letters").await?,
                Among::Queued | Among::Either => {
                    rows(client, &sql.queued, &[], "counting the queue").await?
                }
            };
            let n = n.first().map_or(0, |r| r.get::<_, i64>(0));
            Answered::plain(ask.reply(usize::try_from(n).unwrap_or(0)))
        }
        Read::Summaries(ask) => {
            let after = i64::try_from(ask.after).unwrap_or(i64::MAX);
            let take = i64::try_from(ask.limit.saturating_add(1)).unwrap_or(i64::MAX);
            let mut found = rows(
                client,
                &sql.summaries,
                &[&after, &take],
                "reading summaries",
            )
            .await?;
            let more = found.len() > ask.limit;
            found.truncate(ask.limit);
            let next = found
                .last()
                .and_then(|r| u64::try_from(r.get::<_, i64>(5)).ok())
                .filter(|_| more);
            let summaries = found
                .iter()
                .map(|r| codec::summary(r).unwrap_or_else(|lane| ask.unreadable(lane)))
                .collect();
            Answered::plain(ask.reply(summaries, next))
        }
    })
}

/// Carries out `writes`, in order, all sent at once.
pub async fn write(
    client: &Client,
    sql: &Statements,
    state: &mut TxState,
    writes: Vec<Write>,
) -> Result<(), PgError> {
    let now = big(wall_ms());
    let mut jobs: Vec<Job<'_>> = Vec::new();
    for w in writes {
        match w {
            Write::Add(entry) => {
                let (seq, lane, body) = (entry.seq, entry.lane.clone(), entry.request.body.clone());
                jobs.push((Outcome::Came(seq), &sql.add, Values::of(&entry).all()));
                jobs.push((
                    Outcome::Any,
                    &sql.add_body,
                    vec![Box::new(big(seq)), Box::new(body)],
                ));
                jobs.push((Outcome::Any, &sql.list_lane, vec![Box::new(lane)]));
                state.notify = true;
            }
            Write::Put(entry) => {
                let fence = state.attempts.insert(entry.seq, entry.attempts);
                let seq = entry.seq;
                let mut params = Values::of(&entry).changed();
                params.push(Box::new(fence.map(int)));
                let outcome = match fence {
                    Some(_) => Outcome::Fenced(seq),
                    None => Outcome::Any,
                };
                jobs.push((outcome, &sql.put, params));
            }
            Write::Remove(seq) => {
                let fence = state.attempts.remove(&seq);
                jobs.push((
                    Outcome::Left(seq, fence.is_some()),
                    &sql.remove,
                    vec![
                        Box::new(big(seq)),
                        Box::new(fence.map(int)),
                        Box::new(now),
                        Box::new(state.archive),
                    ],
                ));
            }
            Write::Bury(entry) => {
                let fence = state.attempts.remove(&entry.seq);
                let at = match entry.state {
                    EntryState::Dead { at } => at,
                    _ => wall_ms(),
                };
                let seq = entry.seq;
                let mut params = Values::of(&entry).all();
                params.push(Box::new(big(at)));
                params.push(Box::new(fence.map(int)));
                jobs.push((Outcome::Left(seq, fence.is_some()), &sql.bury, params));
            }
            Write::Revive(entry) => {
                let (seq, lane) = (entry.seq, entry.lane.clone());
                jobs.push((Outcome::Came(seq), &sql.revive, Values::of(&entry).all()));
                jobs.push((Outcome::Any, &sql.list_lane, vec![Box::new(lane)]));
                state.notify = true;
            }
            Write::Discard(seq) => {
                jobs.push((Outcome::Any, &sql.discard, vec![Box::new(big(seq))]));
            }
            Write::Schedule(new) => {
                let old = state.schedule.take().unwrap_or_default();
                for (origin, pace) in &new.origins {
                    if old.get(origin) == Some(pace) {
                        continue;
                    }
                    let throttle: Option<Vec<i64>> = (pace.throttle != Throttle::default())
                        .then(|| pace.throttle.fields().iter().map(|f| big(*f)).collect());
                    jobs.push((
                        Outcome::Any,
                        &sql.pace,
                        vec![
                            Box::new(origin.clone()),
                            Box::new(big(pace.credit)),
                            Box::new(big(pace.updated_at)),
                            Box::new(big(pace.paused_until)),
                            Box::new(throttle),
                        ],
                    ));
                }
                for (origin, _) in &old.origins {
                    if new.get(origin).is_none() {
                        jobs.push((Outcome::Any, &sql.unpace, vec![Box::new(origin.clone())]));
                    }
                }
                for h in &new.holds.0 {
                    if old.holds.holder(&h.lane) != Some(h.id) {
                        jobs.push((
                            Outcome::Any,
                            &sql.hold,
                            vec![Box::new(h.lane.clone()), Box::new(h.id.hyphenated())],
                        ));
                    }
                }
                for h in &old.holds.0 {
                    if new.holds.holder(&h.lane) != Some(h.id) {
                        jobs.push((
                            Outcome::Any,
                            &sql.lift,
                            vec![Box::new(h.lane.clone()), Box::new(h.id.hyphenated())],
                        ));
                    }
                }
                state.schedule = Some(new);
            }
            Write::Purge => {
                // What came before goes first, then the purge as one batch.
                run(client, state, std::mem::take(&mut jobs)).await?;
                client
                    .batch_execute(
                        "DELETE FROM queue; DELETE FROM dead; DELETE FROM bodies; \
                         DELETE FROM lanes; DELETE FROM pacing; DELETE FROM holds; \
                         UPDATE counts SET queued = 0",
                    )
                    .await
                    .map_err(pg("purging"))?;
                state.deltas = [0; STRIPES];
                state.attempts.clear();
                state.schedule = Some(ScheduleState::default());
            }
        }
    }
    run(client, state, jobs).await
}

/// One statement of a write step: what to check of its rows, the
/// statement, its parameters.
type Job<'a> = (Outcome, &'a Statement, Vec<Param>);

/// Runs a step's statements, pipelined in order, and reads their rows.
async fn run(client: &Client, state: &mut TxState, jobs: Vec<Job<'_>>) -> Result<(), PgError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let results = futures_util::future::try_join_all(jobs.iter().map(|(_, statement, params)| {
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        async move { client.query(*statement, &params).await }
    }))
    .await
    .map_err(pg("writing"))?;
    for ((outcome, _, _), rows) in jobs.into_iter().zip(results) {
        match outcome {
            Outcome::Any => {}
            Outcome::Fenced(seq) => {
                if rows.is_empty() {
                    return Err(fenced(seq));
                }
            }
            Outcome::Left(seq, was_read) => match rows.first() {
                Some(row) => {
                    state.deltas[codec::stripe(seq)] -= 1;
                    let lane: String = row.get(0);
                    if !state.emptied.contains(&lane) {
                        state.emptied.push(lane);
                    }
                }
                None if was_read => return Err(fenced(seq)),
                None => {}
            },
            Outcome::Came(seq) => {
                if !rows.is_empty() {
                    state.deltas[codec::stripe(seq)] += 1;
                }
            }
        }
    }
    Ok(())
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What a write's statement is for, to read its rows.
enum Outcome {
    /// Nothing to check.
    Any,
    /// A fenced update of an entry read at its attempt: one row, or the
    /// row changed under the transaction.
    Fenced(Seq),
    /// An entry left the queue (delivered, cancelled, buried): one row, its
    /// lane; none is a fencing failure when the entry was read.
    Left(Seq, bool),
    /// An entry came (back) into the queue: one row when it did.
    Came(Seq),
}

/// What a transaction does last, before its `COMMIT`: prunes the lanes it
/// emptied, brings the queue's length up to date (stripes in order) and
/// wakes the other instances if it added entries.
pub async fn finish(
    client: &Client,
    sql: &Statements,
    state: &mut TxState,
    channel: &str,
) -> Result<(), PgError> {
    let mut last: Vec<(&Statement, Vec<Param>)> = Vec::new();
    if !state.emptied.is_empty() {
        let lanes = std::mem::take(&mut state.emptied);
        last.push((&sql.prune, vec![Box::new(lanes)]));
    }
    for (stripe, delta) in state.deltas.iter().enumerate() {
        if *delta != 0 {
            last.push((&sql.count, vec![Box::new(stripe as i16), Box::new(*delta)]));
        }
    }
    state.deltas = [0; STRIPES];
    if state.notify {
        last.push((&sql.notify, vec![Box::new(channel.to_owned())]));
    }
    futures_util::future::try_join_all(last.iter().map(|(statement, params)| {
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        async move { client.execute(*statement, &params).await }
    }))
    .await
    .map_err(pg("finishing the transaction"))?;
    Ok(())
}

/// The error of a fenced write that found its row changed.
pub fn fenced(seq: Seq) -> PgError {
    PgError {
        kind: ErrorKind::Fenced,
        doing: "writing an entry",
        message: format!(
            "entry {seq} changed under this transaction (its lease passed to another instance); nothing was written"
        ),
    }
}
