//! What `to` and `restore` check before anything changes: the current and target versions and
//! their bodies, the lineage rule, the user's var files, and a terraform that can read the
//! target and runs in an initialized directory.

use std::path::{Path, PathBuf};

use crate::commands::Context;
use crate::error::{Error, Refusal};
use crate::model::selector::{self, ObjectVersion, Selector, VersionId};
use crate::model::state::State;
use crate::store::fsx::absolute;
use crate::terraform::Terraform;

/// The current version and the one a rollback goes to, with their bodies: what `to` and
/// `restore` both start from. Nothing has been changed when this returns.
pub(crate) struct Endpoints {
    pub(crate) current: ObjectVersion,
    pub(crate) target: ObjectVersion,
    pub(crate) current_text: String,
    pub(crate) target_text: String,
}

/// What a selector resolved to before a state change.
pub(crate) enum Resolved {
    Endpoints(Endpoints),
    /// `last-good` (or `last:LABEL`) while the current version carries that mark: a deploy
    /// that failed before writing state has nothing to roll back.
    AlreadyThere {
        reason: String,
    },
}

impl Endpoints {
    /// Resolves `selector`, refusing a delete marker; `verb` names the action in messages.
    pub(crate) async fn read(
        ctx: &Context,
        selector: &Selector,
        verb: &str,
    ) -> Result<Resolved, Error> {
        let location = ctx.location();
        let listing = ctx
            .listing(selector.depth(), crate::commands::versions::Freshness::Live)
            .await?;
        let current = selector::current(&listing, &location)?;
        if let Selector::Marked(label) = selector
            && listing
                .marks
                .get(&current.version_id)
                .is_some_and(|l| l.contains(label))
        {
            return Ok(Resolved::AlreadyThere {
                reason: format!(
                    "the current version {} is itself marked `{label}`: there is nothing to {verb}",
                    current.version_id
                ),
            });
        }
        let target = selector.resolve(&listing, &location)?.clone();
        if target.delete_marker {
            return Err(Error::DeleteMarker {
                version: target.version_id.clone(),
            });
        }
        let (current_text, target_text) =
            tokio::try_join!(ctx.read_text(&current), ctx.read_text(&target))?;
        Ok(Resolved::Endpoints(Endpoints {
            current,
            target,
            current_text,
            target_text,
        }))
    }

    /// Both states, parsed; a target from another lineage is refused unless allowed.
    pub(crate) fn states(
        &self,
        ctx: &Context,
        allow_lineage_change: bool,
    ) -> Result<(State<'_>, State<'_>), Error> {
        let (current, target) = ctx.parse_both(
            (&self.current.version_id, &self.current_text),
            (&self.target.version_id, &self.target_text),
        );
        let (current, target) = (current?, target?);
        same_lineage(&target.lineage, &current.lineage, allow_lineage_change)?;
        Ok((current, target))
    }
}

/// Refuses a target from another state's history unless that is what the user asked for.
pub(crate) fn same_lineage(target: &str, current: &str, allowed: bool) -> Result<(), Error> {
    if target != current && !allowed {
        return Err(Refusal::LineageChanged {
            target: target.to_string(),
            current: current.to_string(),
        }
        .into());
    }
    Ok(())
}

/// The user's `--var-file`s as absolute paths: terraform runs in the working directory.
pub(crate) fn user_var_files(files: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    files
        .iter()
        .map(|f| {
            if f.is_file() {
                Ok(absolute(f))
            } else {
                Err(Refusal::MissingVarFile {
                    path: f.display().to_string(),
                }
                .into())
            }
        })
        .collect()
}

/// The terraform binary a state-changing command runs, checked before anything changes: it
/// must be able to read a state that `target_terraform` wrote, and the working directory is
/// initialized if it is not yet. Returns the binary and its version.
pub(crate) async fn prepare_terraform(
    ctx: &Context,
    flag: Option<&Path>,
    interrupt: tokio::sync::watch::Receiver<bool>,
    target: &VersionId,
    target_terraform: &str,
) -> Result<(Terraform, String), Error> {
    let mut terraform = Terraform::locate(flag, None, &ctx.settings.workdir, interrupt)?;
    let version = terraform.version().await?;
    if crate::terraform::is_newer(target_terraform, &version) {
        return Err(Refusal::TerraformTooOld {
            version: target.clone(),
            wrote: target_terraform.to_string(),
            binary: terraform.name().clone(),
            local: version,
        }
        .into());
    }
    if !terraform.is_initialized() {
        ctx.printer
            .note("preflight  the working directory is not initialized: running terraform init");
        terraform.init().await?;
    }
    Ok((terraform, version))
}
