//! `reset_report.html`: one self-contained static page (inline SVG and CSS, no scripts, no
//! network) for a human look at a run: RSTs over time by cause, causes and the injected share,
//! top sequence numbers, refused targets, scanners, payloads and reasons, input health.
//! Every string from a capture is HTML-escaped: payloads are attacker-controlled.

use std::fmt::Write as _;

use rstscope_flow::Cause;
use rstscope_zeeklog::{escape_field, format_rotation_time};

use rstscope_reset::ResetEvent;

use crate::summary::Summary;

/// HTML-escape text (the page's only way for data to reach it).
pub fn html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const COLORS: [&str; 7] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
];

fn cause_index(name: &str) -> Option<usize> {
    Cause::ALL.iter().position(|c| c.name() == name)
}

/// A "nice" bucket width (s) giving at most ~60 buckets over `span` seconds.
fn bucket_seconds(span: i64) -> i64 {
    const NICE: [i64; 16] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400,
    ];
    for n in NICE {
        if span / n <= 60 {
            return n;
        }
    }
    86400 * (span / 86400 / 60 + 1)
}

/// RSTs per time bucket and cause, counted as rows stream past: the page's chart. The bucket
/// width follows from the span of packet time, so the first and last rows' times (in log
/// order, the least and the greatest) are known before the rows come (the sorter tracks them).
/// At most 61 buckets.
#[derive(Debug, Default)]
pub struct Timeline {
    first_ts_ns: i64,
    last_ts_ns: i64,
    /// Seconds of the first bucket's start and of a bucket's width.
    t0: i64,
    width: i64,
    /// Per bucket, per cause (in `Cause::ALL` order); empty for a run without rows.
    counts: Vec<[u64; 7]>,
}

impl Timeline {
    /// A chart for rows from `first_ts_ns` to `last_ts_ns` (`Timeline::default()`: no rows).
    pub fn new(first_ts_ns: i64, last_ts_ns: i64) -> Self {
        let t0 = first_ts_ns.div_euclid(1_000_000_000);
        let span = (last_ts_ns.div_euclid(1_000_000_000) - t0).max(1);
        let width = bucket_seconds(span);
        Timeline {
            first_ts_ns,
            last_ts_ns,
            t0,
            width,
            counts: vec![[0; 7]; (span / width + 1) as usize],
        }
    }

    /// The chart of rows held in log order.
    pub fn of(events: &[ResetEvent]) -> Self {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Timeline::default();
        };
        let mut t = Timeline::new(first.ts_ns, last.ts_ns);
        for e in events {
            t.push_event(e);
        }
        t
    }

    /// Count a row at `ts_ns` of `cause` (rows without one are not drawn). A row after the
    /// span is drawn in the last bucket; one before it (rows out of log order) where the page
    /// always drew it: within a bucket's width, in the first, else in the last.
    pub fn push(&mut self, ts_ns: i64, cause: Option<Cause>) {
        let (Some(cause), n @ 1..) = (cause, self.counts.len()) else {
            return;
        };
        let b = ((ts_ns.div_euclid(1_000_000_000) - self.t0) / self.width) as usize;
        let ci = Cause::ALL.iter().position(|c| *c == cause).unwrap_or(0);
        self.counts[b.min(n - 1)][ci] += 1;
    }

    /// Count a row.
    pub fn push_event(&mut self, e: &ResetEvent) {
        let cause = e
            .cause
            .as_deref()
            .and_then(cause_index)
            .map(|i| Cause::ALL[i]);
        self.push(e.ts_ns, cause);
    }

    /// The chart as inline SVG.
    fn svg(&self) -> String {
        if self.counts.is_empty() {
            return "<p>No RSTs.</p>".to_string();
        }
        let (counts, n, first, last, width) = (
            &self.counts,
            self.counts.len(),
            self.first_ts_ns,
            self.last_ts_ns,
            self.width,
        );
        let max = counts
            .iter()
            .map(|c| c.iter().sum::<u64>())
            .max()
            .unwrap_or(1)
            .max(1);
        let (w, h, left, bottom) = (900.0, 260.0, 50.0, 30.0);
        let bw = (w - left) / n as f64;
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" role="img" aria-label="RSTs over time by cause">"#,
            h + bottom
        );
        for (i, c) in counts.iter().enumerate() {
            let mut y = h;
            for (k, v) in c.iter().enumerate() {
                if *v == 0 {
                    continue;
                }
                let bh = *v as f64 / max as f64 * (h - 10.0);
                y -= bh;
                let _ = write!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    left + i as f64 * bw,
                    y,
                    (bw - 1.0).max(1.0),
                    bh,
                    COLORS[k],
                    Cause::ALL[k].name(),
                    v
                );
            }
        }
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{h}" x2="{w}" y2="{h}" stroke="#333"/><text x="0" y="14" font-size="12">{max}</text><text x="0" y="{h}" font-size="12">0</text><text x="{left}" y="{}" font-size="12">{}</text><text x="{}" y="{}" font-size="12" text-anchor="end">{} (bucket {}s, UTC)</text></svg>"##,
            h + 20.0,
            html(&format_rotation_time(first)),
            w,
            h + 20.0,
            html(&format_rotation_time(last)),
            width
        );
        svg
    }
}

