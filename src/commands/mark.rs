//! `tfrollback mark` and `unmark`: known-good marks on state versions, for `last-good` and
//! `last:LABEL`. The CI pattern: mark after a deploy whose smoke test passed; on failure,
//! `tfrollback to last-good --auto-approve`.

use serde::Serialize;

use crate::cli::{MarkArgs, UnmarkArgs};
use crate::commands::Context;
use crate::error::{Error, Exit};
use crate::store::marks::Mark;

#[derive(Debug, Serialize)]
struct MarkView {
    action: &'static str,
    version_id: String,
    label: String,
    changed: bool,
    location: String,
}

fn render(v: &MarkView) -> String {
    match (v.action, v.changed) {
        ("mark", _) => format!("Marked {} as `{}` ({})", v.version_id, v.label, v.location),
        (_, true) => format!("Removed mark `{}` from {}", v.label, v.version_id),
        (_, false) => format!(
            "{} had no mark `{}`; nothing to remove",
            v.version_id, v.label
        ),
    }
}

pub(crate) async fn mark(ctx: &Context, args: &MarkArgs) -> Result<Exit, Error> {
    let listing = ctx
        .listing(&[&args.version], crate::commands::versions::Freshness::Live)
        .await?;
    let version = ctx.resolve(&args.version, &listing)?;
    if version.delete_marker {
        return Err(Error::DeleteMarker {
            version: version.version_id.clone(),
        });
    }
    ctx.store
        .marks
        .mark(Mark {
            version_id: version.version_id.clone(),
            label: args.label.clone(),
            note: args.note.clone(),
            who: ctx.settings.identity.user.clone(),
            at: jiff::Timestamp::now().to_string(),
        })
        .await?;
    let view = MarkView {
        action: "mark",
        version_id: version.version_id.to_string(),
        label: args.label.clone(),
        changed: true,
        location: ctx.location(),
    };
    ctx.emit(&view, render)
}

pub(crate) async fn unmark(ctx: &Context, args: &UnmarkArgs) -> Result<Exit, Error> {
    let listing = ctx
        .listing(&[&args.version], crate::commands::versions::Freshness::Live)
        .await?;
    let version = ctx.resolve(&args.version, &listing)?;
    let changed = ctx
        .store
        .marks
        .unmark(&version.version_id, &args.label)
        .await?;
    let view = MarkView {
        action: "unmark",
        version_id: version.version_id.to_string(),
        label: args.label.clone(),
        changed,
        location: ctx.location(),
    };
    ctx.emit(&view, render)
}
