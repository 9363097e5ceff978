//! The two text formats `/metrics` speaks, and how a scraper picks one.
//!
//! The registry renders OpenMetrics 1.0 only. Prometheus negotiates it, but much of the tooling
//! around it (`promtool check metrics`, older agents, `curl` by hand) reads the Prometheus text
//! format 0.0.4, where a counter's `# HELP` and `# TYPE` carry the sample name with `_total`
//! and there is no `# UNIT`, `_created` or `# EOF`. Read as 0.0.4, an OpenMetrics page has
//! samples whose family has no help text, so [`to_prometheus_text`] rewrites the page line by
//! line rather than keeping a second encoder in step with the registry. [`Format::negotiate`]
//! picks the format from the scraper's `Accept` header: OpenMetrics only when asked for.

use std::fmt::Write as _;

/// A text exposition format of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text, what Prometheus asks for first.
    OpenMetrics,
    /// Prometheus text format 0.0.4, for everything that does not ask for OpenMetrics.
    Prometheus,
}

impl Format {
    /// The format to answer a request whose `Accept` header is `accept` with: OpenMetrics when
    /// `application/openmetrics-text` is acceptable and preferred at least as much as
    /// `text/plain`, else the Prometheus text format (also for no header or `*/*`).
    ///
    /// The header comes from the peer: malformed ranges and quality values are skipped, never
    /// an error.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let Some(q) = quality(parts) else { continue };
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(q);
            } else if ["text/plain", "text/*", "*/*"]
                .iter()
                .any(|m| media.eq_ignore_ascii_case(m))
            {
                text = text.max(q);
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of a page in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The `q` parameter among a media range's parameters: 1 when absent, `None` when malformed.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> Option<f32> {
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("q") {
            return value
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q));
        }
    }
    Some(1.0)
}

/// Rewrites an OpenMetrics text page into the Prometheus text format 0.0.4.
///
/// Per family: counters are named with `_total` (the name of their samples), `info` becomes a
/// gauge named `<name>_info`, `stateset` a gauge, `unknown` `untyped`; `# UNIT` lines and the
/// `_created` samples of counters, histograms and summaries are dropped (0.0.4 has neither);
/// exemplars are cut off, timestamps turn from seconds into milliseconds, and the page ends
/// without `# EOF`. Types 0.0.4 cannot express (`gaugehistogram`) become `untyped`.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut family = Family::default();
    for line in openmetrics.lines() {
        if line == "# EOF" {
            break;
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let mut words = meta.splitn(3, ' ');
            let (keyword, name, rest) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            if !matches!(keyword, "HELP" | "TYPE" | "UNIT") || name.is_empty() {
                continue; // a comment; 0.0.4 would take it as one too, but it says nothing
            }
            if name != family.name {
                family.flush_header(&mut out);
                family = Family {
                    name: name.to_owned(),
                    ..Family::default()
                };
            }
            match keyword {
                "HELP" => family.help = Some(rest.to_owned()),
                "TYPE" => family.kind = rest.to_owned(),
                _ => {}
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            family.flush_header(&mut out);
            if let Some(sample) = sample_line(line, &family) {
                out.push_str(&sample);
                out.push('\n');
            }
        }
    }
    family.flush_header(&mut out);
    out
}

/// The family whose metadata or samples are being read.
#[derive(Default)]
struct Family {
    /// The OpenMetrics family name.
    name: String,
    help: Option<String>,
    /// The OpenMetrics type; empty until a `# TYPE` line.
    kind: String,
    header_written: bool,
}

impl Family {
    /// Writes the family's `# HELP` and `# TYPE` lines under their 0.0.4 names, once.
    fn flush_header(&mut self, out: &mut String) {
        if self.header_written || self.name.is_empty() {
            return;
        }
        self.header_written = true;
        let (name, kind) = match self.kind.as_str() {
            "counter" if !self.name.ends_with("_total") => {
                (format!("{}_total", self.name), "counter")
            }
            "counter" => (self.name.clone(), "counter"),
            "info" => (format!("{}_info", self.name), "gauge"),
            "gauge" | "stateset" => (self.name.clone(), "gauge"),
            "histogram" => (self.name.clone(), "histogram"),
            "summary" => (self.name.clone(), "summary"),
            _ => (self.name.clone(), "untyped"),
        };
        if let Some(help) = &self.help {
            let _ = writeln!(out, "# HELP {name} {}", help_text(help));
        }
        let _ = writeln!(out, "# TYPE {name} {kind}");
    }
}

/// An OpenMetrics help text as 0.0.4 escapes it: `\\` and `\n` stay, `\"` becomes `"`, and a
/// backslash that starts no escape (the registry writes help texts unescaped) is doubled.
fn help_text(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some(escape @ ('\\' | 'n')) => {
                out.push('\\');
                out.push(escape);
            }
            Some(other) => {
                out.push_str("\\\\");
                out.push(other);
            }
            None => out.push_str("\\\\"),
        }
    }
    out
}

