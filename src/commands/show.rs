//! `tfrollback show VERSION`: one version's metadata and outputs.

use crate::cli::ShowArgs;
use crate::commands::Context;
use crate::commands::versions::Freshness;
use crate::error::{Error, Exit};
use crate::render::{render_version, version_view};
use crate::store::summaries::summarize_head;

pub(crate) async fn run(ctx: &Context, args: &ShowArgs) -> Result<Exit, Error> {
    let listing = ctx.listing(&[&args.version], Freshness::Cached).await?;
    let version = ctx.resolve(&args.version, &listing)?;
    let info = if version.delete_marker {
        None
    } else {
        let mut cache = ctx.store.summary_cache(true);
        let info = if let Some(hit) = cache.get(&version.version_id) {
            hit.clone()
        } else {
            let fresh =
                summarize_head(&ctx.store.objects, &version.version_id, version.size).await?;
            cache.insert(version.version_id.clone(), fresh.clone());
            if let Err(e) = cache.save() {
                tracing::warn!("could not write the summary cache: {e}");
            }
            fresh
        };
        if let crate::store::cache::Cached::Unreadable(reason) = &info {
            return Err(Error::State {
                version: version.version_id.clone(),
                location: ctx.location(),
                source: if *reason == crate::model::state::StateError::Encrypted.to_string() {
                    crate::model::state::StateError::Encrypted
                } else {
                    crate::model::state::StateError::Known {
                        reason: reason.clone(),
                    }
                },
            });
        }
        Some(info)
    };
    let view = version_view(version, info, ctx.slot_hint().as_deref(), &listing);
    ctx.emit(&view, render_version)
}
