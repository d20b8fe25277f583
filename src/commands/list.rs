//! `tfrollback list`: every version of the state object, newest first, with what each recorded.

use crate::cli::ListArgs;
use crate::commands::Context;
use crate::commands::versions::{Freshness, summary_map};
use crate::error::{Error, Exit};
use crate::model::selector::{self, Selector};
use crate::render::{AtView, ListView, render_list, version_view};
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
    // `--at` needs the probable intermediate snapshots around its moment known too, however
    // far past `--limit` that is.
    let at_selector = args.at.map(Selector::At);
    let shown = args.limit.map_or(listing.versions.len(), |limit| {
        limit.min(listing.versions.len())
    });
    let window = at_selector
        .as_ref()
        .map_or(0..0, |s| s.window(&listing.versions, ctx.now));
    let versions = listing.versions[..shown.max(window.end)].to_vec();
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
    let at = match (args.at, &at_selector) {
        (Some(moment), Some(selector)) => {
            let version = selector.resolve(&listing, &ctx.location(), ctx.now)?;
            Some(AtView {
                time: moment.at(ctx.now).to_string(),
                version_id: version.version_id.to_string(),
                last_modified: version.last_modified.to_string(),
                is_latest: version.is_latest,
                skipped_versions: selector
                    .passed_over(&listing, &version.version_id, &version.version_id, ctx.now)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            })
        }
        _ => None,
    };
    let slot_var = ctx.slot_hint();
    let backend = &ctx.settings.backend;
    let view = ListView {
        bucket: backend.bucket.clone(),
        key: backend.key.clone(),
        workspace: backend.workspace.clone(),
        versions: versions
            .iter()
            .zip(infos)
            .take(shown)
            .map(|(v, info)| version_view(v, info, slot_var.as_deref(), &listing))
            .collect(),
        at,
    };
    let width = ctx.printer.columns;
    ctx.emit(&view, |v| render_list(v, width, jiff::Timestamp::now()))
}
