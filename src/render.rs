//! The views commands print, and their human rendering. A view is one value serialised as is
//! for `--json` and rendered here for people; rendering is pure (colors come from `console`,
//! which is switched off when stdout is not a terminal).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use console::style;
use serde::Serialize;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::model::diff::{Change, OutputChange, ResourceChanges};
use crate::model::selector::{Listing, ObjectVersion};
use crate::store::cache::Cached;

/// One version as `list` and `show` present it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VersionView {
    pub(crate) version_id: String,
    pub(crate) last_modified: String,
    pub(crate) size: u64,
    pub(crate) is_latest: bool,
    pub(crate) delete_marker: bool,
    pub(crate) serial: Option<u64>,
    pub(crate) lineage: Option<String>,
    pub(crate) terraform_version: Option<String>,
    pub(crate) resources: Option<u64>,
    /// Output values, sensitive ones as "(sensitive)"; null for delete markers.
    pub(crate) outputs: Option<BTreeMap<String, Value>>,
    /// The blue/green slot this version recorded, when one can be told.
    pub(crate) slot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Known-good labels (`tfrollback mark`).
    pub(crate) marks: Vec<String>,
    /// A probable intermediate snapshot persisted during an apply, not its result.
    pub(crate) intermediate: bool,
    /// Where the slot value sits among the outputs (`current_config.active_slot`).
    #[serde(skip)]
    pub(crate) slot_path: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ListView {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) workspace: String,
    pub(crate) versions: Vec<VersionView>,
    /// `list --at TIME`: the version that was current then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<AtView>,
}

/// The version a moment resolves to, as `list --at` names it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AtView {
    /// The moment, RFC 3339 in UTC.
    pub(crate) time: String,
    pub(crate) version_id: String,
    pub(crate) last_modified: String,
    pub(crate) is_latest: bool,
    /// Probable intermediate snapshots written by then that were passed over, newest first.
    pub(crate) skipped_versions: Vec<String>,
}

