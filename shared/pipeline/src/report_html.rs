//! The report as one self-contained HTML page: inline styles, charts drawn
//! here as inline SVG, no scripts, fonts or anything fetched.

use std::fmt::Write;

use crate::report::{Percentiles, Report, duration};
use crate::stats::Proportion;

/// The sections every page has, by element id, in order.
pub const SECTIONS: [&str; 10] = [
    "volume",
    "peak-hours",
    "resolution",
    "response-times",
    "sla",
    "satisfaction",
    "top-questions",
    "unanswered",
    "least-helpful",
    "experiments",
];

const PALETTE: [&str; 8] = [
    "#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626", "#ca8a04", "#4b5563",
];

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f5f6f8;color:#1f2937}
header{background:#1e293b;color:#fff;padding:20px 32px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#cbd5e1}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px;padding:16px 32px}
section{background:#fff;border-radius:8px;padding:16px 20px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{font-size:16px;margin:0 0 12px}
.wide{grid-column:1/-1}
.kpis{display:flex;gap:24px;flex-wrap:wrap}
.kpi b{display:block;font-size:26px}.kpi span{color:#6b7280;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e5e7eb;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#6b7280;font-style:italic}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
svg text{font-size:10px;fill:#4b5563}
";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ch => out.push(ch),
        }
    }
    out
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

fn interval(p: &Proportion) -> String {
    match p.ci95 {
        Some([lo, hi]) => format!("{:.0}–{:.0}%", lo * 100.0, hi * 100.0),
        None => "–".to_owned(),
    }
}

fn times(p: &Percentiles) -> (String, String) {
    (
        p.median.map_or_else(|| "–".to_owned(), duration),
        p.p90.map_or_else(|| "–".to_owned(), duration),
    )
}

/// The page.
pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let r = report;
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Switchboard report {from} – {to}</title><style>{STYLE}</style></head><body>\
         <header><h1>Switchboard report</h1><p>{from} to {to} ({days} days, UTC) · \
         {conversations} conversations · {messages} customer messages</p></header><main>",
        from = escape(&r.period.from),
        to = escape(&r.period.to),
        days = r.period.days,
        conversations = r.conversations,
        messages = r.customer_messages,
    );
    volume(&mut page, r);
    heat_map(&mut page, r);
    resolution(&mut page, r);
    response_times(&mut page, r);
    sla(&mut page, r);
    satisfaction(&mut page, r);
    top_questions(&mut page, r);
    unanswered(&mut page, r);
    least_helpful(&mut page, r);
    experiments(&mut page, r);
    page.push_str("</main></body></html>\n");
    page
}

fn open(page: &mut String, id: &str, title: &str, wide: bool) {
    let _ = write!(
        page,
        "<section id=\"{id}\"{}><h2>{}</h2>",
        if wide { " class=\"wide\"" } else { "" },
        escape(title)
    );
}

fn empty(page: &mut String, text: &str) {
    let _ = write!(page, "<p class=\"empty\">{}</p>", escape(text));
}

