//! The join over rows streamed twice in log order, so the rows themselves are never held.
//!
//! Pass 1 ([`RstKeys::push`]) keeps per rstscope connection (uid) its first row's Community
//! ID and endpoints and its last row's history, and per row a few bytes (its ts and
//! connection, varint-coded). [`RstKeys::match_conn_logs`] then streams the conn.logs keeping
//! the candidate rows and decides each connection's fallback row. Pass 2
//! ([`Matches::apply`]) gives each row its conn.log uid and counts the joined RSTs per row.
//!
//! Why per-row data at all: a row's timed choice depends only on its ts and its connection's
//! candidate list, so pass 2 recomputes it; but whether a connection falls back to an untimed
//! row depends on whether *any* of its rows found no timed one, which can only be known once
//! the conn.logs are read — after pass 1. A delta-coded (connection, ts) stream costs 2–7
//! bytes a row, less than a list of ts per connection (a scan has one RST per connection).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hashbrown::{DefaultHashBuilder, HashTable};
use rstscope_reset::ResetEvent;

use crate::{
    key5, parse_time, read_conn_log, Ep, JoinReport, LogReport, Malformed, CLOSE_DELAY_NS, MAX_UID,
    TS_SLACK_NS,
};

/// Values numbered in order of first appearance, each stored once.
struct Interner<T> {
    values: Vec<T>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            values: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<T: Hash + Eq> Interner<T> {
    fn find<Q>(&self, value: &Q) -> Option<u32>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(value);
        self.table
            .find(hash, |&i| self.values[i as usize].borrow() == value)
            .copied()
    }

    /// The value's number, and whether it is new.
    fn intern<Q>(&mut self, value: &Q, owned: impl FnOnce(&Q) -> T) -> (u32, bool)
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(value);
        let values = &self.values;
        if let Some(&i) = self
            .table
            .find(hash, |&i| values[i as usize].borrow() == value)
        {
            return (i, false);
        }
        let i = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.values.push(owned(value));
        let (values, hasher) = (&self.values, &self.hasher);
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(values[j as usize].borrow()));
        (i, true)
    }

    fn len(&self) -> usize {
        self.values.len()
    }
}

/// Text held inline up to [`Text::INLINE`] bytes — a Zeek uid (~18), a Community ID v1 (30) —
/// and boxed beyond: a connection's keys then cost no allocation of their own.
#[derive(Clone)]
enum Text {
    Inline(u8, [u8; Text::INLINE]),
    Boxed(Box<str>),
}

impl Text {
    const INLINE: usize = 30;

