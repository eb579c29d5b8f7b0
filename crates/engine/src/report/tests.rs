use super::*;

use proptest::prelude::*;

use crate::summary::tests::{arb_events, inputs};

// The page as `render` made it before the timeline streamed: the oracle.

fn oracle_timeline(events: &[ResetEvent]) -> String {
    let (Some(first), Some(last)) = (
        events.first().map(|e| e.ts_ns),
        events.last().map(|e| e.ts_ns),
    ) else {
        return "<p>No RSTs.</p>".to_string();
    };
    let t0 = first.div_euclid(1_000_000_000);
    let span = (last.div_euclid(1_000_000_000) - t0).max(1);
    let width = bucket_seconds(span);
    let n = (span / width + 1) as usize;
    let mut counts = vec![[0u64; 7]; n];
    for e in events {
        let b = ((e.ts_ns.div_euclid(1_000_000_000) - t0) / width) as usize;
        if let Some(ci) = e.cause.as_deref().and_then(cause_index) {
            counts[b.min(n - 1)][ci] += 1;
        }
    }
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

fn oracle_render(events: &[ResetEvent], s: &Summary) -> String {
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
    page.push_str(&oracle_timeline(events));

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn page_is_the_oracles(events in arb_events(300)) {
        let s = crate::summary::from_parts(&events, inputs());
        prop_assert_eq!(render(&events, &s), oracle_render(&events, &s));
    }

    /// Rows streamed in log order into a chart made from the least and greatest times.
    #[test]
    fn streamed_page_is_the_oracles(mut events in arb_events(300)) {
        events.sort_by(ResetEvent::log_order);
        let mut builder = crate::summary::SummaryBuilder::default();
        let mut timeline = match (events.iter().map(|e| e.ts_ns).min(), events.iter().map(|e| e.ts_ns).max()) {
            (Some(first), Some(last)) => Timeline::new(first, last),
            _ => Timeline::default(),
        };
        for e in &events {
            builder.push(e);
            timeline.push_event(e);
        }
        let s = builder.finish(inputs());
        prop_assert_eq!(render_page(&timeline, &s), oracle_render(&events, &s));
    }
}

#[test]
fn approximate_lists_are_said_on_the_page_and_in_the_table() {
    let events: Vec<ResetEvent> = (0..5u16)
        .map(|p| {
            let mut e = crate::summary::tests::refused_scan(1).next().unwrap();
            e.resp_p = p;
            e
        })
        .collect();
    let mut builder = crate::summary::SummaryBuilder::with_capacity(2, 1);
    for e in &events {
        builder.push(e);
    }
    let s = builder.finish(inputs());
    let note = "approximate top lists (more distinct keys than held): refused targets low by \
        at most 2";
    assert_eq!(crate::summary::approximate_note(&s).unwrap(), note);
    assert!(
        render_page(&Timeline::of(&events), &s).contains(&format!("<p class=\"none\">{note}</p>"))
    );
    assert!(crate::summary::table(&s).ends_with(&format!("{note}\n")));
}

#[test]
fn escapes_html() {
    assert_eq!(
        html("<script>alert('x')</script>&\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
    );
}

#[test]
fn summary_times() {
    let t = |s: &str| summary_ts(&serde_json::json!(s));
    assert_eq!(t("1234.567890"), Some(1_234_567_890_000));
    assert_eq!(t("-1.500000"), Some(-1_500_000_000));
    assert_eq!(t("7"), Some(7_000_000_000));
    assert_eq!(t("x"), None);
}

#[test]
fn buckets() {
    assert_eq!(bucket_seconds(30), 1);
    assert_eq!(bucket_seconds(3600), 60);
    assert_eq!(bucket_seconds(86_400), 1800);
}
