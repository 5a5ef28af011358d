//! The subject line and the two bodies of a digest mail, built from a
//! [`ProjectDigest`]. The text body indents finding messages under their
//! heading; the HTML body escapes every value from the ledger and keeps
//! finding messages verbatim in `<pre>` blocks.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::mail::one_line;
use super::render::{FindingEntry, JobEntry, ProjectDigest, RenderContext};

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `[crafting-table] <project> <date>: <figures>`, on one line.
pub fn subject(d: &ProjectDigest, date: NaiveDate) -> String {
    let c = &d.counts;
    let mut parts = Vec::new();
    if c.failed > 0 {
        parts.push(format!("{} failed", c.failed));
    }
    if c.new_cves > 0 {
        parts.push(plural(c.new_cves, "new CVE", "new CVEs"));
    }
    if c.new_other > 0 {
        parts.push(plural(c.new_other, "new finding", "new findings"));
    }
    if c.fixed > 0 {
        parts.push(format!("{} fixed", c.fixed));
    }
    if c.patches > 0 {
        parts.push(plural(c.patches, "patch drafted", "patches drafted"));
    }
    if parts.is_empty() {
        parts.push(if c.jobs > 0 {
            format!("{}, nothing failed", plural(c.jobs, "job", "jobs"))
        } else {
            "no changes".to_owned()
        });
    }
    one_line(&format!("[crafting-table] {} {date}: {}", d.project, parts.join(", ")))
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

fn finding_head(f: &FindingEntry) -> String {
    let mut s = format!("[{}] {} {}", f.severity.as_str(), f.kind.as_str(), one_line(&f.code));
    if let Some(loc) = f.location() {
        let _ = write!(s, " at {}", one_line(&loc));
    }
    s
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

fn duration(d: Option<f64>) -> String {
    match d {
        Some(s) if s >= 60.0 => format!("{}m {:02}s", (s / 60.0).floor(), (s % 60.0).floor()),
        Some(s) => format!("{s:.1}s"),
        None => "did not start".to_owned(),
    }
}

fn status_line(j: &JobEntry) -> String {
    let mut s = j.status.as_str().to_owned();
    if let Some(code) = j.exit_code {
        let _ = write!(s, " (exit {code})");
    }
    s
}

fn kinds(j: &JobEntry) -> String {
    if j.findings_by_kind.is_empty() {
        return "none".to_owned();
    }
    j.findings_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// The plain-text body.
pub fn text_body(d: &ProjectDigest, ctx: &RenderContext) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "crafting-table digest for {}, {}", d.project, ctx.date);
    let _ = writeln!(
        t,
        "Jobs that ended from {} to {}.",
        local(ctx.window_start, ctx.tz),
        local(ctx.window_end, ctx.tz)
    );
    t.push('\n');

    // Changes lead.
    let c = &d.changes;
    match &c.since_digest {
        Some(day) => {
            let _ = writeln!(t, "What changed since the digest of {day}:");
        }
        None => t.push_str("What changed since the jobs before this window:\n"),
    }
    let _ =
        writeln!(t, "  {} new, {} fixed, {} still open.", c.new_count, c.fixed_count, c.still_open);
    for (title, list, total) in [("New", &c.new, c.new_count), ("Fixed", &c.fixed, c.fixed_count)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(t, "  {title}:");
        for f in list {
            let _ = writeln!(t, "    - {} ({} / {})", finding_head(f), f.subproject, f.recipe);
            if let Some(fix) = &f.suggested_fix {
                let _ = writeln!(t, "      fix: {fix}");
            }
        }
        if total > list.len() {
            let _ = writeln!(t, "    ... and {} more", total - list.len());
        }
    }
    t.push('\n');

    let events: Vec<&str> = d.events.iter().map(|e| e.as_str()).collect();
    let events = if events.is_empty() { "none".to_owned() } else { events.join(", ") };
    let _ = writeln!(t, "Events: {events}");
    t.push('\n');

    let _ = writeln!(t, "Jobs ({}):", d.jobs.len());
    for j in &d.jobs {
        t.push('\n');
        let _ = writeln!(
            t,
            "  {} in {}: {}, {}",
            j.recipe,
            j.subproject,
            status_line(j),
            duration(j.duration_secs)
        );
        let _ = writeln!(t, "  {}", j.url);
        if let Some(r) = &j.reason {
            let _ = writeln!(t, "  reason: {}", one_line(r));
        }
        let _ = writeln!(t, "  findings: {}", kinds(j));
        for a in &j.advisories {
            let _ = write!(t, "  advisory {} [{}]", a.id, a.severity.as_str());
            if let Some(fix) = &a.suggested_fix {
                let _ = write!(t, ": {fix}");
            }
            t.push('\n');
        }
        if !j.top_findings.is_empty() {
            t.push_str("  top findings:\n");
            for f in &j.top_findings {
                let _ = writeln!(t, "    - {}", finding_head(f));
                t.push_str(&indent(&f.message, "        "));
            }
            let _ = writeln!(t, "  all findings: {}", j.findings_url);
        }
    }

    if !d.patches.is_empty() {
        t.push('\n');
        let _ = writeln!(t, "Patches drafted ({}):", d.patches.len());
        for p in &d.patches {
            let pa = &p.patch;
            let _ = write!(t, "  #{} {} for finding {}", pa.id, pa.status, pa.finding_id);
            if let (Some(code), Some(kind)) = (&pa.finding_code, &pa.finding_kind) {
                let _ = write!(t, " ({kind} {})", one_line(code));
            }
            t.push('\n');
            if let Some(pr) = &pa.pr_url {
                let _ = writeln!(t, "    pull request: {}", one_line(pr));
            }
            let _ = writeln!(t, "    {}", p.url);
        }
    }
    t.push('\n');
    let _ = writeln!(t, "Project: {}", d.project_url);
    t
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn link(url: &str, label: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(url), esc(label))
}

/// The HTML body; every value from the ledger is escaped.
pub fn html_body(d: &ProjectDigest, ctx: &RenderContext) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(h, "<title>{}</title></head>", esc(&d.subject));
    h.push_str("<body style=\"font-family: sans-serif\">\n");
    let _ = writeln!(h, "<h1>{} &mdash; {}</h1>", esc(&d.project), ctx.date);
    let _ = writeln!(
        h,
        "<p>Jobs that ended from {} to {}.</p>",
        esc(&local(ctx.window_start, ctx.tz)),
        esc(&local(ctx.window_end, ctx.tz))
    );

    let c = &d.changes;
    let since = match &c.since_digest {
        Some(day) => format!("since the digest of {day}"),
        None => "since the jobs before this window".to_owned(),
    };
    let _ = writeln!(h, "<h2>What changed {}</h2>", esc(&since));
    let _ = writeln!(
        h,
        "<p><strong>{} new</strong>, {} fixed, {} still open.</p>",
        c.new_count, c.fixed_count, c.still_open
    );
    for (title, list) in [("New", &c.new), ("Fixed", &c.fixed)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(h, "<h3>{title}</h3>\n<ul>");
        for f in list {
            let _ = write!(
                h,
                "<li>{} <small>({} / {})</small>",
                esc(&finding_head(f)),
                esc(&f.subproject),
                esc(&f.recipe)
            );
            if let Some(fix) = &f.suggested_fix {
                let _ = write!(h, "<br>fix: <code>{}</code>", esc(fix));
            }
            h.push_str("</li>\n");
        }
        h.push_str("</ul>\n");
    }

    let events: Vec<&str> = d.events.iter().map(|e| e.as_str()).collect();
    let _ = writeln!(h, "<p>Events: {}</p>", esc(&events.join(", ")));

    let _ = writeln!(h, "<h2>Jobs ({})</h2>", d.jobs.len());
    for j in &d.jobs {
        let _ = writeln!(
            h,
            "<h3>{} in <code>{}</code>: {}, {}</h3>",
            esc(&j.recipe),
            esc(&j.subproject),
            esc(&status_line(j)),
            esc(&duration(j.duration_secs))
        );
        let _ = writeln!(
            h,
            "<p>{} &middot; {}</p>",
            link(&j.url, &j.id),
            link(&j.findings_url, "findings")
        );
        if let Some(r) = &j.reason {
            let _ = writeln!(h, "<p>Reason: {}</p>", esc(r));
        }
        let _ = writeln!(h, "<p>Findings: {}</p>", esc(&kinds(j)));
        if !j.advisories.is_empty() {
            h.push_str("<ul>\n");
            for a in &j.advisories {
                let _ = write!(
                    h,
                    "<li>advisory <strong>{}</strong> [{}]",
                    esc(&a.id),
                    a.severity.as_str()
                );
                if let Some(fix) = &a.suggested_fix {
                    let _ = write!(h, ": <code>{}</code>", esc(fix));
                }
                h.push_str("</li>\n");
            }
            h.push_str("</ul>\n");
        }
        if !j.top_findings.is_empty() {
            h.push_str("<ol>\n");
            for f in &j.top_findings {
                // The message goes verbatim (escaped) into <pre>, line breaks kept.
                let _ = writeln!(
                    h,
                    "<li>{}\n<pre style=\"white-space: pre-wrap\">\n{}\n</pre></li>",
                    esc(&finding_head(f)),
                    esc(&f.message)
                );
            }
            h.push_str("</ol>\n");
        }
    }

    if !d.patches.is_empty() {
        let _ = writeln!(h, "<h2>Patches drafted ({})</h2>\n<ul>", d.patches.len());
        for p in &d.patches {
            let pa = &p.patch;
            let _ = write!(
                h,
                "<li>{} {} for finding {}",
                link(&p.url, &format!("#{}", pa.id)),
                esc(&pa.status),
                pa.finding_id
            );
            if let Some(pr) = &pa.pr_url {
                let _ = write!(h, " &middot; {}", link(pr, "pull request"));
            }
            h.push_str("</li>\n");
        }
        h.push_str("</ul>\n");
    }
    let _ = writeln!(h, "<p>{}</p>", link(&d.project_url, &format!("Project {}", d.project)));
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href='x'>\"&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
    }
}
