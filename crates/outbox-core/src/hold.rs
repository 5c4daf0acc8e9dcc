//! Held lanes: a conversation never arrives with a hole.
//!
//! A lane is an ordered conversation. When its head becomes a dead letter
//! (a `403`, too many server failures, too old, a `401` run, a record that
//! could not be read), what should happen to the messages behind it? Going
//! on would deliver message 6 while message 5 sits in the dead letters,
//! and a later [`revive`](crate::queue::Revive) would deliver 5
//! after 32. So, by default, the lane **holds**: its later entries wait,
//! visibly (a [`Held`](crate::event::Event::Held) event, [`Stats::held`](crate::queue::Stats::held),
//! the intercept queues new requests of that lane instead of forwarding
//! them), until the dead letter is revived (it goes first, then the rest)
//! or discarded (the rest goes on). This is the matrix-rust-sdk send
//! queue's choice: a room wedges until the user acts.
//!
//! An app that prefers to go on sets the route's [`OnDead::Skip`]: the
//! dead letter is set aside and the lane carries on.
//!
//! # Where it lives
//!
//! The holds are part of the [`ScheduleState`](crate::pacer::ScheduleState)
//! that every store persists with the queue, so a hold is placed in the
//! same transaction that buries the head (the claim's planner or the
//! settle's schedule update) and lifted in the same transaction that
//! revives or discards the dead letter ([`Holds::lift`], called by the
//! stores). Planning skips held lanes ([`crate::scheduler::plan`]); a hold
//! whose dead letter is back at the head of its lane (revived) lifts
//! itself there.

use crate::entry::EntryId;
use alloc::{borrow::ToOwned, string::String, vec::Vec};

/// What a lane does when its head becomes a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDead {
    /// The lane waits until the dead letter is revived or discarded
    /// (default: a conversation never arrives with a hole).
    #[default]
    Hold,
    /// The lane goes on without it.
    Skip,
}

impl OnDead {
    /// Reads `hold` or `skip`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hold" => Some(Self::Hold),
            "skip" => Some(Self::Skip),
            _ => None,
        }
    }

    /// `hold` or `skip`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hold => "hold",
            Self::Skip => "skip",
        }
    }
}

/// A held lane and the dead letter that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The lane.
    pub lane: String,
    /// The dead letter it waits for.
    pub id: EntryId,
}

/// The held lanes (few: one per conversation that met a dead letter).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holds(pub Vec<Hold>);

/// The line prefix of a hold in the persisted schedule text.
const LINE: &str = "hold ";

impl Holds {
    /// The dead letter holding `lane`, if it is held.
    pub fn holder(&self, lane: &str) -> Option<EntryId> {
        self.0.iter().find(|h| h.lane == lane).map(|h| h.id)
    }

    /// Whether `lane` is held.
    pub fn is_held(&self, lane: &str) -> bool {
        self.holder(lane).is_some()
    }

    /// Holds `lane` for the dead letter `id`. A lane already held keeps its
    /// first holder (the oldest hole is the one to fill first).
    pub fn hold(&mut self, lane: &str, id: EntryId) -> bool {
        if self.is_held(lane) {
            return false;
        }
        self.0.push(Hold {
            lane: lane.to_owned(),
            id,
        });
        true
    }

    /// The held lanes and their dead letters, as
    /// [`Stats::held`](crate::queue::Stats::held) lists them.
    pub fn list(&self) -> Vec<(String, EntryId)> {
        self.0.iter().map(|h| (h.lane.clone(), h.id)).collect()
    }

    /// Lifts the hold of dead letter `id` (revived or discarded). Returns
    /// the lane it held.
    pub fn lift(&mut self, id: EntryId) -> Option<String> {
        let i = self.0.iter().position(|h| h.id == id)?;
        Some(self.0.swap_remove(i).lane)
    }

    /// Appends the persisted form: one line per hold, `hold <id> <lane>`,
    /// the lane percent-escaped (space, `%`, line breaks).
    pub fn encode_into(&self, out: &mut String) {
        for h in &self.0 {
            out.push_str(LINE);
            out.push_str(&h.id.hyphenated());
            out.push(' ');
            for c in h.lane.chars() {
                match c {
                    ' ' => out.push_str("%20"),
                    '%' => out.push_str("%25"),
                    '\n' => out.push_str("%0A"),
                    '\r' => out.push_str("%0D"),
                    c => out.push(c),
                }
            }
            out.push('\n');
        }
    }

    /// Reads one persisted line; `false` when it is not a hold line. A
    /// hold line that does not parse is kept as a hold of its lane by a
    /// nil id when the lane is readable (a hole is worse than a wait the
    /// user can see and lift by discarding), else skipped.
    pub fn decode_line(&mut self, line: &str) -> bool {
        let Some(rest) = line.strip_prefix(LINE) else {
            return false;
        };
        let (id, lane) = rest.split_once(' ').unwrap_or((rest, ""));
        let Some(lane) = unescape(lane) else {
            return true;
        };
        if lane.is_empty() {
            return true;
        }
        let id = id.parse().unwrap_or_else(|_| EntryId::from_bytes([0; 16]));
        self.hold(&lane, id);
        true
    }
}

fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "20" => ' ',
            "25" => '%',
            "0A" => '\n',
            "0D" => '\r',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    fn id(n: u8) -> EntryId {
        EntryId::from_bytes([n; 16])
    }

    #[test]
    fn a_lane_keeps_its_first_holder_and_lifts_by_id() {
        let mut h = Holds::default();
        assert!(h.hold("a", id(1)));
        assert!(!h.hold("a", id(2)));
        assert!(h.hold("b", id(3)));
        assert_eq!(h.holder("a"), Some(id(1)));
        assert_eq!(h.lift(id(2)), None);
        assert_eq!(h.lift(id(1)), Some("a".into()));
        assert!(!h.is_held("a"));
        assert!(h.is_held("b"));
    }

    #[test]
    fn holds_round_trip_with_odd_lanes() {
        let mut h = Holds::default();
        for (i, lane) in ["plain", "with space", "50%", "two\nlines", "x%20y"]
            .iter()
            .enumerate()
        {
            h.hold(lane, id(i as u8));
        }
        let mut text = String::new();
        h.encode_into(&mut text);
        let mut back = Holds::default();
        for line in text.lines() {
            assert!(back.decode_line(line), "{line}");
        }
        assert_eq!(back, h);
    }

    #[test]
    fn damaged_lines_never_panic_and_keep_what_can_be_read() {
        let mut h = Holds::default();
        for line in [
            "hold ",
            "hold x",
            "hold nonsense lane-a",
            "hold %zz %",
            "hold id %2",
        ] {
            assert!(h.decode_line(line));
        }
        assert_eq!(h.holder("lane-a"), Some(EntryId::from_bytes([0; 16])));
        assert!(!h.decode_line("https://x 1 2 3"));
    }
}
