//! `tfrollback status`: who holds the state lock, whether a rollback was left unfinished, and
//! which deploys `guard` froze (`--check-frozen` exits 9 when one is).

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::StatusArgs;
use crate::commands::Context;
use crate::error::{Error, Exit};
use crate::store::freezes::Freeze;
use crate::store::journal::Journal;
use crate::store::lock::LockInfo;

#[derive(Debug, Serialize)]
pub(crate) struct StatusView {
    pub(crate) location: String,
    pub(crate) lock: Option<LockInfo>,
    pub(crate) lock_configured: bool,
    pub(crate) unfinished: Option<Journal>,
    /// Deploys `guard` rolled back, oldest first.
    pub(crate) frozen: Vec<Freeze>,
}

pub(crate) async fn run(ctx: &Context, args: &StatusArgs) -> Result<Exit, Error> {
    let store = &ctx.store;
    let (lock, unfinished, frozen) = tokio::try_join!(
        async { store.locker.holder().await.map_err(Error::from) },
        async { store.unfinished().await.map_err(Error::from) },
        async { store.freezes.list().await.map_err(Error::from) }
    )?;
    let view = StatusView {
        location: ctx.location(),
        lock,
        lock_configured: store.locker.enabled(),
        unfinished,
        frozen,
    };
    let exit = ctx.emit(&view, render)?;
    if args.check_frozen && !view.frozen.is_empty() {
        ctx.printer.note(&format!(
            "error: {} frozen deploy(s) of {}: guard rolled them back; do not apply them again",
            view.frozen.len(),
            view.location
        ));
        ctx.printer.note(
            "hint: deploy a fixed release, or lift the freeze with `tfrollback unfreeze VERSION` once it is understood",
        );
        return Ok(Exit::Frozen);
    }
    Ok(exit)
}

fn render(view: &StatusView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "State  {}", view.location);
    match (&view.lock, view.lock_configured) {
        (_, false) => {
            let _ = writeln!(
                out,
                "Lock   none configured (no use_lockfile, no dynamodb_table)"
            );
        }
        (None, true) => {
            let _ = writeln!(out, "Lock   free");
        }
        (Some(l), true) => {
            let _ = writeln!(
                out,
                "Lock   held by {} since {}\n       operation: {}\n       ID: {}",
                l.who, l.created, l.operation, l.id
            );
        }
    }
    match &view.unfinished {
        None => {
            let _ = writeln!(out, "Rollback  none unfinished");
        }
        Some(j) => {
            let last = j
                .last_step()
                .map(|s| format!("{} ({:?})", s.name, s.status).to_lowercase())
                .unwrap_or_else(|| "none".into());
            let _ = writeln!(
                out,
                "Rollback  UNFINISHED: `tfrollback {}` (operation {})\n          started {} by {} on {}\n          last step: {last}",
                j.command, j.operation_id, j.started_at, j.who, j.host
            );
            if let Some(s) = &j.snapshot {
                let _ = writeln!(
                    out,
                    "          snapshot: version {} (serial {}), {}",
                    s.version_id, s.serial, s.file
                );
            }
            let _ = writeln!(out, "Run `tfrollback recover` to finish it safely.");
        }
    }
    if view.frozen.is_empty() {
        let _ = writeln!(out, "Frozen    none");
    }
    for f in &view.frozen {
        let _ = writeln!(
            out,
            "Frozen    {} (serial {}) since {}: `{}` failed ({})\n          rolled back to {} (serial {}){}; `tfrollback unfreeze {}` lifts it",
            f.version.version_id,
            f.version.serial,
            f.frozen_at,
            f.check,
            f.detail.lines().last().unwrap_or(""),
            f.target.version_id,
            f.target.serial,
            f.result
                .as_deref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default(),
            f.version.version_id
        );
    }
    out
}
