//! The report of a state-changing command: one value, printed as JSON with `--json`, as text on
//! a terminal, and as Markdown for `--report` and `$GITHUB_STEP_SUMMARY`. Values in it are
//! already redacted.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::model::check::Observation;
use crate::model::diff::Orphan;
use crate::model::mapping::Skipped;
use crate::model::selector::{VersionId, VersionRef};
use crate::store::journal::{Journal, Step, StepRecord, StepStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    RolledBack,
    /// The apply succeeded, verification failed; the state terraform wrote is kept.
    RolledBackUnverified,
    AlreadyAtTarget,
    Planned,
    Restored,
    RestoreFailed,
    /// Something was done, then the operation could not be closed (its journal or lock): it
    /// holds the lock for `recover`.
    Unfinished,
    Recovered,
    NothingToRecover,
    RestoredState,
}

impl Status {
    pub(crate) fn headline(self) -> &'static str {
        match self {
            Status::RolledBack => "rolled back",
            Status::RolledBackUnverified => {
                "rolled back, but verification failed (the state terraform wrote is kept)"
            }
            Status::AlreadyAtTarget => "already at the target version",
            Status::Planned => "planned (dry run, nothing changed)",
            Status::Restored => "rollback failed; the state was restored to the snapshot",
            Status::RestoreFailed => "rollback failed and the snapshot could not be restored",
            Status::Unfinished => "stopped with the lock held: run `tfrollback recover`",
            Status::Recovered => "recovered",
            Status::NothingToRecover => "nothing to recover",
            Status::RestoredState => "state restored (no apply)",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct PlanCounts {
    pub(crate) add: u64,
    pub(crate) change: u64,
    pub(crate) destroy: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct VariableChange {
    pub(crate) name: String,
    pub(crate) current: Option<Value>,
    pub(crate) rollback: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct StepView {
    pub(crate) name: Step,
    pub(crate) status: StepStatus,
    pub(crate) duration_ms: u64,
}

impl From<&StepRecord> for StepView {
    fn from(s: &StepRecord) -> StepView {
        StepView {
            name: s.name,
            status: s.status,
            duration_ms: s.duration_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) status: Status,
    pub(crate) operation_id: String,
    pub(crate) command: String,
    pub(crate) location: String,
    pub(crate) target: Option<VersionRef>,
    pub(crate) snapshot: Option<VersionRef>,
    pub(crate) new_version_id: Option<VersionId>,
    pub(crate) var_file: Option<String>,
    pub(crate) plan: Option<PlanCounts>,
    pub(crate) verified: bool,
    pub(crate) orphans: Vec<Orphan>,
    pub(crate) variables: Vec<VariableChange>,
    /// Declared variables the rollback does not set, and why: they keep whatever the
    /// configuration, var files and `--var` give them.
    pub(crate) unset_variables: Vec<Skipped>,
    pub(crate) steps: Vec<StepView>,
    /// The health checks `to --check` ran after the verify step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) checks: Vec<Observation>,
    /// What went wrong, when something did.
    pub(crate) error: Option<String>,
    /// What to do next.
    pub(crate) next: Vec<String>,
}

/// Writes a Markdown report to `path` and appends it to CI's step summary, where given.
pub(crate) fn write_markdown(
    md: &str,
    path: Option<&Path>,
    step_summary: Option<&Path>,
) -> std::io::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, md)?;
    }
    if let Some(summary) = step_summary {
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
    pub(crate) fn new(status: Status, journal: &Journal, location: String) -> Report {
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
            unset_variables: vec![],
            steps: journal.steps.iter().map(StepView::from).collect(),
            checks: vec![],
            error: None,
            next: vec![],
        }
    }

    pub(crate) fn text(&self) -> String {
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
        if !self.unset_variables.is_empty() {
            let names: Vec<&str> = self
                .unset_variables
                .iter()
                .map(|u| u.name.as_str())
                .collect();
            let _ = writeln!(
                out,
                "  not set      {} (they keep what the configuration, var files and --var give them)",
                names.join(", ")
            );
        }
        if matches!(self.status, Status::RolledBack) {
            let _ = writeln!(
                out,
                "  verified     {}",
                if self.verified { "yes" } else { "no" }
            );
        }
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  check        {} {}: {}",
                c.result.word(),
                c.check,
                c.detail
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

    pub(crate) fn markdown(&self) -> String {
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
        if !self.unset_variables.is_empty() {
            let _ = writeln!(
                md,
                "\n### Variables left as they are\n\n| variable | why |\n|---|---|"
            );
            for u in &self.unset_variables {
                let _ = writeln!(md, "| `{}` | {} |", u.name, u.reason.replace('|', "\\|"));
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
        if !self.checks.is_empty() {
            let _ = writeln!(md, "\n### Checks\n\n{}", checks_table(&self.checks));
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
    pub(crate) fn publish(
        &self,
        path: Option<&Path>,
        step_summary: Option<&Path>,
    ) -> std::io::Result<()> {
        write_markdown(&self.markdown(), path, step_summary)
    }

    /// The report of an outcome reached before an operation began (nothing was locked or
    /// written), in the shape of the others.
    pub(crate) fn detached(
        status: Status,
        command: String,
        target: Option<VersionRef>,
        location: String,
    ) -> Report {
        Report {
            status,
            operation_id: uuid::Uuid::new_v4().to_string(),
            command,
            location,
            target,
            snapshot: None,
            new_version_id: None,
            var_file: None,
            plan: None,
            verified: false,
            orphans: vec![],
            variables: vec![],
            unset_variables: vec![],
            steps: vec![],
            checks: vec![],
            error: None,
            next: vec![],
        }
    }
}

/// Check runs as a Markdown table (the detail on one line, pipes escaped).
pub(crate) fn checks_table(checks: &[Observation]) -> String {
    let mut md = String::from("| time (UTC) | check | result | detail |\n|---|---|---|---|\n");
    for c in checks {
        let time = c.at.get(11..19).unwrap_or(&c.at);
        let _ = writeln!(
            md,
            "| {time} | `{}` | {} | {} |",
            c.check.replace('|', "\\|"),
            c.result.word(),
            c.detail.replace('\n', " ").replace('|', "\\|")
        );
    }
    md
}
