//! `tfrollback status`: who holds the state lock, and whether a rollback was left unfinished.

use std::fmt::Write as _;

use serde::Serialize;

use crate::commands::Context;
use crate::error::{Error, Exit};
use crate::store::journal::Journal;
use crate::store::lock::LockInfo;

#[derive(Debug, Serialize)]
pub(crate) struct StatusView {
    pub(crate) location: String,
    pub(crate) lock: Option<LockInfo>,
    pub(crate) lock_configured: bool,
    pub(crate) unfinished: Option<Journal>,
}

pub(crate) async fn run(ctx: &Context) -> Result<Exit, Error> {
    let store = &ctx.store;
    let (lock, unfinished) = tokio::try_join!(
        async { store.locker.holder().await.map_err(Error::from) },
        async { store.unfinished().await.map_err(Error::from) }
    )?;
    let view = StatusView {
        location: ctx.location(),
        lock,
        lock_configured: store.locker.enabled(),
        unfinished,
    };
    ctx.emit(&view, render)
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
    out
}
