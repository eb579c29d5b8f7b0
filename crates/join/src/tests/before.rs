//! The join as it was before the two passes, verbatim: it holds every row. The oracle of
//! `oracle.rs`, and the baseline of `examples/join_cost.rs` (which includes this file): the
//! names it uses come from the including module.

use super::*;

/// A conn.log row that may be the row of some RST.
#[derive(Debug, Clone)]
struct Candidate {
    uid: String,
    ts: Option<i64>,
    duration: Option<i64>,
    history: Option<String>,
    /// Global order of the row over all logs.
    order: u64,
}

pub fn join_before(events: &mut [ResetEvent], logs: &[PathBuf]) -> JoinReport {
    let mut report = JoinReport::default();
    let mut wanted: HashMap<(Ep, Ep), Vec<u32>> = HashMap::new();
    let mut wanted_cid: HashMap<String, Vec<u32>> = HashMap::new();
    for e in events.iter() {
        wanted
            .entry(key5((e.orig_h, e.orig_p), (e.resp_h, e.resp_p)))
            .or_default();
        wanted_cid.entry(e.community_id.clone()).or_default();
    }
    let mut cands: Vec<Candidate> = Vec::new();
    let mut order = 0u64;
    for path in logs {
        let mut lr = LogReport {
            path: path.clone(),
            ..Default::default()
        };
        // Rows read well but unusable: (line, why).
        let mut bad_rows: Vec<(u64, String)> = Vec::new();
        let stats = read_conn_log(path, |row, line| {
            order += 1;
            if let Some(p) = row.get("proto") {
                if p != "tcp" {
                    return;
                }
            }
            let cid = row.get("community_id");
            let by_cid = cid
                .as_deref()
                .and_then(|c| wanted_cid.get(c).map(|_| c.to_string()));
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
            let by_key = ends.filter(|k| wanted.contains_key(k));
            if by_cid.is_none() && by_key.is_none() {
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
            let idx = cands.len() as u32;
            cands.push(Candidate {
                uid: uid.into_owned(),
                ts: row.get("ts").and_then(|t| parse_time(&t)),
                duration: row.get("duration").and_then(|d| parse_time(&d)),
                history: row.get("history").map(|h| h.into_owned()),
                order,
            });
            if let Some(c) = by_cid {
                wanted_cid.get_mut(&c).expect("wanted").push(idx);
            }
            if let Some(k) = by_key {
                wanted.get_mut(&k).expect("wanted").push(idx);
            }
        });
        let mut malformed = stats.malformed;
        for (line, reason) in bad_rows {
            malformed.push(Malformed {
                path: path.clone(),
                line,
                reason,
            });
        }
        malformed.sort_by_key(|m| m.line);
        lr.rows = stats.rows;
        lr.malformed = malformed.len() as u64;
        lr.first_malformed = malformed.into_iter().take(20).collect();
        lr.error = stats.error;
        report.logs.push(lr);
    }
    report.candidates = cands.len() as u64;

    // Group events by rstscope's own connection (its uid), in order of first RST.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<String, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let g = *group_of.entry(e.uid.clone()).or_insert_with(|| {
            groups.push((e.uid.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    let mut used_untimed: BTreeSet<u32> = BTreeSet::new();
    let mut chosen: Vec<Option<u32>> = vec![None; events.len()];
    for (_, members) in &groups {
        let first = &events[members[0]];
        let list: &[u32] = match wanted_cid.get(&first.community_id) {
            Some(v) if !v.is_empty() => v,
            _ => wanted
                .get(&key5(
                    (first.orig_h, first.orig_p),
                    (first.resp_h, first.resp_p),
                ))
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        };
        if list.is_empty() {
            continue;
        }
        let mut untimed_needed = false;
        for &m in members {
            let ts = events[m].ts_ns;
            let mut best: Option<u32> = None;
            for &ci in list {
                let c = &cands[ci as usize];
                let Some(start) = c.ts else { continue };
                // Saturating: ts and duration come from the log and may be anything.
                let end = start
                    .saturating_add(c.duration.unwrap_or(0).max(0))
                    .saturating_add(CLOSE_DELAY_NS);
                if start <= ts.saturating_add(TS_SLACK_NS) && ts <= end.saturating_add(TS_SLACK_NS)
                {
                    let better = match best {
                        None => true,
                        Some(b) => {
                            let bc = &cands[b as usize];
                            (start, std::cmp::Reverse(c.order))
                                > (bc.ts.unwrap_or(i64::MIN), std::cmp::Reverse(bc.order))
                        }
                    };
                    if better {
                        best = Some(ci);
                    }
                }
            }
            match best {
                Some(b) => chosen[m] = Some(b),
                None => untimed_needed = true,
            }
        }
        if untimed_needed {
            let last_history = events[*members.last().expect("non-empty")]
                .history
                .clone()
                .unwrap_or_default();
            let untimed: Vec<u32> = list
                .iter()
                .copied()
                .filter(|ci| cands[*ci as usize].ts.is_none() && !used_untimed.contains(ci))
                .collect();
            let continues = |ci: &u32| {
                cands[*ci as usize].history.as_deref().is_some_and(|h| {
                    h.strip_prefix(last_history.as_str())
                        .is_some_and(|rest| !rest.contains(['R', 'r']))
                })
            };
            let has_rst = |ci: &u32| {
                cands[*ci as usize]
                    .history
                    .as_deref()
                    .is_some_and(|h| h.contains(['R', 'r']))
            };
            let pick = untimed
                .iter()
                .copied()
                .find(continues)
                .or_else(|| untimed.iter().copied().find(has_rst))
                .or_else(|| untimed.first().copied());
            if let Some(ci) = pick {
                used_untimed.insert(ci);
                for &m in members {
                    if chosen[m].is_none() {
                        chosen[m] = Some(ci);
                    }
                }
            }
        }
    }
    for (i, e) in events.iter_mut().enumerate() {
        match chosen[i] {
            Some(ci) => {
                let c = &cands[ci as usize];
                e.uid = c.uid.clone();
                report.matched += 1;
                let agg = report.joined.entry(c.uid.clone()).or_default();
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
            }
            None => report.unmatched += 1,
        }
    }
    report
}