/// `1.2 MiB`, `812 B`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2026-11-22 03:40:12` (UTC), from an RFC 3339 timestamp.
pub(crate) fn human_time(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// A value on one line: strings bare, everything else compact JSON.
fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn slot_style(value: &str) -> String {
    let styled = style(value).bold();
    match value {
        v if v.starts_with("blue") => styled.blue().to_string(),
        v if v.starts_with("green") => styled.green().to_string(),
        _ => styled.to_string(),
    }
}

/// The outputs column: the slot first and highlighted, then the other outputs, short.
fn outputs_summary(v: &VersionView, width: usize) -> String {
    let Some(outputs) = &v.outputs else {
        return String::new();
    };
    let mut parts = vec![];
    let mut used = 0;
    if let (Some(path), Some(slot)) = (&v.slot_path, &v.slot) {
        parts.push(format!("{}={}", path, slot_style(slot)));
        used += path.len() + slot.len() + 2;
    }
    let mut hidden = 0;
    for (name, value) in outputs {
        if v.slot_path.as_deref() == Some(name.as_str()) {
            continue;
        }
        let part = format!("{name}={}", truncate(&compact(value), 24));
        let len = part.chars().count() + 1;
        if used + len > width && !parts.is_empty() {
            hidden += 1;
            continue;
        }
        used += len;
        parts.push(part);
    }
    if hidden > 0 {
        parts.push(format!("(+{hidden} more)"));
    }
    parts.join(" ")
}

/// `3h ago`, `just now`, `12d ago`.
pub(crate) fn relative_time(rfc3339: &str, now: jiff::Timestamp) -> String {
    let Ok(t) = rfc3339.parse::<jiff::Timestamp>() else {
        return String::new();
    };
    let secs = now.as_second() - t.as_second();
    match secs {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// The marks, the intermediate flag and the outputs of a row, fitted to `width` characters.
fn row_tail(v: &VersionView, width: usize, compact: bool) -> String {
    if v.delete_marker {
        return style("(delete marker)").dim().to_string();
    }
    if let Some(err) = &v.error {
        return style(truncate(&format!("unreadable: {err}"), width.max(20)))
            .red()
            .to_string();
    }
    let mut tail = String::new();
    let mut used = 0;
    for label in &v.marks {
        tail.push_str(&style(format!("[{label}] ")).cyan().bold().to_string());
        used += label.len() + 3;
    }
    if v.intermediate {
        tail.push_str(&style("(intermediate) ").dim().to_string());
        used += 15;
    }
    if compact {
        if let Some(slot) = &v.slot {
            tail.push_str(&slot_style(slot));
        }
        return tail;
    }
    tail + &outputs_summary(v, width.saturating_sub(used).max(20))
}

/// The version table. Wide terminals get every column with UTC and relative times; below
/// 150 columns the table keeps what matters in an incident (id, age, serial, resources, marks
/// and slot) so that it stays readable at 80. `now` makes the ages reproducible.
pub(crate) fn render_list(view: &ListView, width: usize, now: jiff::Timestamp) -> String {
    let mut out = String::new();
    if view.versions.is_empty() {
        let _ = writeln!(
            out,
            "No versions of s3://{}/{} (workspace {}).",
            view.bucket, view.key, view.workspace
        );
        return out;
    }
    let id_width = view
        .versions
        .iter()
        .map(|v| v.version_id.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let compact = width < 150;
    let dash = || "-".to_string();
    if compact {
        let _ = writeln!(
            out,
            "  {:<id_width$}  {:>8}  {:>6}  {:>5}  SLOT",
            "VERSION", "AGE", "SERIAL", "RES"
        );
    } else {
        let _ = writeln!(
            out,
            "  {:<id_width$}  {:<28}  {:>9}  {:>6}  {:<8}  {:<8}  {:>5}  OUTPUTS",
            "VERSION", "MODIFIED (UTC)", "SIZE", "SERIAL", "LINEAGE", "TF", "RES"
        );
    }
    let at_id = view.at.as_ref().map(|a| a.version_id.as_str());
    for v in &view.versions {
        let mark = if v.delete_marker {
            "x"
        } else if v.is_latest {
            "*"
        } else if at_id == Some(v.version_id.as_str()) {
            "@"
        } else {
            " "
        };
        let serial = v.serial.map(|s| s.to_string()).unwrap_or_else(dash);
        // Blank, not a dash, for a readable version whose resources nobody counted yet (only
        // its head was read): there is a number, it is just not known here.
        let resources = match (v.resources, v.serial) {
            (Some(r), _) => r.to_string(),
            (None, Some(_)) => String::new(),
            (None, None) => dash(),
        };
        let age = relative_time(&v.last_modified, now);
        if compact {
            let fixed = 2 + id_width + 2 + 8 + 2 + 6 + 2 + 5 + 2;
            let tail = row_tail(v, width.saturating_sub(fixed), true);
            let _ = writeln!(
                out,
                "{mark} {:<id_width$}  {age:>8}  {serial:>6}  {resources:>5}  {tail}",
                v.version_id
            );
            continue;
        }
        let fixed = 2 + id_width + 2 + 28 + 2 + 9 + 2 + 6 + 2 + 8 + 2 + 8 + 2 + 5 + 2;
        let tail = row_tail(v, width.saturating_sub(fixed), false);
        let modified = format!("{} ({age})", human_time(&v.last_modified));
        let _ = writeln!(
            out,
            "{mark} {:<id_width$}  {modified:<28}  {:>9}  {serial:>6}  {:<8}  {:<8}  {resources:>5}  {tail}",
            v.version_id,
            if v.delete_marker {
                dash()
            } else {
                human_size(v.size)
            },
            v.lineage
                .as_deref()
                .map(|l| crate::model::state::short_lineage(l).to_string())
                .unwrap_or_else(dash),
            v.terraform_version.clone().unwrap_or_else(dash),
        );
    }
    let _ = writeln!(
        out,
        "\n* current  {}x delete marker  [label] known-good\ns3://{}/{} (workspace {})",
        if view.at.is_some() {
            "@ current at the time asked  "
        } else {
            ""
        },
        view.bucket,
        view.key,
        view.workspace
    );
    if let Some(at) = &view.at {
        out.push_str(&at_line(at, &view.versions));
    }
    if compact {
        let _ = writeln!(
            out,
            "Outputs: `tfrollback show VERSION`, or a terminal of 150+ columns."
        );
    }
    out
}

/// What `list --at` says below the table: which version was current at the time asked, and
/// what was passed over to find it.
fn at_line(at: &AtView, shown: &[VersionView]) -> String {
    let mut out = format!(
        "At {} UTC the current version was {} (written {} UTC{})",
        human_time(&at.time),
        at.version_id,
        human_time(&at.last_modified),
        if at.is_latest { ", and still is" } else { "" }
    );
    if !shown.iter().any(|v| v.version_id == at.version_id) {
        out.push_str(", older than the versions shown");
    }
    out.push_str(".\n");
    if !at.skipped_versions.is_empty() {
        let _ = writeln!(
            out,
            "Passed over {}: probably intermediate snapshots of an apply still running then.",
            at.skipped_versions.join(", ")
        );
    }
    out
}

pub(crate) fn render_version(v: &VersionView) -> String {
    let mut out = String::new();
    let current = if v.is_latest { " (current)" } else { "" };
    let kind = if v.delete_marker {
        " (delete marker)"
    } else {
        ""
    };
    let _ = writeln!(out, "Version    {}{current}{kind}", v.version_id);
    if !v.marks.is_empty() {
        let _ = writeln!(out, "Marks      {}", v.marks.join(", "));
    }
    if v.intermediate {
        let _ = writeln!(
            out,
            "Note       probably an intermediate snapshot of an apply, not its result"
        );
    }
    let _ = writeln!(
        out,
        "Modified   {} UTC ({})",
        human_time(&v.last_modified),
        relative_time(&v.last_modified, jiff::Timestamp::now())
    );
    if v.delete_marker {
        return out;
    }
    let _ = writeln!(out, "Size       {}", human_size(v.size));
    if let Some(err) = &v.error {
        let _ = writeln!(out, "Unreadable {err}");
        return out;
    }
    let field = |o: &Option<String>| o.clone().unwrap_or_default();
    let _ = writeln!(out, "Serial     {}", v.serial.unwrap_or_default());
    let _ = writeln!(out, "Lineage    {}", field(&v.lineage));
    let _ = writeln!(out, "Terraform  {}", field(&v.terraform_version));
    match v.resources {
        Some(n) => {
            let _ = writeln!(out, "Resources  {n}");
        }
        None => {
            let _ = writeln!(
                out,
                "Resources  not counted (only the head was read; `tfrollback list --count-resources` counts them)"
            );
        }
    }
    if let Some(slot) = &v.slot {
        let _ = writeln!(
            out,
            "Slot       {} (output {})",
            slot_style(slot),
            field(&v.slot_path)
        );
    }
    let outputs = v.outputs.clone().unwrap_or_default();
    if outputs.is_empty() {
        let _ = writeln!(out, "Outputs    (none)");
        return out;
    }
    let _ = writeln!(out, "Outputs");
    let width = outputs.keys().map(String::len).max().unwrap_or(0);
    for (name, value) in outputs {
        let text = pretty(&value).replace('\n', &format!("\n  {:width$}   ", ""));
        let _ = writeln!(out, "  {name:<width$} = {text}");
    }
    out
}

/// Pretty JSON, with strings quoted as Terraform shows them; `(sensitive)` stays bare.
fn pretty(value: &Value) -> String {
    match value {
        Value::String(s) if s == crate::model::SENSITIVE => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// `from` and `to` of a diff, as views.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Endpoint {
    pub(crate) version_id: String,
    pub(crate) serial: u64,
    #[serde(skip)]
    pub(crate) current: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct VariableView {
    pub(crate) name: String,
    pub(crate) current: Option<Value>,
    pub(crate) rollback: Value,
    pub(crate) source: String,
    #[serde(skip)]
    pub(crate) slot: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DiffView {
    pub(crate) from: Endpoint,
    pub(crate) to: Endpoint,
    pub(crate) outputs: Vec<OutputChange>,
    pub(crate) resources: ResourceChanges,
    pub(crate) variables: Vec<VariableView>,
    /// Variables the target recorded that a rollback will not set, and why.
    pub(crate) skipped_variables: Vec<String>,
    /// Every declared variable a rollback does not set, and why (the withheld ones above
    /// and those the target recorded no value for).
    pub(crate) unset_variables: Vec<crate::model::mapping::Skipped>,
    /// Versions between the two that the selector passed over as probable intermediate
    /// snapshots of an apply (newest first).
    #[serde(default)]
    pub(crate) skipped_versions: Vec<String>,
    #[serde(skip)]
    pub(crate) location: String,
}

fn unified(from: &Value, to: &Value) -> String {
    let (a, b) = (pretty(from), pretty(to));
    let mut out = String::new();
    if !a.contains('\n') && !b.contains('\n') {
        let _ = writeln!(out, "      {}", style(format!("- {a}")).red());
        let _ = writeln!(out, "      {}", style(format!("+ {b}")).green());
        return out;
    }
    let diff = TextDiff::from_lines(&a, &b);
    for change in diff.iter_all_changes() {
        let line = change.value().trim_end_matches('\n');
        let _ = match change.tag() {
            ChangeTag::Delete => writeln!(out, "      {}", style(format!("- {line}")).red()),
            ChangeTag::Insert => writeln!(out, "      {}", style(format!("+ {line}")).green()),
            ChangeTag::Equal => writeln!(out, "        {line}"),
        };
    }
    out
}

pub(crate) fn render_diff(view: &DiffView) -> String {
    let mut out = String::new();
    let endpoint = |e: &Endpoint| {
        format!(
            "{} (serial {}{})",
            e.version_id,
            e.serial,
            if e.current { ", current" } else { "" }
        )
    };
    let _ = writeln!(out, "Rolling back {}", view.location);
    let _ = writeln!(out, "  from {}", endpoint(&view.from));
    let _ = writeln!(out, "  to   {}", endpoint(&view.to));
    for skipped in &view.skipped_versions {
        let _ = writeln!(
            out,
            "  skipped {skipped}: probably an intermediate snapshot of an apply, not its result"
        );
    }

    let _ = writeln!(out, "\n{}", style("Outputs").bold());
    if view.outputs.is_empty() {
        let _ = writeln!(out, "  no changes");
    }
    for o in &view.outputs {
        let null = Value::Null;
        match (o.change, o.sensitive) {
            (Change::Added, _) => {
                let _ = writeln!(
                    out,
                    "  {} {} = {}",
                    style("+").green(),
                    o.name,
                    pretty(o.to.as_ref().unwrap_or(&null))
                );
            }
            (Change::Removed, _) => {
                let _ = writeln!(
                    out,
                    "  {} {} = {}",
                    style("-").red(),
                    o.name,
                    pretty(o.from.as_ref().unwrap_or(&null))
                );
            }
            (Change::Changed, true) => {
                let _ = writeln!(
                    out,
                    "  {} {} (sensitive: value changes)",
                    style("~").yellow(),
                    o.name
                );
            }
            (Change::Changed, false) => {
                let _ = writeln!(out, "  {} {}", style("~").yellow(), o.name);
                out.push_str(&unified(
                    o.from.as_ref().unwrap_or(&null),
                    o.to.as_ref().unwrap_or(&null),
                ));
            }
        }
    }

    let r = &view.resources;
    let _ = writeln!(
        out,
        "\n{} ({} added, {} removed, {} changed)",
        style("Resources").bold(),
        r.added.len(),
        r.removed.len(),
        r.changed.len()
    );
    for (sign, list) in [
        (style("+").green(), &r.added),
        (style("-").red(), &r.removed),
        (style("~").yellow(), &r.changed),
    ] {
        for address in list {
            let _ = writeln!(out, "  {sign} {address}");
        }
    }

    let _ = writeln!(out, "\n{}", style("Variables a rollback sets").bold());
    if view.variables.is_empty() {
        let _ = writeln!(
            out,
            "  none: the target recorded no output that maps to a declared variable"
        );
    }
    let width = view
        .variables
        .iter()
        .map(|v| v.name.len())
        .max()
        .unwrap_or(0);
    for v in &view.variables {
        let current = v
            .current
            .as_ref()
            .map(pretty)
            .unwrap_or_else(|| "(not recorded)".into());
        let rollback = pretty(&v.rollback);
        let rollback = if v.slot {
            slot_style(&rollback)
        } else {
            rollback
        };
        let marker = if v.current.as_ref() == Some(&v.rollback) {
            "  "
        } else {
            "~ "
        };
        let _ = writeln!(
            out,
            "  {marker}{:<width$}  {current} -> {rollback}   ({}{})",
            v.name,
            v.source,
            if v.slot { ", blue/green slot" } else { "" }
        );
    }
    for s in &view.skipped_variables {
        let _ = writeln!(out, "  not set: {s}");
    }
    // The others, grouped by why: they keep whatever the configuration and var files say.
    let withheld: Vec<&str> = view
        .skipped_variables
        .iter()
        .filter_map(|s| s.split_once(':').map(|(name, _)| name))
        .collect();
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for u in &view.unset_variables {
        if !withheld.contains(&u.name.as_str()) {
            by_reason.entry(&u.reason).or_default().push(&u.name);
        }
    }
    for (reason, names) in by_reason {
        let _ = writeln!(out, "  left as they are: {} ({reason})", names.join(", "));
    }
    out
}

/// One version's fate under the lifecycle rules, for `doctor --json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FateView {
    pub(crate) version_id: String,
    pub(crate) last_modified: String,
    /// When a newer version or delete marker replaced it.
    pub(crate) noncurrent_since: Option<String>,
    /// `deletable` (from `deletable_from`) or `deleted_after_writes` (`after_writes` more).
    pub(crate) fate: &'static str,
    pub(crate) deletable_from: Option<String>,
    pub(crate) after_writes: Option<u32>,
    pub(crate) rule: String,
    pub(crate) marks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HorizonView {
    /// Earlier versions holding a state.
    pub(crate) earlier: usize,
    pub(crate) deletable_now: usize,
    pub(crate) deletable_later: usize,
    /// The oldest version S3 may not delete yet, and when it was written.
    pub(crate) oldest_restorable: Option<String>,
    pub(crate) oldest_restorable_written: Option<String>,
    /// When a rule puts a delete marker on the current state, and which.
    pub(crate) state_expires: Option<String>,
    /// Every earlier version a rule deletes, now or later, newest first.
    pub(crate) versions: Vec<FateView>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SetVariableView {
    pub(crate) name: String,
    pub(crate) source: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct VariablesView {
    pub(crate) slot_variable: Option<String>,
    /// What a rollback to a version recorded like the current one sets.
    pub(crate) set: Vec<SetVariableView>,
    /// The declared variables it leaves as they are, and why.
    pub(crate) not_set: Vec<crate::model::mapping::Skipped>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TerraformView {
    pub(crate) binary: String,
    pub(crate) version: String,
    /// The terraform_version of the current state.
    pub(crate) state_terraform_version: Option<String>,
}

/// `doctor`'s report: the findings, grouped by check when rendered, and the details behind
/// them for programs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DoctorView {
    pub(crate) location: String,
    pub(crate) ready: bool,
    pub(crate) problems: usize,
    pub(crate) warnings: usize,
    pub(crate) findings: Vec<crate::model::readiness::Finding>,
    pub(crate) horizon: Option<HorizonView>,
    pub(crate) variables: Option<VariablesView>,
    pub(crate) principal: Option<String>,
    pub(crate) terraform: Option<TerraformView>,
    /// ASCII markers instead of ✓ ! ✗ (`NO_COLOR`, `TERM=dumb`).
    #[serde(skip)]
    pub(crate) plain: bool,
}

impl DoctorView {
    pub(crate) fn new(
        facts: &crate::model::readiness::Facts<'_>,
        readiness: &crate::model::readiness::Readiness,
        plain: bool,
    ) -> DoctorView {
        use crate::model::lifecycle::Fate;
        use crate::model::readiness::Level;
        let horizon = readiness.horizon.as_ref().map(|h| HorizonView {
            earlier: h.earlier,
            deletable_now: h.deletable_now,
            deletable_later: h.deletable_later,
            oldest_restorable: h
                .oldest_restorable
                .as_ref()
                .map(|v| v.version_id.to_string()),
            oldest_restorable_written: h
                .oldest_restorable
                .as_ref()
                .map(|v| v.last_modified.to_string()),
            state_expires: readiness
                .current_expiry
                .as_ref()
                .map(|e| e.from.to_string()),
            versions: readiness
                .fates
                .iter()
                .filter(|f| !f.delete_marker)
                .filter_map(|f| {
                    let (fate, from, writes, rule) = match &f.fate {
                        Fate::Kept => return None,
                        Fate::Deleted { from, rule } => {
                            ("deletable", Some(from.to_string()), None, rule)
                        }
                        Fate::KeptForWrites { writes, rule } => {
                            ("deleted_after_writes", None, Some(*writes), rule)
                        }
                    };
                    Some(FateView {
                        version_id: f.version_id.to_string(),
                        last_modified: f.last_modified.to_string(),
                        noncurrent_since: f.noncurrent_since.map(|t| t.to_string()),
                        fate,
                        deletable_from: from,
                        after_writes: writes,
                        rule: rule.clone(),
                        marks: facts.marks.get(&f.version_id).cloned().unwrap_or_default(),
                    })
                })
                .collect(),
        });
        let variables = readiness.mapping.as_ref().map(|m| VariablesView {
            slot_variable: m.slot_variable.clone(),
            set: m
                .variables
                .iter()
                .map(|v| SetVariableView {
                    name: v.name.clone(),
                    source: v.source.describe(),
                })
                .collect(),
            not_set: m.unset(),
        });
        let terraform = facts
            .terraform
            .binary
            .as_ref()
            .ok()
            .map(|(binary, version)| TerraformView {
                binary: binary.clone(),
                version: version.clone(),
                state_terraform_version: match &facts.current {
                    Some(Ok(s)) => Some(s.terraform_version.clone()),
                    _ => None,
                },
            });
        DoctorView {
            location: facts.location.clone(),
            ready: readiness.ready(),
            problems: readiness.count(Level::Problem),
            warnings: readiness.count(Level::Warning),
            findings: readiness.findings.clone(),
            horizon,
            variables,
            principal: facts.principal.clone(),
            terraform,
            plain,
        }
    }
}

/// `doctor`'s findings grouped by check, each with its marker and, below it, what to do.
pub(crate) fn render_doctor(view: &DoctorView) -> String {
    use crate::model::readiness::{Check, Level};
    let mut out = String::new();
    let _ = writeln!(out, "tfrollback doctor: {}", view.location);
    for check in Check::ALL {
        let findings: Vec<_> = view.findings.iter().filter(|f| f.check == check).collect();
        if findings.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", style(check.title()).bold());
        for f in findings {
            let marker = match (f.level, view.plain) {
                (Level::Ok, false) => style("✓").green().to_string(),
                (Level::Warning, false) => style("!").yellow().bold().to_string(),
                (Level::Problem, false) => style("✗").red().bold().to_string(),
                (Level::Ok, true) => "ok".into(),
                (Level::Warning, true) => "!!".into(),
                (Level::Problem, true) => "xx".into(),
            };
            let _ = writeln!(out, "  {marker} {}", f.message);
            if let Some(hint) = &f.hint {
                let _ = writeln!(out, "    {}", style(format!("hint: {hint}")).dim());
            }
        }
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "\n{}",
        if view.ready {
            style(format!(
                "Ready for a rollback: no problems, {}.",
                plural(view.warnings, "warning")
            ))
            .green()
            .bold()
        } else {
            style(format!(
                "Not ready: {} would stop a rollback ({}); exit code 8.",
                plural(view.problems, "problem"),
                plural(view.warnings, "warning")
            ))
            .red()
            .bold()
        }
    );
    out
}

/// The view of one listing entry with what is known of its body.
pub(crate) fn version_view(
    v: &ObjectVersion,
    info: Option<Cached>,
    slot_var: Option<&str>,
    listing: &Listing,
) -> VersionView {
    let mut view = VersionView {
        version_id: v.version_id.to_string(),
        last_modified: v.last_modified.to_string(),
        size: v.size,
        is_latest: v.is_latest,
        delete_marker: v.delete_marker,
        serial: None,
        lineage: None,
        terraform_version: None,
        resources: None,
        outputs: None,
        slot: None,
        error: None,
        marks: listing
            .marks
            .get(&v.version_id)
            .cloned()
            .unwrap_or_default(),
        intermediate: listing.intermediate.contains(&v.version_id),
        slot_path: None,
    };
    match info {
        Some(Cached::Summary(s)) => {
            let outputs: BTreeMap<String, serde_json::Value> = s
                .outputs
                .iter()
                .map(|(name, o)| (name.clone(), o.display_value()))
                .collect();
            if let Some((path, slot)) = crate::model::mapping::find_slot(&outputs, slot_var) {
                view.slot_path = Some(path);
                view.slot = Some(slot);
            }
            view.serial = Some(s.serial);
            view.lineage = Some(s.lineage);
            view.terraform_version = Some(s.terraform_version);
            view.resources = s.resources;
            view.outputs = Some(outputs);
        }
        Some(Cached::Unreadable(reason)) => view.error = Some(reason),
        None => {}
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_accounts_for_every_variable_it_does_not_set() {
        use crate::model::mapping::Skipped;
        let unset = |name: &str, reason: &str| Skipped {
            name: name.into(),
            reason: reason.into(),
        };
        let endpoint = || Endpoint {
            version_id: "v".into(),
            serial: 1,
            current: false,
        };
        let view = DiffView {
            from: endpoint(),
            to: endpoint(),
            outputs: vec![],
            resources: ResourceChanges::default(),
            variables: vec![],
            skipped_variables: vec!["db_password: output db_password is sensitive".into()],
            unset_variables: vec![
                unset("db_password", "output db_password is sensitive"),
                unset("fail_on_slot", "nothing"),
                unset("region", "the mapping `x.region` names nothing"),
                unset("slow_seconds", "nothing"),
            ],
            skipped_versions: vec![],
            location: "s3://b/k".into(),
        };
        let text = console::strip_ansi_codes(&render_diff(&view)).into_owned();
        assert!(
            text.contains("  not set: db_password: output db_password is sensitive\n"),
            "{text}"
        );
        assert!(
            text.contains("  left as they are: fail_on_slot, slow_seconds (nothing)\n"),
            "{text}"
        );
        assert!(
            text.contains("  left as they are: region (the mapping `x.region` names nothing)\n"),
            "{text}"
        );
        assert_eq!(text.matches("db_password").count(), 2, "{text}");
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(4300), "4.2 KiB");
        assert_eq!(human_size(30 * 1024 * 1024), "30.0 MiB");
        assert_eq!(human_time("2026-11-22T03:40:12Z"), "2026-11-22 03:40:12");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn list_at_marks_the_version_current_then_and_says_what_it_passed_over() {
        use crate::model::selector::tests::version;
        let listing = Listing::default();
        let views: Vec<VersionView> = [
            version("v3", true, false),
            version("v2", false, false),
            version("v1", false, false),
        ]
        .iter()
        .map(|v| version_view(v, None, None, &listing))
        .collect();
        let view = |at: &str, skipped: &[&str], shown: usize| ListView {
            bucket: "b".into(),
            key: "k".into(),
            workspace: "default".into(),
            versions: views[..shown].to_vec(),
            at: Some(AtView {
                time: "2026-11-20T14:30:00Z".into(),
                version_id: at.into(),
                last_modified: "2026-11-20T14:12:09Z".into(),
                is_latest: at == "v3",
                skipped_versions: skipped.iter().map(ToString::to_string).collect(),
            }),
        };
        let now = jiff::Timestamp::UNIX_EPOCH;
        let out = render_list(&view("v1", &["v2"], 3), 80, now);
        let rows: Vec<&str> = out.lines().skip(1).take(3).collect();
        assert!(rows[0].starts_with("* v3"), "{out}");
        assert!(rows[1].starts_with("  v2"), "{out}");
        assert!(rows[2].starts_with("@ v1"), "{out}");
        assert!(out.contains("@ current at the time asked"), "{out}");
        assert!(
            out.contains(
                "At 2026-11-20 14:30:00 UTC the current version was v1 (written 2026-11-20 14:12:09 UTC).\nPassed over v2: probably intermediate snapshots"
            ),
            "{out}"
        );
        let out = render_list(&view("v3", &[], 3), 200, now);
        assert!(out.contains("UTC, and still is)."), "{out}");
        assert!(!out.contains("Passed over"), "{out}");
        let out = render_list(&view("v1", &[], 1), 80, now);
        assert!(
            out.contains("UTC), older than the versions shown."),
            "{out}"
        );
        // Without --at, the legend is as it was.
        let plain = ListView {
            at: None,
            ..view("v1", &[], 3)
        };
        assert!(!render_list(&plain, 80, now).contains('@'));
    }
}
