//! `tfrollback show VERSION`: one version's metadata and outputs.

use crate::cache::SummaryCache;
use crate::cli::ShowArgs;
use crate::commands::{Context, version_view};
use crate::error::{Error, Exit};
use crate::render::render_version;
use crate::summaries::summarize;

pub async fn run(ctx: &Context, args: &ShowArgs) -> Result<Exit, Error> {
    let listing = ctx.listing(args.version.depth()).await?;
    let version = args.version.resolve(&listing, &ctx.location())?;
    let info = if version.delete_marker {
        None
    } else {
        let mut cache = SummaryCache::open(ctx.endpoint.as_deref(), &ctx.location(), true);
        let info = match cache.get(&version.version_id) {
            Some(hit) => hit.clone(),
            None => {
                let fresh = summarize(&ctx.store, &version.version_id).await?;
                cache.insert(version.version_id.clone(), fresh.clone());
                if let Err(e) = cache.save() {
                    tracing::warn!("could not write the summary cache: {e}");
                }
                fresh
            }
        };
        if let crate::cache::Cached::Unreadable(reason) = &info {
            return Err(Error::State {
                version: version.version_id.clone(),
                location: ctx.location(),
                source: if *reason == crate::state::StateError::Encrypted.to_string() {
                    crate::state::StateError::Encrypted
                } else {
                    crate::state::StateError::Known {
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
