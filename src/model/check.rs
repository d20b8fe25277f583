//! Health checks, as data: what a `--check SPEC` names, how a URL template takes the current
//! version's outputs, what the outputs look like to a command, how a check's output is made
//! safe to record, and how results in a row become a verdict on the deploy. Running a check
//! is the probe's business (`crate::probe`); everything here is pure.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

use crate::model::state::{Output, OutputSummary};

/// One `--check SPEC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckSpec {
    /// `cmd:COMMAND`: a command line run through `sh -c`; healthy when it exits 0.
    Command(String),
    /// `http:URL`: healthy on a 2xx answer; `{{ output.NAME }}` takes an output's value.
    Http(String),
    /// `alarm:NAME`: a CloudWatch alarm; `ALARM` fails, `OK` passes, `INSUFFICIENT_DATA` says
    /// nothing either way.
    Alarm(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CheckError {
    #[error("`{input}` is not a check: write cmd:COMMAND, http:URL (or https:URL) or alarm:NAME")]
    Invalid { input: String },
    #[error("guard needs at least one --check to watch the deploy with")]
    NoChecks,
    #[error("the check `{input}` is empty after `{scheme}:`")]
    Empty { input: String, scheme: &'static str },
    #[error("`{url}` is not an http(s) URL")]
    NotHttp { url: String },
    #[error("the URL `{url}` has an unclosed `{{{{`")]
    Unclosed { url: String },
    #[error(
        "the URL template `{{{{ {inner} }}}}` is not `{{{{ output.NAME }}}}`: only outputs of the current version can be used"
    )]
    NotOutput { inner: String },
    #[error("the current version has no output `{name}` (used in the URL `{url}`)")]
    NoOutput { name: String, url: String },
    #[error(
        "the output `{name}` is sensitive: its value is never put in a URL, where logs and proxies would see it"
    )]
    Sensitive { name: String },
}

impl FromStr for CheckSpec {
    type Err = CheckError;

    fn from_str(s: &str) -> Result<CheckSpec, CheckError> {
        let invalid = || CheckError::Invalid { input: s.into() };
        let (scheme, rest) = s.split_once(':').ok_or_else(invalid)?;
        let empty = |scheme: &'static str| CheckError::Empty {
            input: s.into(),
            scheme,
        };
        match scheme {
            "cmd" if rest.trim().is_empty() => Err(empty("cmd")),
            "cmd" => Ok(CheckSpec::Command(rest.to_string())),
            "alarm" if rest.trim().is_empty() => Err(empty("alarm")),
            "alarm" => Ok(CheckSpec::Alarm(rest.trim().to_string())),
            // `http:https://...` and a bare `https://...` both name an https check.
            "http" if rest.starts_with("http://") || rest.starts_with("https://") => {
                Ok(CheckSpec::Http(rest.to_string()))
            }
            "http" | "https" if rest.starts_with("//") => Ok(CheckSpec::Http(s.to_string())),
            "http" if rest.is_empty() => Err(empty("http")),
            "http" => Err(CheckError::NotHttp { url: rest.into() }),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for CheckSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckSpec::Command(c) => write!(f, "cmd:{c}"),
            CheckSpec::Http(u) => write!(f, "http:{u}"),
            CheckSpec::Alarm(a) => write!(f, "alarm:{a}"),
        }
    }
}

impl CheckSpec {
    /// The kind, for JSON and the live line.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CheckSpec::Command(_) => "cmd",
            CheckSpec::Http(_) => "http",
            CheckSpec::Alarm(_) => "alarm",
        }
    }
}

/// What one run of one check said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Healthy,
    Failing,
    /// Neither: an alarm with insufficient data, CloudWatch not answering. Does not count as
    /// a failure, nor does it end a run of failures.
    Inconclusive,
    /// The check cannot be evaluated at all (a command that does not exist, an alarm that
    /// does not exist): before watching, this refuses to start.
    Unevaluable,
}

impl Verdict {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Verdict::Healthy => "ok",
            Verdict::Failing => "FAIL",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Unevaluable => "cannot evaluate",
        }
    }
}