    fn as_str(&self) -> &str {
        match self {
            Text::Inline(len, bytes) => {
                std::str::from_utf8(&bytes[..*len as usize]).expect("made from a str")
            }
            Text::Boxed(s) => s,
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        if s.len() <= Text::INLINE {
            let mut bytes = [0u8; Text::INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Text::Inline(s.len() as u8, bytes)
        } else {
            Text::Boxed(s.into())
        }
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// As the str it holds, so an Interner<Text> is searched with a &str.
impl Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// What pass 1 keeps of an rstscope connection: its first row's Community ID and endpoints
/// (they pick its candidate list) and its last row's history (it picks an untimed row).
#[derive(Debug, Clone, Copy)]
struct Connection {
    community_id: u32,
    endpoints: u32,
    last_history: u32,
}

/// Pass 1 of the join: fed every row once, in log order.
#[derive(Default)]
pub struct RstKeys {
    /// rstscope uid → connection number (the order of first RST).
    uids: Interner<Text>,
    connections: Vec<Connection>,
    /// Every row's Community ID and endpoints: a conn.log row having either is a candidate.
    community_ids: Interner<Text>,
    endpoints: Interner<(Ep, Ep)>,
    /// The rows' histories, `None` as `""` (the fallback reads it so); then the candidates'.
    histories: Interner<Text>,
    /// Per row: (connection number as `connections.len()` before the row minus it, zigzag ts
    /// delta from the row before), varints.
    rows: Vec<u8>,
    row_count: u64,
    last_ts: i64,
}

impl RstKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one row (in log order: the fallback of a connection follows its last row).
    pub fn push(&mut self, e: &ResetEvent) {
        let (community_id, _) = self
            .community_ids
            .intern(e.community_id.as_str(), |s| s.into());
        let ends = key5((e.orig_h, e.orig_p), (e.resp_h, e.resp_p));
        let (endpoints, _) = self.endpoints.intern(&ends, |k| *k);
        let (last_history, _) = self
            .histories
            .intern(e.history.as_deref().unwrap_or(""), |s| Text::from(s));
        let before = self.connections.len() as u64;
        let (conn, new) = self.uids.intern(e.uid.as_str(), |s| Text::from(s));
        if new {
            self.connections.push(Connection {
                community_id,
                endpoints,
                last_history,
            });
        } else {
            self.connections[conn as usize].last_history = last_history;
        }
        put_varint(&mut self.rows, before - u64::from(conn));
        let delta = e.ts_ns.wrapping_sub(self.last_ts);
        put_varint(&mut self.rows, ((delta << 1) ^ (delta >> 63)) as u64);
        self.last_ts = e.ts_ns;
        self.row_count += 1;
    }

    /// Rows taken.
    pub fn rows(&self) -> u64 {
        self.row_count
    }

    /// Bytes held by the per-row stream (the rest is per connection).
    pub fn row_bytes(&self) -> usize {
        self.rows.len()
    }

    /// Stream the conn.logs, keep the rows that may be some RST's, and decide for every
    /// connection its fallback row. The rows' matched and unmatched counts are final here.
    pub fn match_conn_logs(mut self, logs: &[PathBuf]) -> Matches {
        let mut report = JoinReport::default();
        let mut candidates: Vec<Candidate> = Vec::new();
        // (list, candidate): the Community ID lists first, then the endpoint lists.
        let mut listed: Vec<(u32, u32)> = Vec::new();
        let id_lists = self.community_ids.len() as u32;
        for path in logs {
            let log = read_candidates(
                path,
                (&self.community_ids, &self.endpoints),
                &mut self.histories,
                &mut candidates,
                &mut listed,
            );
            report.logs.push(log);
        }
        report.candidates = candidates.len() as u64;
        let lists = Lists::new(id_lists as usize + self.endpoints.len(), &listed);
        drop(listed);
        drop(self.community_ids);
        drop(self.endpoints);

        // A connection's list: its Community ID's when that has rows, else its endpoints'.
        let list_of = |c: &Connection| {
            if lists.get(c.community_id).is_empty() {
                id_lists + c.endpoints
            } else {
                c.community_id
            }
        };
        let mut untimed_rows = vec![0u64; self.connections.len()];
        for (conn, ts) in decode_rows(&self.rows) {
            let list = lists.get(list_of(&self.connections[conn]));
            if timed_choice(&candidates, list, ts).is_none() {
                untimed_rows[conn] += 1;
            }
        }
        let mut used_untimed = vec![false; candidates.len()];
        let mut unmatched = 0u64;
        let mut choices = Vec::with_capacity(self.connections.len());
        for (conn, c) in self.connections.iter().enumerate() {
            let list = list_of(c);
            let mut untimed = NONE;
            if untimed_rows[conn] > 0 {
                let untimed_candidates = Untimed {
                    candidates: &candidates,
                    histories: &self.histories,
                    used: &used_untimed,
                };
                let history = self.histories.values[c.last_history as usize].as_str();
                match untimed_candidates.choice(lists.get(list), history) {
                    Some(ci) => {
                        used_untimed[ci as usize] = true;
                        untimed = ci;
                    }
                    None => unmatched += untimed_rows[conn],
                }
            }
            choices.push(Choice { list, untimed });
        }
        report.matched = self.row_count - unmatched;
        report.unmatched = unmatched;
        Matches {
            uids: self.uids,
            choices,
            lists,
            candidates,
            report,
        }
    }
}

/// The rows of [`RstKeys::rows`] as (connection, ts).
fn decode_rows(rows: &[u8]) -> impl Iterator<Item = (usize, i64)> + '_ {
    let mut pos = 0;
    let mut count = 0usize;
    let mut ts = 0i64;
    std::iter::from_fn(move || {
        if pos >= rows.len() {
            return None;
        }
        let back = get_varint(rows, &mut pos) as usize;
        let zigzag = get_varint(rows, &mut pos);
        let delta = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
        ts = ts.wrapping_add(delta);
        let conn = count - back;
        if back == 0 {
            count += 1;
        }
        Some((conn, ts))
    })
}

/// No candidate.
const NONE: u32 = u32::MAX;

/// A conn.log row that may be the row of some RST.
#[derive(Debug)]
struct Candidate {
    uid: Text,
    /// None: masked or absent.
    start: Option<i64>,
    /// The last ts its window holds: start + duration + close delay, plus the slack.
    last: i64,
    /// Interned; [`NONE`]: unset.
    history: u32,
}

/// The candidates of each list, in the order the conn.logs have them.
struct Lists {
    /// List i is `members[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    members: Vec<u32>,
}

impl Lists {
    fn new(count: usize, listed: &[(u32, u32)]) -> Self {
        let mut offsets = vec![0u32; count + 1];
        for &(list, _) in listed {
            offsets[list as usize + 1] += 1;
        }
        for i in 0..count {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut members = vec![0u32; listed.len()];
        for &(list, ci) in listed {
            members[next[list as usize] as usize] = ci;
            next[list as usize] += 1;
        }
        Lists { offsets, members }
    }

    fn get(&self, list: u32) -> &[u32] {
        let i = list as usize;
        &self.members[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// The latest candidate that started no later than `ts` and whose window holds it (the first
/// in log order among equal starts).
fn timed_choice(candidates: &[Candidate], list: &[u32], ts: i64) -> Option<u32> {
    let mut best: Option<(i64, u32)> = None;
    for &ci in list {
        let c = &candidates[ci as usize];
        let Some(start) = c.start else { continue };
        if start <= ts.saturating_add(TS_SLACK_NS)
            && ts <= c.last
            && best.is_none_or(|(s, _)| start > s)
        {
            best = Some((start, ci));
        }
    }
    best.map(|(_, ci)| ci)
}

/// What the fallback to untimed rows reads.
struct Untimed<'a> {
    candidates: &'a [Candidate],
    histories: &'a Interner<Text>,
    /// Untimed rows already given to a connection.
    used: &'a [bool],
}

impl Untimed<'_> {
    /// The untimed row a connection falls back to: the first unused one whose history
    /// continues the connection's last history with no further reset, else the first with a
    /// reset, else the first.
    fn choice(&self, list: &[u32], last_history: &str) -> Option<u32> {
        let history = |ci: u32| match self.candidates[ci as usize].history {
            NONE => None,
            h => Some(self.histories.values[h as usize].as_str()),
        };
        let untimed = || {
            list.iter().copied().filter(|&ci| {
                self.candidates[ci as usize].start.is_none() && !self.used[ci as usize]
            })
        };
        let continues = |&ci: &u32| {
            history(ci).is_some_and(|h| {
                h.strip_prefix(last_history)
                    .is_some_and(|rest| !rest.contains(['R', 'r']))
            })
        };
        let has_rst = |&ci: &u32| history(ci).is_some_and(|h| h.contains(['R', 'r']));
        untimed()
            .find(continues)
            .or_else(|| untimed().find(has_rst))
            .or_else(|| untimed().next())
    }
}

/// Read one conn.log, keeping its candidate rows: rows with a Community ID or endpoints
/// `wanted`, added to `candidates` and, as (list, candidate), to `listed`.
fn read_candidates(
    path: &Path,
    wanted: (&Interner<Text>, &Interner<(Ep, Ep)>),
    histories: &mut Interner<Text>,
    candidates: &mut Vec<Candidate>,
    listed: &mut Vec<(u32, u32)>,
) -> LogReport {
    let (community_ids, endpoints) = wanted;
    let id_lists = community_ids.len() as u32;
    // Rows read well but unusable: (line, why).
    let mut bad_rows: Vec<(u64, String)> = Vec::new();
    let stats = read_conn_log(path, |row, line| {
        if let Some(p) = row.get("proto") {
            if p != "tcp" {
                return;
            }
        }
        let by_id = row
            .get("community_id")
            .and_then(|c| community_ids.find(c.as_ref()));
        let ends = (|| {
            let oh: IpAddr = row.get("id.orig_h")?.parse().ok()?;
            let op: u16 = row.get("id.orig_p")?.parse().ok()?;
            let rh: IpAddr = row.get("id.resp_h")?.parse().ok()?;
            let rp: u16 = row.get("id.resp_p")?.parse().ok()?;
            Some(key5((oh, op), (rh, rp)))
        })();
        if ends.is_none() {
            // Endpoints that are there but are no address or port (999.1.1.1, 99999999):
            // a malformed row, not one that simply has no match.
            let bad = ["id.orig_h", "id.resp_h"]
                .iter()
                .filter_map(|f| row.get(f).map(|v| (f, v)))
                .find(|(_, v)| v.parse::<IpAddr>().is_err())
                .or_else(|| {
                    ["id.orig_p", "id.resp_p"]
                        .iter()
                        .filter_map(|f| row.get(f).map(|v| (f, v)))
                        .find(|(_, v)| v.parse::<u16>().is_err())
                });
            if let Some((field, value)) = bad {
                let value: String = value.chars().take(40).collect();
                bad_rows.push((line, format!("{field} {value:?} is not valid")));
                return;
            }
        }
        let by_ends = ends.and_then(|k| endpoints.find(&k));
        if by_id.is_none() && by_ends.is_none() {
            return;
        }
        // A row without a uid (unset, or an empty cell) cannot give an RST its uid; nor can
        // one whose uid is far longer than Zeek's (~18 characters): it would be copied into
        // every row of ours it joins.
        let Some(uid) = row.get("uid").filter(|u| !u.is_empty()) else {
            return;
        };
        if uid.len() > MAX_UID {
            bad_rows.push((line, format!("a uid longer than {MAX_UID} bytes")));
            return;
        }
        let ci = u32::try_from(candidates.len()).expect("fewer than 2^32 candidate rows");
        let start = row.get("ts").and_then(|t| parse_time(&t));
        let duration = row.get("duration").and_then(|d| parse_time(&d));
        // Saturating: ts and duration come from the log and may be anything.
        let last = start
            .unwrap_or(0)
            .saturating_add(duration.unwrap_or(0).max(0))
            .saturating_add(CLOSE_DELAY_NS)
            .saturating_add(TS_SLACK_NS);
        let history = row
            .get("history")
            .map_or(NONE, |h| histories.intern(h.as_ref(), |s| Text::from(s)).0);
        candidates.push(Candidate {
            uid: uid.as_ref().into(),
            start,
            last,
            history,
        });
        if let Some(id) = by_id {
            listed.push((id, ci));
        }
        if let Some(ends) = by_ends {
            listed.push((id_lists + ends, ci));
        }
    });
    let mut malformed = stats.malformed;
    for (line, reason) in bad_rows {
        malformed.push(Malformed {
            path: path.to_path_buf(),
            line,
            reason,
        });
    }
    malformed.sort_by_key(|m| m.line);
    LogReport {
        path: path.to_path_buf(),
        rows: stats.rows,
        malformed: malformed.len() as u64,
        first_malformed: malformed.into_iter().take(20).collect(),
        error: stats.error,
    }
}

/// A connection's candidate list and the untimed row it falls back to ([`NONE`]: none).
#[derive(Debug, Clone, Copy)]
struct Choice {
    list: u32,
    untimed: u32,
}

/// Pass 2 of the join: fed the same rows again, in the same order.
pub struct Matches {
    uids: Interner<Text>,
    choices: Vec<Choice>,
    lists: Lists,
    candidates: Vec<Candidate>,
    report: JoinReport,
}

impl Matches {
    /// Give the row the uid of its conn.log row, if it has one, and count it in that row's
    /// aggregate. Returns whether it had one.
    pub fn apply(&mut self, e: &mut ResetEvent) -> bool {
        let Some(conn) = self.uids.find(e.uid.as_str()) else {
            return false;
        };
        let choice = self.choices[conn as usize];
        let list = self.lists.get(choice.list);
        let ci = match timed_choice(&self.candidates, list, e.ts_ns) {
            Some(ci) => ci,
            None if choice.untimed != NONE => choice.untimed,
            None => return false,
        };
        let uid = self.candidates[ci as usize].uid.as_str();
        e.uid.clear();
        e.uid.push_str(uid);
        let joined = &mut self.report.joined;
        let agg = match joined.get_mut(uid) {
            Some(agg) => agg,
            None => joined.entry(uid.to_string()).or_default(),
        };
        if agg.count == 0 {
            agg.first_ts = e.ts_ns;
        }
        if agg.first_payload.is_none() {
            agg.first_payload = e.payload.clone();
        }
        agg.count += 1;
        if let Some(cause) = &e.cause {
            agg.causes.insert(cause.to_string());
        }
        agg.injected |= e.injected == Some(true);
        if let Some(ev) = &e.evidence {
            agg.evidence.extend(ev.iter().copied());
        }
        true
    }

    /// What the join did: the logs read and the rows' counts from the start, the joined
    /// aggregates as far as rows were applied.
    pub fn report(&self) -> &JoinReport {
        &self.report
    }

    pub fn into_report(self) -> JoinReport {
        self.report
    }
}

#[cfg(test)]
mod tests;
