//! How the UI shows two kinds of stored value to a person, one definition each:
//! - a timestamp (stored as RFC 3339 text) as `<time datetime="…" title="exact time">3 minutes
//!   ago</time>`, rendered on the server so it reads right without JavaScript (`app.js` only
//!   turns the title into the browser's own time zone);
//! - a status (`pending_review`, `running`, a log level, a call's outcome…) as a badge in words
//!   with a colour class for its tone.
//!
//! Templates use them as the filters `|when` and `|badge` (each page module imports
//! `filters`); their output is built here with every stored character escaped.

use std::fmt;

use chrono::{DateTime, Utc};

use super::render::escape;
use crate::activity::status_words;

/// A stored timestamp, shown relative to `now`. Text that is not RFC 3339 is shown as it is
/// (escaped), without a `<time>` element.
pub struct When {
    raw: String,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
}

impl When {
    pub fn new(raw: &str, now: DateTime<Utc>) -> When {
        When {
            raw: raw.to_owned(),
            at: DateTime::parse_from_rfc3339(raw.trim())
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            now,
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        match self.at {
            Some(at) => {
                out.push_str("<time datetime=\"");
                escape(&self.raw, &mut out);
                out.push_str("\" title=\"");
                escape(&exact(at), &mut out);
                out.push_str("\">");
                escape(&relative(at, self.now), &mut out);
                out.push_str("</time>");
            }
            None => escape(&self.raw, &mut out),
        }
        f.write_str(&out)
    }
}

/// The exact time in UTC, to the second (the hover text; the script shows it in local time).
pub fn exact(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "just now", "3 minutes ago", "in 2 days", "1 year ago": the largest whole unit, rounded
/// down, so a time never reads as further away than it is.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    let past = seconds >= 0;
    let span = seconds.unsigned_abs();
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    if span < 45 {
        return "just now".to_owned();
    }
    let (count, unit) = match span {
        s if s < HOUR => ((s / MINUTE).max(1), "minute"),
        s if s < DAY => (s / HOUR, "hour"),
        s if s < 30 * DAY => (s / DAY, "day"),
        s if s < 365 * DAY => (s / (30 * DAY), "month"),
        s => (s / (365 * DAY), "year"),
    };
    let plural = if count == 1 { "" } else { "s" };
    if past {
        format!("{count} {unit}{plural} ago")
    } else {
        format!("in {count} {unit}{plural}")
    }
}

/// A dashboard time bucket (a stored timestamp cut to its hour or ten minutes, such as
/// `2026-11-22T03:5`) as "2026-11-22 03:50 UTC (3 hours ago)" for the chart's hover text.
pub fn bucket_label(bucket: &str) -> String {
    let completed = match bucket.len() {
        15 => format!("{bucket}0:00Z"),
        13 => format!("{bucket}:00:00Z"),
        10 => format!("{bucket}T00:00:00Z"),
        _ => bucket.to_owned(),
    };
    match DateTime::parse_from_rfc3339(&completed) {
        Ok(at) => {
            let at = at.with_timezone(&Utc);
            format!(
                "{} ({})",
                at.format("%Y-%m-%d %H:%M UTC"),
                relative(at, Utc::now())
            )
        }
        Err(_) => bucket.to_owned(),
    }
}

/// The tone of a badge: its CSS class (`badge ok|bad|wait|plain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Ok,
    Bad,
    Wait,
    Plain,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Ok => "ok",
            Tone::Bad => "bad",
            Tone::Wait => "wait",
            Tone::Plain => "plain",
        }
    }
}

/// The tone of every status the UI shows as a badge (its words come from
/// `activity::status_words`, the same words the activity log's messages use).
pub fn status_tone(status: &str) -> Tone {
    match status {
        "approved" | "running" | "active" | "ok" | "healthy" | "delivered" => Tone::Ok,
        "rejected" | "revoked" | "error" | "unavailable" | "failed" => Tone::Bad,
        "draft" | "pending_review" | "pending" | "pending_approval" | "stopped" | "warning"
        | "none" => Tone::Wait,
        _ => Tone::Plain,
    }
}

