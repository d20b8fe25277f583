//! `tfrollback unfreeze [VERSION]`: lift the freeze `guard` put on a deploy it rolled back,
//! once the cause is understood; without VERSION, every freeze of the state.

use serde::Serialize;

use crate::cli::UnfreezeArgs;
use crate::commands::versions::Freshness;
use crate::commands::{Context, Outcome};
use crate::error::Error;
use crate::model::selector::VersionId;

#[derive(Debug, Serialize)]
struct UnfreezeView {
    location: String,
    lifted: Vec<VersionId>,
}

pub(crate) async fn run(ctx: &Context, args: &UnfreezeArgs) -> Result<Outcome, Error> {
    let versions: Vec<VersionId> = match &args.version {
        Some(selector) => {
            let listing = ctx.listing(&[selector], Freshness::Live).await?;
            vec![
                selector
                    .resolve(&listing, &ctx.location(), ctx.now)?
                    .version_id
                    .clone(),
            ]
        }
        None => ctx
            .store
            .freezes
            .list()
            .await?
            .into_iter()
            .map(|f| f.version.version_id)
            .collect(),
    };
    let mut lifted = vec![];
    for version in versions {
        if ctx.store.freezes.lift(&version).await? {
            lifted.push(version);
        }
    }
    if lifted.is_empty() {
        return Ok(Outcome::NothingToDo {
            reason: match &args.version {
                Some(_) => "that version is not frozen".into(),
                None => format!("no deploy of {} is frozen", ctx.location()),
            },
        });
    }
    let view = UnfreezeView {
        location: ctx.location(),
        lifted,
    };
    ctx.emit(&view, |v| {
        v.lifted
            .iter()
            .map(|id| format!("Lifted the freeze of {id} ({})\n", v.location))
            .collect()
    })
    .map(Outcome::Done)
}