/// Stacked bars of customer messages per day, one colour per channel.
fn volume(page: &mut String, r: &Report) {
    open(page, "volume", "Volume by channel and day", true);
    if r.volume.is_empty() {
        empty(page, "No customer messages in the period.");
        page.push_str("</section>");
        return;
    }
    let mut channels: Vec<&String> = r.volume.iter().flat_map(|d| d.by_channel.keys()).collect();
    channels.sort();
    channels.dedup();
    let colour = |channel: &str| {
        let i = channels.iter().position(|c| *c == channel).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let max = r.volume.iter().map(|d| d.total).max().unwrap_or(1).max(1);
    let (height, bar_area) = (160.0, 140.0);
    let slot = (900.0 / r.volume.len() as f64).clamp(8.0, 60.0);
    let width = 40.0 + slot * r.volume.len() as f64;
    let _ = write!(
        page,
        "<svg role=\"img\" aria-label=\"messages per day\" width=\"{width:.0}\" height=\"{}\" viewBox=\"0 0 {width:.0} {}\">",
        height + 30.0,
        height + 30.0
    );
    let _ = write!(
        page,
        "<text x=\"0\" y=\"12\">{max}</text><line x1=\"34\" y1=\"{y}\" x2=\"{width:.0}\" y2=\"{y}\" stroke=\"#d1d5db\"/>",
        y = height
    );
    for (i, day) in r.volume.iter().enumerate() {
        let x = 40.0 + slot * i as f64;
        let mut y = height;
        for (channel, n) in &day.by_channel {
            let h = bar_area * *n as f64 / max as f64;
            y -= h;
            let _ = write!(
                page,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {}: {n}</title></rect>",
                slot * 0.8,
                colour(channel),
                escape(&day.date),
                escape(channel)
            );
        }
        if r.volume.len() <= 14 || i % (r.volume.len() / 7).max(1) == 0 {
            let _ = write!(
                page,
                "<text x=\"{x:.1}\" y=\"{:.0}\">{}</text>",
                height + 14.0,
                escape(day.date.get(5..).unwrap_or(&day.date))
            );
        }
    }
    page.push_str("</svg><div class=\"legend\">");
    for channel in &channels {
        let _ = write!(
            page,
            "<span><i style=\"background:{}\"></i>{}</span>",
            colour(channel),
            escape(channel)
        );
    }
    page.push_str("</div></section>");
}

/// Weekday × hour grid, darker where more customers write.
fn heat_map(page: &mut String, r: &Report) {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    open(page, "peak-hours", "Peak hours (weekday × hour, UTC)", true);
    let max = r
        .messages_by_weekday_hour_utc
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let cell = 26.0;
    let (width, height) = (40.0 + 24.0 * cell, 20.0 + 7.0 * cell);
    let _ = write!(
        page,
        "<svg role=\"img\" aria-label=\"messages by weekday and hour\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">"
    );
    for hour in (0..24).step_by(3) {
        let _ = write!(
            page,
            "<text x=\"{:.0}\" y=\"12\">{hour:02}</text>",
            40.0 + hour as f64 * cell
        );
    }
    for (d, hours) in r.messages_by_weekday_hour_utc.iter().enumerate() {
        let y = 20.0 + d as f64 * cell;
        let _ = write!(
            page,
            "<text x=\"0\" y=\"{:.0}\">{}</text>",
            y + 17.0,
            DAYS[d]
        );
        for (h, n) in hours.iter().enumerate() {
            let opacity = if *n == 0 {
                0.04
            } else {
                0.15 + 0.85 * *n as f64 / max as f64
            };
            let _ = write!(
                page,
                "<rect x=\"{:.0}\" y=\"{y:.0}\" width=\"{:.0}\" height=\"{:.0}\" rx=\"3\" fill=\"#2563eb\" fill-opacity=\"{opacity:.2}\"><title>{} {h:02}:00 – {n}</title></rect>",
                40.0 + h as f64 * cell,
                cell - 2.0,
                cell - 2.0,
                DAYS[d]
            );
        }
    }
    page.push_str("</svg>");
    let _ = write!(
        page,
        "<p>Busiest: <b>{}</b></p></section>",
        escape(r.peak_slot_utc.as_deref().unwrap_or("–"))
    );
}

/// A horizontal bar for a share, with its label.
fn bar(page: &mut String, label: &str, rate: Option<f64>, colour: &str) {
    let width = (rate.unwrap_or_default().clamp(0.0, 1.0) * 300.0).round();
    let _ = write!(
        page,
        "<div><svg width=\"420\" height=\"22\" viewBox=\"0 0 420 22\" role=\"img\" aria-label=\"{label}\">\
         <rect x=\"0\" y=\"4\" width=\"300\" height=\"14\" rx=\"3\" fill=\"#e5e7eb\"/>\
         <rect x=\"0\" y=\"4\" width=\"{width}\" height=\"14\" rx=\"3\" fill=\"{colour}\"/>\
         <text x=\"308\" y=\"16\">{label} {}</text></svg></div>",
        percent(rate),
        label = escape(label)
    );
}

fn resolution(page: &mut String, r: &Report) {
    open(page, "resolution", "Bot resolution and escalation", false);
    let _ = write!(
        page,
        "<div class=\"kpis\"><div class=\"kpi\"><b>{}</b><span>conversations</span></div>\
         <div class=\"kpi\"><b>{}</b><span>bot answers</span></div>\
         <div class=\"kpi\"><b>{}</b><span>handed to a person</span></div></div>",
        r.conversations, r.answered_by_bot, r.escalated_conversations
    );
    bar(page, "bot resolution", r.self_service_rate, PALETTE[1]);
    bar(page, "escalation", r.escalation_rate, PALETTE[2]);
    bar(page, "resolved overall", r.resolution_rate, PALETTE[0]);
    page.push_str("</section>");
}

fn response_times(page: &mut String, r: &Report) {
    open(
        page,
        "response-times",
        "Response and resolution times",
        false,
    );
    page.push_str(
        "<table><tr><th></th><th class=\"n\">measured</th><th class=\"n\">median</th><th class=\"n\">p90</th></tr>",
    );
    let mut row = |label: &str, p: &Percentiles| {
        let (median, p90) = times(p);
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{median}</td><td class=\"n\">{p90}</td></tr>",
            escape(label),
            p.count
        );
    };
    row("bot reply", &r.bot_response_ms);
    row("agent reply", &r.agent_response_ms);
    for tier in &r.by_tier {
        row(
            &format!("{}: first response after hand-over", tier.tier),
            &tier.first_response_ms,
        );
        row(&format!("{}: resolution", tier.tier), &tier.resolution_ms);
    }
    page.push_str("</table></section>");
}