/// A status as `<span class="badge …">words</span>`.
pub struct Badge(pub String);

impl fmt::Display for Badge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        out.push_str("<span class=\"badge ");
        out.push_str(status_tone(&self.0).class());
        out.push_str("\">");
        escape(&status_words(&self.0), &mut out);
        out.push_str("</span>");
        f.write_str(&out)
    }
}

/// The template filters. Their output is HTML built above (every stored character escaped), so
/// it is marked safe for askama.
pub mod filters {
    use std::fmt::Display;

    use askama::filters::Safe;

    use super::{Badge, When};

    /// `{{ stored_timestamp|when }}`
    #[askama::filter_fn]
    pub fn when<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<Safe<When>> {
        Ok(Safe(When::new(&value.to_string(), chrono::Utc::now())))
    }

    /// `{{ status|badge }}`
    #[askama::filter_fn]
    pub fn badge<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<Safe<Badge>> {
        Ok(Safe(Badge(value.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T17:08:07.476008Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn times_read_relative_in_both_directions() {
        let now = now();
        for (offset, expected) in [
            (Duration::seconds(0), "just now"),
            (Duration::seconds(-20), "just now"),
            (Duration::seconds(50), "1 minute ago"),
            (Duration::minutes(3), "3 minutes ago"),
            (Duration::minutes(61), "1 hour ago"),
            (Duration::hours(23), "23 hours ago"),
            (Duration::hours(49), "2 days ago"),
            (Duration::days(-2), "in 2 days"),
            (Duration::days(-2) - Duration::hours(5), "in 2 days"),
            (Duration::days(75), "2 months ago"),
            (Duration::days(800), "2 years ago"),
        ] {
            assert_eq!(relative(now - offset, now), expected, "{offset}");
        }
    }

    #[test]
    fn a_stored_time_becomes_a_time_element_with_the_exact_time() {
        let raw = "2026-12-01T17:05:07.476008Z";
        let html = When::new(raw, now()).to_string();
        assert_eq!(
            html,
            "<time datetime=\"2026-12-01T17:05:07.476008Z\" title=\"2026-12-01 17:05:07 UTC\">3 minutes ago</time>"
        );
        // Not a timestamp: shown as text, escaped.
        assert_eq!(
            When::new("<b>soon</b>", now()).to_string(),
            "&lt;b&gt;soon&lt;/b&gt;"
        );
    }

    #[test]
    fn chart_buckets_read_as_times() {
        assert!(bucket_label("2026-11-22T03:5").starts_with("2026-11-22 03:50 UTC ("));
        assert!(bucket_label("2026-11-22T03").starts_with("2026-11-22 03:00 UTC ("));
        assert_eq!(bucket_label("odd"), "odd");
    }

    #[test]
    fn every_stored_status_reads_as_words() {
        // Every value the schema's CHECK constraints allow (servers, tool versions, requests,
        // sources, activity levels).
        for status in [
            "stopped",
            "running",
            "draft",
            "pending_review",
            "approved",
            "rejected",
            "revoked",
            "pending",
            "pending_approval",
            "active",
            "error",
            "info",
            "warning",
        ] {
            let words = status_words(status);
            assert!(!words.contains('_'), "{status}: {words}");
            // Only the neutral level is plain; every state has a tone.
            assert_eq!(
                status_tone(status) == Tone::Plain,
                status == "info",
                "{status}"
            );
        }
        assert_eq!(
            Badge("pending_review".into()).to_string(),
            "<span class=\"badge wait\">waiting for review</span>"
        );
        assert_eq!(
            Badge("<x>_y".into()).to_string(),
            "<span class=\"badge plain\">&lt;x&gt; y</span>"
        );
    }
}
