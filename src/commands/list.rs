//! `tfrollback list`: every version of the state object, newest first, with what each recorded.

use crate::cli::ListArgs;
use crate::commands::Context;
use crate::commands::versions::{Freshness, summary_map};
use crate::error::{Error, Exit};
use crate::model::selector;
use crate::render::{ListView, render_list, version_view};
use crate::store::summaries::Depth;

pub(crate) async fn run(ctx: &Context, args: &ListArgs) -> Result<Exit, Error> {
    let freshness = if args.no_cache {
        Freshness::NoCache
    } else {
        Freshness::Cached
    };
    let mut cache = ctx.store.summary_cache(!args.no_cache);
    let listing = ctx.listing_with(&[], freshness, &mut cache).await;
    if let Err(e) = cache.save() {
        tracing::warn!("could not write the summary cache: {e}");
    }
    let mut listing = listing?;
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
    let bar = ctx.printer.bar("reading versions");
    let depth = if args.count_resources {
        Depth::Whole
    } else {
        Depth::Head
    };
    let infos = ctx.summarize(&versions, &mut cache, &bar, depth).await?;
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