/// What one run of one check said (the detail is redacted and short).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Observation {
    pub(crate) check: String,
    pub(crate) result: Verdict,
    pub(crate) detail: String,
    pub(crate) at: String,
    pub(crate) took_ms: u64,
}

impl Observation {
    /// The check's name, short enough for a live line.
    pub(crate) fn check_short(&self) -> String {
        const WIDTH: usize = 40;
        if self.check.chars().count() <= WIDTH {
            return self.check.clone();
        }
        let cut: String = self.check.chars().take(WIDTH - 1).collect();
        format!("{cut}…")
    }
}

/// Replaces every `{{ output.NAME }}` in `template` by that output's value, URL-encoded
/// (strings as they are, anything else as JSON). Sensitive and missing outputs refuse.
pub(crate) fn render_url(
    template: &str,
    outputs: &BTreeMap<String, OutputSummary>,
) -> Result<String, CheckError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| CheckError::Unclosed {
            url: template.into(),
        })?;
        let inner = after[..end].trim();
        let name = inner
            .strip_prefix("output.")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| CheckError::NotOutput {
                inner: inner.into(),
            })?;
        let output = outputs.get(name).ok_or_else(|| CheckError::NoOutput {
            name: name.into(),
            url: template.into(),
        })?;
        let (Some(value), false) = (&output.value, output.sensitive) else {
            return Err(CheckError::Sensitive { name: name.into() });
        };
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.extend(percent_encoding::utf8_percent_encode(&text, URL_COMPONENT));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if !(out.starts_with("http://") || out.starts_with("https://")) {
        return Err(CheckError::NotHttp { url: out });
    }
    Ok(out)
}

/// Everything but the unreserved characters of RFC 3986 is encoded.
const URL_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The environment a `cmd:` check sees of the current version: `TF_OUTPUT_<name>` for every
/// output that is not sensitive (strings as they are, anything else as JSON). Characters an
/// environment name cannot hold become `_`.
pub(crate) fn output_env(outputs: &BTreeMap<String, OutputSummary>) -> Vec<(String, String)> {
    outputs
        .iter()
        .filter(|(_, o)| !o.sensitive)
        .filter_map(|(name, o)| {
            let value = match o.value.as_ref()? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let clean: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            Some((format!("TF_OUTPUT_{clean}"), value))
        })
        .collect()
}

/// Makes what a check printed fit to record: the sensitive output values of the version
/// are replaced wherever they appear, and only the last lines are kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

/// How much of a check's output is kept.
const KEEP_LINES: usize = 12;
const KEEP_CHARS: usize = 2000;
/// Values shorter than this are not searched for: a sensitive `1` or `on` would blank out
/// every digit or word. They are not in the environment or in URLs either.
const SHORTEST_SECRET: usize = 4;

impl Redactor {
    pub(crate) fn new(outputs: &BTreeMap<String, Output>) -> Redactor {
        let mut secrets = vec![];
        for output in outputs.values().filter(|o| o.sensitive) {
            collect_strings(&output.value, &mut secrets);
            if !output.value.is_string() {
                secrets.push(output.value.to_string());
            }
        }
        secrets.retain(|s| s.chars().count() >= SHORTEST_SECRET);
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// The redactor of two versions' outputs (the deploy and the rollback target).
    pub(crate) fn of_both(a: &BTreeMap<String, Output>, b: &BTreeMap<String, Output>) -> Redactor {
        let mut all = a.clone();
        all.extend(b.iter().map(|(k, v)| (format!("{k}\u{0}other"), v.clone())));
        Redactor::new(&all)
    }

    /// The last lines of `text`, with every secret replaced.
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "(sensitive)");
        }
        let lines: Vec<&str> = text.trim_end().lines().collect();
        let mut kept = lines[lines.len().saturating_sub(KEEP_LINES)..].join("\n");
        if kept.chars().count() > KEEP_CHARS {
            let skip = kept.chars().count() - KEEP_CHARS;
            kept = format!("…{}", kept.chars().skip(skip).collect::<String>());
        }
        kept
    }
}

