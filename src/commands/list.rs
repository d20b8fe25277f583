//! `tfrollback list`: every version of the state object, newest first, with what each recorded.

use crate::cli::ListArgs;
use crate::commands::Context;
use crate::commands::versions::summary_map;
use crate::error::{Error, Exit};
use crate::model::selector;
use crate::render::{ListView, render_list, version_view};
use crate::store::summaries::summaries;

pub(crate) async fn run(ctx: &Context, args: &ListArgs) -> Result<Exit, Error> {
    let mut listing = ctx.listing(0).await?;
    if listing.versions.is_empty() {
        return Err(crate::model::selector::SelectorError::Empty {
            location: ctx.location(),
        }
        .into());
    }
    if let Some(limit) = args.limit {
        listing.versions.truncate(limit);
    }
    let versions = listing.versions.clone();
    let mut cache = ctx.store.summary_cache(!args.no_cache);
    let bar = ctx.printer.bar("reading versions");
    let infos = summaries(&ctx.store.objects, &versions, &mut cache, &bar).await?;
    listing.intermediate = selector::intermediate(&versions, &summary_map(&versions, &infos));
    if let Err(e) = cache.save() {
        tracing::warn!("could not write the summary cache: {e}");
    }
    let slot_var = ctx.slot_hint();
    let backend = &ctx.settings.backend;
    let view = ListView {
        bucket: backend.bucket.clone(),
        key: backend.key.clone(),
        workspace: backend.workspace.clone(),
        versions: versions
            .iter()
            .zip(infos)
            .map(|(v, info)| version_view(v, info, slot_var.as_deref(), &listing))
            .collect(),
    };
    let width = ctx.printer.columns;
    ctx.emit(&view, |v| render_list(v, width, jiff::Timestamp::now()))
}
