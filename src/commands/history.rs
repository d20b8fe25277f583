//! `tfrollback history [OPERATION-ID]`: the audit records of rollbacks, newest first.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::HistoryArgs;
use crate::commands::Context;
use crate::error::Refusal;
use crate::error::{Error, Exit};
use crate::store::history::HistoryRecord;

#[derive(Debug, Serialize)]
struct HistoryView {
    location: String,
    records: Vec<HistoryRecord>,
}

pub(crate) async fn run(ctx: &Context, args: &HistoryArgs) -> Result<Exit, Error> {
    let store = &ctx.store.history;
    let Some(operation) = &args.operation else {
        let view = HistoryView {
            location: ctx.location(),
            records: store.list(args.limit).await?,
        };
        return ctx.emit(&view, render_list);
    };
    let mut found = store.find(operation).await?;
    match found.len() {
        1 => {
            let record = found.remove(0);
            ctx.emit(&record, render_one)
        }
        0 => Err(Refusal::UnknownOperation {
            operation: operation.clone(),
            location: ctx.location(),
        }
        .into()),
        count => Err(Refusal::AmbiguousOperation {
            operation: operation.clone(),
            count,
        }
        .into()),
    }
}

fn version(v: Option<&crate::model::selector::VersionRef>) -> String {
    v.map(|v| format!("{} (serial {})", v.version_id, v.serial))
        .unwrap_or_else(|| "-".into())
}

fn render_list(view: &HistoryView) -> String {
    let mut out = String::new();
    if view.records.is_empty() {
        let _ = writeln!(out, "No rollbacks recorded for {} yet.", view.location);
        return out;
    }
    let _ = writeln!(out, "History of {}, newest first\n", view.location);
    for r in &view.records {
        let _ = writeln!(
            out,
            "{}  {}  exit {}  {}\n    operation {}  by {}  ({} ms)\n    from {}\n    to   {}",
            crate::render::human_time(&r.started_at),
            r.result,
            r.exit_code,
            r.command,
            r.operation_id,
            r.who.describe(),
            r.duration_ms,
            version(r.from.as_ref()),
            version(r.to.as_ref()),
        );
        if let Some(e) = &r.error {
            let first = e.lines().next().unwrap_or_default();
            let _ = writeln!(out, "    error {first}");
        }
        out.push('\n');
    }
    out
}

fn render_one(r: &HistoryRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Operation  {}", r.operation_id);
    let _ = writeln!(out, "Command    tfrollback {}", r.command);
    let _ = writeln!(out, "Result     {} (exit {})", r.result, r.exit_code);
    let _ = writeln!(out, "Who        {}", r.who.describe());
    if let Some(ci) = &r.who.ci
        && let Some(url) = &ci.url
    {
        let _ = writeln!(out, "CI run     {url}");
    }
    let _ = writeln!(
        out,
        "Started    {} UTC ({} ms)",
        crate::render::human_time(&r.started_at),
        r.duration_ms
    );
    let _ = writeln!(out, "From       {}", version(r.from.as_ref()));
    let _ = writeln!(out, "To         {}", version(r.to.as_ref()));
    if let Some(e) = &r.error {
        let _ = writeln!(out, "Error      {e}");
    }
    if let Some(report) = &r.report {
        let _ = writeln!(
            out,
            "\nReport\n{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    }
    out
}