fn sla(page: &mut String, r: &Report) {
    open(page, "sla", "Service level met", false);
    let judged: Vec<_> = r.by_tier.iter().filter(|t| t.sla_met.total > 0).collect();
    if judged.is_empty() {
        empty(page, "No hand-over answered or past its target yet.");
    }
    for tier in judged {
        bar(
            page,
            &format!(
                "{} ({} of {})",
                tier.tier, tier.sla_met.count, tier.sla_met.total
            ),
            tier.sla_met.rate,
            PALETTE[4],
        );
    }
    let _ = write!(
        page,
        "<p>{} hand-over(s) breached the first-response target.</p></section>",
        r.sla_breaches
    );
}

fn satisfaction(page: &mut String, r: &Report) {
    let s = &r.satisfaction;
    open(page, "satisfaction", "Satisfaction and helpfulness", false);
    let _ = write!(
        page,
        "<div class=\"kpis\"><div class=\"kpi\"><b>{}</b><span>mean score (1–5)</span></div>\
         <div class=\"kpi\"><b>{}</b><span>helpful ({} votes)</span></div></div>",
        s.average
            .map_or_else(|| "–".to_owned(), |a| format!("{a:.2}")),
        percent(s.helpful_rate),
        s.helpful_votes
    );
    let max = s.distribution.iter().copied().max().unwrap_or(0).max(1);
    page.push_str(
        "<svg role=\"img\" aria-label=\"scores\" width=\"320\" height=\"130\" viewBox=\"0 0 320 130\">",
    );
    for (i, n) in s.distribution.iter().enumerate() {
        let h = 90.0 * *n as f64 / max as f64;
        let x = 10.0 + i as f64 * 60.0;
        let _ = write!(
            page,
            "<rect x=\"{x:.0}\" y=\"{:.1}\" width=\"44\" height=\"{h:.1}\" fill=\"{}\"><title>{} stars: {n}</title></rect>\
             <text x=\"{:.0}\" y=\"124\">{}★ ({n})</text>",
            105.0 - h,
            ["#dc2626", "#ea580c", "#ca8a04", "#65a30d", "#16a34a"][i],
            i + 1,
            x + 8.0,
            i + 1
        );
    }
    page.push_str("</svg></section>");
}

