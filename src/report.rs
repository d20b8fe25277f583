//! The report of a state-changing command: one value, printed as JSON with `--json`, as text on
//! a terminal, and as Markdown for `--report` and `$GITHUB_STEP_SUMMARY`. Values in it are
//! already redacted.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::journal::{StepRecord, StepStatus, VersionRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    RolledBack,
    AlreadyAtTarget,
    Planned,
    Restored,
    RestoreFailed,
    Recovered,
    NothingToRecover,
    RestoredState,
}

impl Status {
    fn headline(self) -> &'static str {
        match self {
            Status::RolledBack => "rolled back",
            Status::AlreadyAtTarget => "already at the target version",
            Status::Planned => "planned (dry run, nothing changed)",
            Status::Restored => "rollback failed; the state was restored to the snapshot",
            Status::RestoreFailed => "rollback failed and the snapshot could not be restored",
            Status::Recovered => "recovered",
            Status::NothingToRecover => "nothing to recover",
            Status::RestoredState => "state restored (no apply)",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanCounts {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
}

/// A resource the failed apply created that the restored state no longer tracks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orphan {
    pub address: String,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariableChange {
    pub name: String,
    pub current: Option<Value>,
    pub rollback: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepView {
    pub name: String,
    pub status: StepStatus,
    pub duration_ms: u64,
}

impl From<&StepRecord> for StepView {
    fn from(s: &StepRecord) -> StepView {
        StepView {
            name: s.name.clone(),
            status: s.status,
            duration_ms: s.duration_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    pub operation_id: String,
    pub command: String,
    pub location: String,
    pub target: Option<VersionRef>,
    pub snapshot: Option<VersionRef>,
    pub new_version_id: Option<String>,
    pub var_file: Option<String>,
    pub plan: Option<PlanCounts>,
    pub verified: bool,
    pub orphans: Vec<Orphan>,
    pub variables: Vec<VariableChange>,
    pub steps: Vec<StepView>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// What to do next.
    pub next: Vec<String>,
}

/// The Markdown report of a `to` or `restore` that stopped with an error (a refusal, a lock
/// held, ...), written where the full report would have gone.
pub fn publish_failure(
    command: &str,
    location: &str,
    error: &crate::error::Error,
    path: Option<&Path>,
) -> std::io::Result<()> {
    let exit = error.exit() as u8;
    let headline = match exit {
        0 => "nothing to do",
        2 => "usage error, nothing was changed",
        5 => "the state is locked by someone else, nothing was changed",
        _ => "failed, nothing was changed",
    };
    let mut md = format!("## tfrollback: {headline}\n\n| | |\n|---|---|\n");
    let _ = writeln!(md, "| State | `{location}` |");
    let _ = writeln!(md, "| Command | `tfrollback {command}` |");
    let _ = writeln!(md, "| Exit code | {exit} |");
    let _ = writeln!(
        md,
        "\n### {}\n\n```\n{error}\n```",
        if exit == 0 { "Why" } else { "Error" }
    );
    if let Some(hint) = error.hint() {
        let _ = writeln!(md, "\n> {hint}");
    }
    write_markdown(&md, path)
}

fn write_markdown(md: &str, path: Option<&Path>) -> std::io::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, md)?;
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|v| !v.is_empty()) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(summary)?;
        writeln!(f, "{md}")?;
    }
    Ok(())
}

impl Report {
    /// A report of an operation as its journal records it; the caller fills in the outcome.
    pub fn new(status: Status, journal: &crate::journal::Journal, location: String) -> Report {
        Report {
            status,
            operation_id: journal.operation_id.clone(),
            command: journal.command.clone(),
            location,
            target: Some(journal.target.clone()),
            snapshot: journal.snapshot.as_ref().map(|s| VersionRef {
                version_id: s.version_id.clone(),
                serial: s.serial,
            }),
            new_version_id: None,
            var_file: None,
            plan: None,
            verified: false,
            orphans: vec![],
            variables: vec![],
            steps: journal.steps.iter().map(StepView::from).collect(),
            error: None,
            next: vec![],
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}: {}", self.location, self.status.headline());
        if let Some(t) = &self.target {
            let _ = writeln!(out, "  target       {} (serial {})", t.version_id, t.serial);
        }
        if let Some(s) = &self.snapshot {
            let _ = writeln!(out, "  snapshot     {} (serial {})", s.version_id, s.serial);
        }
        if let Some(v) = &self.new_version_id {
            let _ = writeln!(out, "  new version  {v}");
        }
        if let Some(p) = &self.plan {
            let _ = writeln!(
                out,
                "  plan         {} to add, {} to change, {} to destroy",
                p.add, p.change, p.destroy
            );
        }
        if let Some(f) = &self.var_file {
            let _ = writeln!(out, "  var file     {f}");
        }
        if matches!(self.status, Status::RolledBack) {
            let _ = writeln!(
                out,
                "  verified     {}",
                if self.verified { "yes" } else { "no" }
            );
        }
        if let Some(e) = &self.error {
            let _ = writeln!(
                out,
                "  error        {}",
                e.replace('\n', "\n               ")
            );
        }
        if !self.orphans.is_empty() {
            let _ = writeln!(
                out,
                "  resources the failed apply created that the restored state does not track:"
            );
            for o in &self.orphans {
                let _ = writeln!(
                    out,
                    "    {} (id {})",
                    o.address,
                    o.id.as_deref().unwrap_or("unknown")
                );
            }
        }
        for n in &self.next {
            let _ = writeln!(out, "{n}");
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## tfrollback: {}\n", self.status.headline());
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| State | `{}` |", self.location);
        let _ = writeln!(md, "| Command | `tfrollback {}` |", self.command);
        let _ = writeln!(
            md,
            "| Status | `{}` |",
            serde_json::to_value(self.status)
                .unwrap_or_default()
                .as_str()
                .unwrap_or("")
        );
        if let Some(t) = &self.target {
            let _ = writeln!(md, "| Target | `{}` (serial {}) |", t.version_id, t.serial);
        }
        if let Some(s) = &self.snapshot {
            let _ = writeln!(
                md,
                "| Snapshot | `{}` (serial {}) |",
                s.version_id, s.serial
            );
        }
        if let Some(v) = &self.new_version_id {
            let _ = writeln!(md, "| New version | `{v}` |");
        }
        if let Some(p) = &self.plan {
            let _ = writeln!(
                md,
                "| Plan | {} to add, {} to change, {} to destroy |",
                p.add, p.change, p.destroy
            );
        }
        let _ = writeln!(
            md,
            "| Verified | {} |",
            if self.verified { "yes" } else { "no" }
        );
        let _ = writeln!(md, "| Operation | `{}` |", self.operation_id);
        if !self.variables.is_empty() {
            let _ = writeln!(
                md,
                "\n### Variables\n\n| variable | before | after |\n|---|---|---|"
            );
            for v in &self.variables {
                let before = v
                    .current
                    .as_ref()
                    .map(|c| format!("`{c}`"))
                    .unwrap_or_else(|| "-".into());
                let _ = writeln!(md, "| `{}` | {before} | `{}` |", v.name, v.rollback);
            }
        }
        let _ = writeln!(
            md,
            "\n### Steps\n\n| step | status | duration |\n|---|---|---|"
        );
        for s in &self.steps {
            let status = serde_json::to_value(s.status).unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {} | {} ms |",
                s.name,
                status.as_str().unwrap_or(""),
                s.duration_ms
            );
        }
        if let Some(e) = &self.error {
            let _ = writeln!(md, "\n### Error\n\n```\n{e}\n```");
        }
        if !self.orphans.is_empty() {
            let _ = writeln!(md, "\n### Resources left outside the state\n");
            for o in &self.orphans {
                let _ = writeln!(
                    md,
                    "- `{}` (id `{}`)",
                    o.address,
                    o.id.as_deref().unwrap_or("unknown")
                );
            }
        }
        for n in &self.next {
            let _ = writeln!(md, "\n> {n}");
        }
        md
    }

    /// Writes the Markdown report to `path` and appends it to the GitHub step summary.
    pub fn publish(&self, path: Option<&Path>) -> std::io::Result<()> {
        write_markdown(&self.markdown(), path)
    }
}
