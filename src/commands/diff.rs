//! `tfrollback diff VERSION`: what rolling back to VERSION would change, from the current
//! version (or `--against`): outputs, resources, and the input variables a rollback sets.

use crate::cli::DiffArgs;
use crate::commands::Context;
use crate::error::{Error, Exit};
use crate::model::diff::diff_states;
use crate::model::mapping::{MappingOptions, map_variables};
use crate::model::{redact, selector};
use crate::render::{DiffView, Endpoint, VariableView, render_diff};
use crate::workdir;

pub(crate) async fn run(ctx: &Context, args: &DiffArgs) -> Result<Exit, Error> {
    let location = ctx.location();
    let selectors: Vec<&selector::Selector> = std::iter::once(&args.version)
        .chain(&args.against)
        .collect();
    let listing = ctx
        .listing(&selectors, crate::commands::versions::Freshness::Cached)
        .await?;
    let target = args.version.resolve(&listing, &location, ctx.now)?;
    let from = match &args.against {
        Some(s) => s.resolve(&listing, &location, ctx.now)?.clone(),
        None => selector::current(&listing, &location)?,
    };
    let config = workdir::configuration(&ctx.settings.workdir)?;
    let (from_text, target_text) = tokio::try_join!(ctx.read_text(&from), ctx.read_text(target))?;
    let (from_state, target_state) = ctx.parse_both(
        (&from.version_id, &from_text),
        (&target.version_id, &target_text),
    );
    let (from_state, target_state) = (from_state?, target_state?);

    let options = MappingOptions {
        maps: args.mapping.maps.clone(),
        slot_var: args.mapping.slot_var.clone(),
        include_sensitive: args.mapping.include_sensitive,
    };
    let mapping = map_variables(
        &config,
        &options,
        &from_state.outputs,
        &target_state.outputs,
        target.version_id.as_str(),
    )?;
    let changes = diff_states(&from_state, &target_state);
    let view = DiffView {
        from: Endpoint {
            version_id: from.version_id.to_string(),
            serial: from_state.serial,
            current: from.is_latest,
        },
        to: Endpoint {
            version_id: target.version_id.to_string(),
            serial: target_state.serial,
            current: target.is_latest,
        },
        outputs: changes.outputs,
        resources: changes.resources,
        variables: mapping
            .variables
            .iter()
            .map(|v| VariableView {
                name: v.name.clone(),
                current: v.current.as_ref().map(|c| redact(c, v.sensitive)),
                rollback: redact(&v.rollback, v.sensitive),
                source: v.source.describe(),
                slot: mapping.slot_variable.as_deref() == Some(v.name.as_str()),
            })
            .collect(),
        skipped_versions: args
            .version
            .passed_over(&listing, &from.version_id, &target.version_id, ctx.now)
            .iter()
            .map(ToString::to_string)
            .collect(),
        skipped_variables: mapping
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.name, s.reason))
            .collect(),
        unset_variables: mapping.unset(),
        location,
    };
    ctx.emit(&view, render_diff)
}
