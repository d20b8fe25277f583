//! The audit of the commands that change state (`to`, `restore`, `recover`): whatever their
//! outcome, one history record next to the state, and for `to` and `restore` a Markdown
//! report (`--report`, the CI step summary) even when they stopped early.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::commands::{Context, Outcome};
use crate::error::Error;
use crate::model::identity::Who;
use crate::model::selector::VersionRef;
use crate::operation::report::write_markdown;
use crate::store::history::HistoryRecord;
use crate::store::journal::Journal;

/// What a state-changing command tells the history as it learns it.
pub(crate) struct Audit {
    operation_id: Option<String>,
    /// The command as typed until an operation names it (`to <version id>`).
    command: String,
    pub(crate) from: Option<VersionRef>,
    pub(crate) to: Option<VersionRef>,
    result: Option<String>,
    report: Option<Value>,
    /// Where `--report` asked for the Markdown report (`to`, `restore`), if anywhere.
    report_file: Option<PathBuf>,
    /// Whether a Markdown report is published when the command stops early.
    publishes: bool,
    /// What set off an automatic rollback, for the history record.
    pub(crate) trigger: Option<Value>,
    started_at: jiff::Timestamp,
    started: Instant,
}

impl Audit {
    /// The audit of a command that writes a Markdown report even when it stops early.
    pub(crate) fn reported(command: String, report_file: Option<PathBuf>) -> Audit {
        Audit {
            report_file,
            publishes: true,
            ..Audit::new(command)
        }
    }

    /// The audit of a command that leaves only its history record.
    pub(crate) fn new(command: String) -> Audit {
        Audit {
            operation_id: None,
            command,
            from: None,
            to: None,
            result: None,
            report: None,
            report_file: None,
            publishes: false,
            trigger: None,
            started_at: jiff::Timestamp::now(),
            started: Instant::now(),
        }
    }

    /// The operation has begun: from now on the history names it as its journal does.
    pub(crate) fn operation(&mut self, journal: &Journal) {
        self.operation_id = Some(journal.operation_id.clone());
        self.command.clone_from(&journal.command);
        self.to = Some(journal.target.clone());
    }

    /// `recover` of `journal`'s operation: the record names both.
    pub(crate) fn recovering(&mut self, journal: &Journal, command: String) {
        self.operation(journal);
        self.command = command;
    }

    /// Records a report: its status becomes the result.
    pub(crate) fn report<T: Serialize>(&mut self, report: &T) {
        let value = serde_json::to_value(report).unwrap_or(Value::Null);
        self.result = value
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.report = Some(value);
    }

    /// Publishes the early-stop report if there is one to publish, then writes the history
    /// record. Neither may turn the command's outcome into a failure: problems are warnings.
    pub(crate) async fn conclude(mut self, ctx: &Context, result: &Result<Outcome, Error>) {
        let (code, error) = match result {
            Ok(Outcome::Done(exit)) => (*exit as u8, None),
            Ok(Outcome::NothingToDo { .. }) => {
                self.result = Some("already_at_target".into());
                (0, None)
            }
            Err(e) => (e.exit() as u8, Some(e.render())),
        };
        let early = match result {
            Ok(Outcome::NothingToDo { reason }) => {
                Some(("nothing to do", "Why", reason.clone(), None))
            }
            Err(e) => Some((failure_headline(e), "Error", e.to_string(), e.hint())),
            Ok(Outcome::Done(_)) => None,
        };
        if self.publishes
            && let Some((headline, section, text, hint)) = early
        {
            let md = early_report(
                &self.command,
                &ctx.location(),
                code,
                headline,
                section,
                &text,
                hint,
            );
            let published = write_markdown(
                &md,
                self.report_file.as_deref(),
                ctx.settings.step_summary.as_deref(),
            );
            if let Err(io) = published {
                ctx.printer
                    .note(&format!("warning: could not write the report: {io}"));
            }
        }
        let who = Who {
            arn: ctx.store.caller_arn().await,
            user: ctx.settings.identity.user.clone(),
            ci: ctx.settings.identity.ci.clone(),
        };
        let record = self.finish(who, code, error);
        if let Err(e) = ctx.store.history.record(&record).await {
            ctx.printer
                .note(&format!("warning: could not write the history record: {e}"));
        }
    }

    fn finish(self, who: Who, exit_code: u8, error: Option<String>) -> HistoryRecord {
        let result = self.result.unwrap_or_else(|| {
            if exit_code == 0 {
                "ok".into()
            } else {
                "error".into()
            }
        });
        HistoryRecord {
            operation_id: self
                .operation_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            command: self.command,
            who,
            started_at: self.started_at.to_string(),
            finished_at: jiff::Timestamp::now().to_string(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            from: self.from,
            to: self.to,
            result,
            exit_code,
            error,
            report: self.report,
            trigger: self.trigger,
        }
    }
}

fn failure_headline(error: &Error) -> &'static str {
    match error.exit() as u8 {
        2 => "usage error, nothing was changed",
        5 => "the state is locked by someone else, nothing was changed",
        _ => "failed, nothing was changed",
    }
}

/// The Markdown report of a command that stopped before it had a report of its own (a
/// refusal, a lock held, nothing to do), written where the full report would have gone.
pub(crate) fn early_report(
    command: &str,
    location: &str,
    exit: u8,
    headline: &str,
    section: &str,
    text: &str,
    hint: Option<String>,
) -> String {
    let mut md = format!("## tfrollback: {headline}\n\n| | |\n|---|---|\n");
    let _ = writeln!(md, "| State | `{location}` |");
    let _ = writeln!(md, "| Command | `tfrollback {command}` |");
    let _ = writeln!(md, "| Exit code | {exit} |");
    let _ = writeln!(md, "\n### {section}\n\n```\n{text}\n```");
    if let Some(hint) = hint {
        let _ = writeln!(md, "\n> {hint}");
    }
    md
}