fn top_questions(page: &mut String, r: &Report) {
    open(page, "top-questions", "Top questions", false);
    if r.top_questions.is_empty() {
        empty(page, "The bot answered nothing from the FAQ in the period.");
    } else {
        page.push_str("<table><tr><th>FAQ entry</th><th class=\"n\">answers</th></tr>");
        for q in &r.top_questions {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                escape(q.question.as_deref().unwrap_or(&q.entry)),
                q.count
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>");
}

fn unanswered(page: &mut String, r: &Report) {
    open(page, "unanswered", "Unanswered questions", false);
    if r.unanswered_questions.is_empty() {
        empty(page, "None in the period.");
    } else {
        page.push_str(
            "<table><tr><th>question</th><th class=\"n\">not answered</th><th class=\"n\">offered a person</th><th>last seen</th></tr>",
        );
        for q in &r.unanswered_questions {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                escape(&q.question),
                q.not_answered,
                q.offered_person,
                escape(&q.last_seen)
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>");
}

fn least_helpful(page: &mut String, r: &Report) {
    open(page, "least-helpful", "Least helpful FAQ entries", false);
    if r.least_helpful.is_empty() {
        empty(page, "No \"not helpful\" votes in the period.");
    } else {
        page.push_str(
            "<table><tr><th>FAQ entry</th><th class=\"n\">not helpful</th><th class=\"n\">helpful</th></tr>",
        );
        for e in &r.least_helpful {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(e.question.as_deref().unwrap_or(&e.entry)),
                e.not_helpful,
                e.helpful
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>");
}

fn experiments(page: &mut String, r: &Report) {
    open(page, "experiments", "A/B experiments", true);
    if r.experiments.is_empty() {
        empty(page, "No experiment configured or recorded.");
    }
    for experiment in &r.experiments {
        let _ = write!(
            page,
            "<h3>{} <small>(against {})</small></h3><table><tr><th>variant</th><th class=\"n\">conversations</th>\
             <th class=\"n\">bot resolution</th><th class=\"n\">95% CI</th><th class=\"n\">p vs baseline</th>\
             <th class=\"n\">escalation</th><th class=\"n\">helpful</th><th class=\"n\">mean CSAT</th></tr>",
            escape(&experiment.experiment),
            escape(&experiment.baseline)
        );
        for v in &experiment.variants {
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&v.variant),
                v.conversations,
                percent(v.bot_resolution.rate),
                interval(&v.bot_resolution),
                v.resolution_p_value
                    .map_or_else(|| "–".to_owned(), |p| format!("{p:.3}")),
                percent(v.escalation.rate),
                percent(v.helpful.rate),
                v.csat
                    .mean
                    .map_or_else(|| "–".to_owned(), |m| format!("{m:.2}")),
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use switchboard_domain::{Experiments, SlaPolicy};

    use super::*;
    use crate::report::{ReportInput, build};

    #[test]
    fn every_section_is_on_the_page_and_text_is_escaped() {
        let (experiments, sla) = (Experiments::default(), SlaPolicy::default());
        let labels = HashMap::new();
        let mut report = build(&ReportInput {
            sessions: &[],
            feedback: &[],
            from_ms: 0,
            to_ms: 86_400_000,
            top: 5,
            sla: &sla,
            experiments: &experiments,
            labels: &labels,
        });
        report
            .unanswered_questions
            .push(crate::report::UnansweredQuestion {
                question: "<script>alert(1)</script>".into(),
                language: switchboard_domain::Language::En,
                count: 1,
                not_answered: 1,
                offered_person: 0,
                last_seen: "1970-01-01 00:00".into(),
            });
        let page = render(&report);
        for id in SECTIONS {
            assert!(page.contains(&format!("<section id=\"{id}\"")), "{id}");
        }
        assert!(!page.contains("<script"), "no scripts, and text escaped");
        assert!(page.contains("&lt;script&gt;"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing fetched"
        );
    }
}