/// One sample line in 0.0.4, or `None` for a sample 0.0.4 has no place for (`_created`).
fn sample_line(line: &str, family: &Family) -> Option<String> {
    let series_end = series_end(line);
    let (series, rest) = line.split_at(series_end);
    let name = series.split('{').next().unwrap_or_default();
    if matches!(family.kind.as_str(), "counter" | "histogram" | "summary")
        && name.strip_suffix("_created") == Some(family.name.as_str())
    {
        return None;
    }
    // After the series: the value, an optional timestamp, then an optional exemplar.
    let rest = rest.split(" # ").next().unwrap_or_default();
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next()?;
    let mut sample = format!("{series} {value}");
    if let Some(timestamp) = fields.next() {
        // OpenMetrics stamps in seconds, 0.0.4 in milliseconds.
        let millis = timestamp.parse::<f64>().ok()? * 1000.0;
        let _ = write!(sample, " {}", millis.round() as i64);
    }
    Some(sample)
}

/// Where a sample line's series (name and label set) ends. Label values may hold spaces, `}`
/// and `#` inside quotes, so the label set is scanned rather than split.
fn series_end(line: &str) -> usize {
    let bytes = line.as_bytes();
    let Some(open) = line.find(['{', ' ']) else {
        return line.len();
    };
    if bytes[open] == b' ' {
        return open;
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, &b) in bytes.iter().enumerate().skip(open + 1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'}' if !quoted => return i + 1,
            _ => {}
        }
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for_and_preferred() {
        use Format::*;
        assert_eq!(Format::negotiate(None), Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain")), Prometheus);
        assert_eq!(Format::negotiate(Some("")), Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            OpenMetrics
        );
        // What Prometheus 2.x sends.
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
            application/openmetrics-text;version=0.0.1;q=0.4,\
            text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(prometheus)), OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text; q=0.2, text/plain")),
            Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=bogus, ;;,")),
            Prometheus
        );
    }

    #[test]
    fn counters_take_total_in_their_metadata_and_lose_created() {
        let om = "# HELP http_requests Requests.\n\
                  # TYPE http_requests counter\n\
                  http_requests_total{route=\"a\"} 3\n\
                  http_requests_created{route=\"a\"} 1700000000.5\n\
                  # EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP http_requests_total Requests.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{route=\"a\"} 3\n"
        );
    }

    #[test]
    fn units_info_unknown_and_histograms() {
        let om = "# HELP up_seconds Uptime.\n\
                  # TYPE up_seconds gauge\n\
                  # UNIT up_seconds seconds\n\
                  up_seconds 12.5\n\
                  # HELP build Build.\n\
                  # TYPE build info\n\
                  build_info{version=\"1\"} 1\n\
                  # TYPE odd unknown\n\
                  odd 1\n\
                  # HELP lat Latency.\n\
                  # TYPE lat histogram\n\
                  lat_sum 1.5\n\
                  lat_count 2\n\
                  lat_bucket{le=\"+Inf\"} 2\n\
                  lat_created 1.0\n\
                  # EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP up_seconds Uptime.\n\
             # TYPE up_seconds gauge\n\
             up_seconds 12.5\n\
             # HELP build_info Build.\n\
             # TYPE build_info gauge\n\
             build_info{version=\"1\"} 1\n\
             # TYPE odd untyped\n\
             odd 1\n\
             # HELP lat Latency.\n\
             # TYPE lat histogram\n\
             lat_sum 1.5\n\
             lat_count 2\n\
             lat_bucket{le=\"+Inf\"} 2\n"
        );
    }

    #[test]
    fn exemplars_timestamps_and_tricky_label_values() {
        let om = "# HELP c C.\n\
                  # TYPE c counter\n\
                  c_total{path=\"/a } # b\"} 7 1700000000.25 # {trace=\"x\"} 1\n\
                  c_total{path=\"q\\\"}\"} 1 # {trace=\"y\"} 1\n\
                  # EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP c_total C.\n\
             # TYPE c_total counter\n\
             c_total{path=\"/a } # b\"} 7 1700000000250\n\
             c_total{path=\"q\\\"}\"} 1\n"
        );
    }

    #[test]
    fn help_is_reescaped_and_families_without_samples_keep_their_metadata() {
        let om = "# HELP a A \\\"quoted\\\" \\\\ C:\\dir\n# TYPE a counter\n# HELP b B.\n# TYPE b gauge\nb 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_total A \"quoted\" \\\\ C:\\\\dir\n# TYPE a_total counter\n\
             # HELP b B.\n# TYPE b gauge\nb 1\n"
        );
    }
}