fn collect_strings(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(s) => into.push(s.clone()),
        Value::Number(n) => into.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, into)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, into)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// A digest of a version's recorded outputs (values of non-sensitive ones, names and
/// sensitivity of all): a re-apply of the same release writes a new version with the same
/// digest.
pub(crate) fn outputs_digest(outputs: &BTreeMap<String, OutputSummary>) -> String {
    use md5::{Digest, Md5};
    let canonical = serde_json::to_vec(outputs).unwrap_or_default();
    Md5::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Results in a row, per check: when a deploy counts as failing, and when a rollback counts
/// as healthy. Inconclusive results neither count nor break a run.
#[derive(Debug, Clone)]
pub(crate) struct Streaks {
    checks: Vec<Streak>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Streak {
    failing: u32,
    healthy: u32,
    conclusive: bool,
}

impl Streaks {
    pub(crate) fn new(checks: usize) -> Streaks {
        Streaks {
            checks: vec![Streak::default(); checks],
        }
    }

    pub(crate) fn record(&mut self, check: usize, verdict: Verdict) {
        let s = &mut self.checks[check];
        match verdict {
            Verdict::Healthy => {
                s.healthy += 1;
                s.failing = 0;
                s.conclusive = true;
            }
            Verdict::Failing | Verdict::Unevaluable => {
                s.failing += 1;
                s.healthy = 0;
                s.conclusive = true;
            }
            Verdict::Inconclusive => {}
        }
    }

    /// The first check that has failed `failures` times in a row.
    pub(crate) fn tripped(&self, failures: u32) -> Option<usize> {
        self.checks.iter().position(|s| s.failing >= failures)
    }

    /// The failures in a row of `check`.
    pub(crate) fn failing(&self, check: usize) -> u32 {
        self.checks[check].failing
    }

    /// Whether some check is in a run of failures that has not tripped yet: the window is not
    /// passed healthy while one is.
    pub(crate) fn any_failing(&self) -> bool {
        self.checks.iter().any(|s| s.failing > 0)
    }

    /// Whether every check has passed `passes` times in a row.
    pub(crate) fn all_passed(&self, passes: u32) -> bool {
        self.checks.iter().all(|s| s.healthy >= passes)
    }

    /// The checks that never gave a conclusive result.
    pub(crate) fn never_conclusive(&self) -> Vec<usize> {
        (0..self.checks.len())
            .filter(|&i| !self.checks[i].conclusive)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summaries(pairs: &[(&str, Value, bool)]) -> BTreeMap<String, OutputSummary> {
        pairs
            .iter()
            .map(|(n, v, s)| {
                (
                    (*n).to_string(),
                    OutputSummary {
                        sensitive: *s,
                        value: (!*s).then(|| v.clone()),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn specs_parse_and_print_back() {
        for (input, spec) in [
            ("cmd:curl -fsS x", CheckSpec::Command("curl -fsS x".into())),
            (
                "http:http://127.0.0.1:8080/health",
                CheckSpec::Http("http://127.0.0.1:8080/health".into()),
            ),
            (
                "https://example.com/h",
                CheckSpec::Http("https://example.com/h".into()),
            ),
            ("alarm:api-5xx", CheckSpec::Alarm("api-5xx".into())),
        ] {
            assert_eq!(input.parse::<CheckSpec>().unwrap(), spec, "{input}");
        }
        assert_eq!(
            "http://h/x".parse::<CheckSpec>().unwrap().to_string(),
            "http:http://h/x"
        );
        for bad in [
            "",
            "curl x",
            "cmd:",
            "cmd:  ",
            "alarm:",
            "http:",
            "http:ftp://x",
            "tcp:1",
        ] {
            assert!(bad.parse::<CheckSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn url_templates_take_outputs_encoded_and_refuse_secrets() {
        let outputs = summaries(&[
            ("host", json!("127.0.0.1:8080"), false),
            ("slot", json!("blue green"), false),
            ("port", json!(8080), false),
            ("token", json!("hunter22"), true),
        ]);
        assert_eq!(
            render_url(
                "http://{{ output.host }}/h?slot={{output.slot}}&p={{ output.port }}",
                &outputs
            )
            .unwrap(),
            "http://127.0.0.1%3A8080/h?slot=blue%20green&p=8080"
        );
        assert!(matches!(
            render_url("http://x/{{ output.token }}", &outputs),
            Err(CheckError::Sensitive { .. })
        ));
        assert!(matches!(
            render_url("http://x/{{ output.nope }}", &outputs),
            Err(CheckError::NoOutput { .. })
        ));
        assert!(matches!(
            render_url("http://x/{{ var.a }}", &outputs),
            Err(CheckError::NotOutput { .. })
        ));
        assert!(matches!(
            render_url("http://x/{{ output.host", &outputs),
            Err(CheckError::Unclosed { .. })
        ));
        assert!(matches!(
            render_url("{{ output.slot }}", &outputs),
            Err(CheckError::NotHttp { .. })
        ));
    }

    #[test]
    fn commands_see_outputs_but_no_secrets() {
        let outputs = summaries(&[
            ("url", json!("http://x"), false),
            ("ids", json!(["a", "b"]), false),
            ("app-version", json!("1.2"), false),
            ("password", json!("s3cret!!"), true),
        ]);
        let env = output_env(&outputs);
        assert_eq!(
            env,
            vec![
                ("TF_OUTPUT_app_version".to_string(), "1.2".to_string()),
                ("TF_OUTPUT_ids".to_string(), r#"["a","b"]"#.to_string()),
                ("TF_OUTPUT_url".to_string(), "http://x".to_string()),
            ]
        );
    }

    #[test]
    fn recorded_output_hides_secrets_and_keeps_the_end() {
        let outputs: BTreeMap<String, Output> = [
            (
                "db".to_string(),
                Output {
                    value: json!({"password": "hunter22-long", "port": 5432}),
                    sensitive: true,
                },
            ),
            (
                "pin".to_string(),
                Output {
                    value: json!("42"),
                    sensitive: true,
                },
            ),
            (
                "url".to_string(),
                Output {
                    value: json!("http://x"),
                    sensitive: false,
                },
            ),
        ]
        .into();
        let r = Redactor::new(&outputs);
        let text = "connecting to http://x with hunter22-long on 5432; answer 42\n";
        assert_eq!(
            r.clean(text),
            "connecting to http://x with (sensitive) on (sensitive); answer 42"
        );
        let long: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let kept = r.clean(&long);
        assert_eq!(kept.lines().count(), KEEP_LINES);
        assert!(kept.ends_with("line 99"));
    }

    #[test]
    fn failures_in_a_row_trip_and_inconclusive_results_neither_count_nor_reset() {
        use Verdict::{Failing, Healthy, Inconclusive};
        let mut s = Streaks::new(2);
        s.record(0, Failing);
        s.record(1, Inconclusive);
        assert_eq!(s.tripped(2), None);
        assert!(s.any_failing());
        s.record(0, Inconclusive);
        s.record(0, Failing);
        assert_eq!(s.tripped(2), Some(0));

        let mut s = Streaks::new(1);
        s.record(0, Failing);
        s.record(0, Healthy);
        s.record(0, Failing);
        assert_eq!(s.tripped(2), None, "a pass in between breaks the run");
        assert_eq!(s.failing(0), 1);
    }

    #[test]
    fn a_rollback_is_healthy_once_every_check_passed_enough_times_in_a_row() {
        use Verdict::{Failing, Healthy, Inconclusive};
        let mut s = Streaks::new(2);
        s.record(0, Healthy);
        s.record(1, Failing);
        assert!(!s.all_passed(2));
        s.record(0, Healthy);
        s.record(1, Healthy);
        assert!(!s.all_passed(2));
        s.record(0, Inconclusive);
        s.record(1, Healthy);
        assert!(s.all_passed(2));
        assert_eq!(Streaks::new(3).never_conclusive(), vec![0, 1, 2]);
        assert!(s.never_conclusive().is_empty());
    }
}