fn bars(items: &[(String, u64)], color: &str) -> String {
    if items.is_empty() {
        return "<p class=\"none\">none</p>".to_string();
    }
    let max = items.iter().map(|x| x.1).max().unwrap_or(1).max(1);
    let mut s = String::from("<table class=\"bars\">");
    for (label, n) in items {
        // long payloads are cut for display (the logs have them whole)
        let label = match label.char_indices().nth(80) {
            Some((i, _)) => format!("{}…", &label[..i]),
            None => label.clone(),
        };
        let pct = *n as f64 / max as f64 * 100.0;
        let _ = write!(
            s,
            r#"<tr><td class="label">{}</td><td class="bar"><div style="width:{:.1}%;background:{}"></div></td><td class="n">{}</td></tr>"#,
            html(&label),
            pct,
            color,
            n
        );
    }
    s.push_str("</table>");
    s
}

fn top_strings(v: &serde_json::Value, key: &str) -> Vec<(String, u64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x[key]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x[key].to_string()),
                        x["count"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Seconds as the summary writes them ("1234.567890") to nanoseconds.
fn summary_ts(v: &serde_json::Value) -> Option<i64> {
    rstscope_join::parse_time(v.as_str()?)
}

/// The page for a run's events (in log order) and its summary.
pub fn render(events: &[ResetEvent], s: &Summary) -> String {
    render_page(&Timeline::of(events), s)
}

/// The page for a run's chart of rows and its summary. Everything else it shows comes from
/// the summary's JSON, so `rstscope merge` writes the same page as one run over everything.
pub fn render_page(timeline: &Timeline, s: &Summary) -> String {
    let j = &s.json;
    let files: &[serde_json::Value] = j["files"].as_array().map_or(&[], Vec::as_slice);
    let first_ts = files
        .iter()
        .filter_map(|f| summary_ts(&f["first_ts"]))
        .min();
    let last_ts = files.iter().filter_map(|f| summary_ts(&f["last_ts"])).max();
    let count = |k: &str| j[k].as_u64().unwrap_or(0);
    let mut page = String::from(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>rstscope report</title><style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;text-align:left}
.bars{width:100%}.bars .label{width:40%;font-family:monospace;word-break:break-all}.bars .bar{width:50%}
.bars .bar div{height:12px}.bars .n{text-align:right}.legend span{display:inline-block;margin-right:14px;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:24px}.err{color:#b00}.none{color:#888}
</style></head><body>"#,
    );
    let _ = write!(
        page,
        "<h1>rstscope: {} RSTs, {} injected</h1><p>{} files, {} packets, {} connections, {} evicted by the cap; packet time {} to {} UTC.</p>",
        s.rsts,
        s.injected,
        files.len(),
        count("packets"),
        count("connections"),
        count("connections_evicted"),
        html(&first_ts.map(format_rotation_time).unwrap_or_default()),
        html(&last_ts.map(format_rotation_time).unwrap_or_default()),
    );
    page.push_str("<h2>RSTs over time by cause</h2><div class=\"legend\">");
    for (k, c) in Cause::ALL.iter().enumerate() {
        let _ = write!(
            page,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            COLORS[k],
            c.name()
        );
    }
    page.push_str("</div>");
    page.push_str(&timeline.svg());

    let causes: Vec<(String, u64)> = s
        .by_cause
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let injected = vec![
        ("injected".to_string(), s.injected),
        ("not injected".to_string(), s.rsts - s.injected),
    ];
    let _ = write!(
        page,
        "<div class=\"grid\"><div><h2>Causes</h2>{}</div><div><h2>Injected share</h2>{}</div></div>",
        bars(&causes, COLORS[0]),
        bars(&injected, COLORS[2])
    );
    let seqs: Vec<(String, u64)> = s.top_seq.iter().map(|(q, n)| (q.to_string(), *n)).collect();
    let _ = write!(
        page,
        "<div class=\"grid\"><div><h2>Top RST sequence numbers</h2>{}</div><div><h2>Top refused targets</h2>{}</div></div>",
        bars(&seqs, COLORS[3]),
        bars(&s.top_targets, COLORS[1])
    );
    let _ = write!(
        page,
        "<div class=\"grid\"><div><h2>Top sources of refused / half-open attempts</h2>{}</div><div><h2>Top payloads</h2>{}</div></div>",
        bars(&s.top_scanners, COLORS[4]),
        bars(&top_strings(&s.json["top_payloads"], "payload"), COLORS[5])
    );
    let _ = write!(
        page,
        "<h2>Top structured reasons</h2>{}",
        bars(&top_strings(&s.json["top_reasons"], "reason"), COLORS[6])
    );
    if let Some(note) = crate::summary::approximate_note(s) {
        let _ = write!(page, "<p class=\"none\">{}</p>", html(&note));
    }

    page.push_str("<h2>Input health</h2><table><tr><th>file</th><th>sensor</th><th>packets</th><th>RSTs</th><th>unknown link types</th><th>status</th></tr>");
    for f in files {
        let lts: Vec<String> = f["unknown_linktypes"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}: {v}")).collect())
            .unwrap_or_default();
        let status = match f["error"].as_str() {
            Some(e) => format!("<span class=\"err\">{}</span>", html(e)),
            None => "ok".to_string(),
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            // The summary's text of the name back to its bytes, escaped as the log escapes it.
            html(&escape_field(&crate::name_from_text(
                f["source"].as_str().unwrap_or(""),
            ))),
            html(f["sensor"].as_str().unwrap_or("-")),
            f["packets"].as_u64().unwrap_or(0),
            f["rsts"].as_u64().unwrap_or(0),
            html(&lts.join(", ")),
            status
        );
    }
    page.push_str("</table><p class=\"none\">Generated by rstscope; all times are packet times.</p></body></html>\n");
    page
}

#[cfg(test)]
mod tests;
