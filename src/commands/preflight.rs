//! What `to` and `restore` check before anything changes: the current and target versions and
//! their bodies, the lineage rule, the user's var files, and a terraform that can read the
//! target and runs in an initialized directory.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use crate::commands::Context;
use crate::commands::versions::{Freshness, summary_map};
use crate::error::{Error, Refusal};
use crate::model::selector::{self, ObjectVersion, Selector, VersionId};
use crate::model::state::{self, State};
use crate::settings::terraform_location;
use crate::store::cache::Cached;
use crate::store::fsx::absolute;
use crate::store::journal::Journal;
use crate::store::s3::Fetched;
use crate::store::summaries::{Depth, summaries};
use crate::terraform::{Pinned, Terraform};

/// The current version and the one a rollback goes to, with their bodies: what `to` and
/// `restore` both start from. Nothing has been changed when this returns.
pub(crate) struct Endpoints {
    pub(crate) current: ObjectVersion,
    pub(crate) target: ObjectVersion,
    pub(crate) current_text: String,
    pub(crate) target_text: String,
    /// A rollback of this state left unfinished, looked for alongside the listing: the
    /// operation refuses to start over it (`Operation::start`).
    pub(crate) unfinished: Result<Option<Journal>, Error>,
}

/// What a selector resolved to before a state change.
pub(crate) enum Resolved {
    Endpoints(Box<Endpoints>),
    /// `last-good` (or `last:LABEL`) while the current version carries that mark: a deploy
    /// that failed before writing state has nothing to roll back.
    AlreadyThere {
        reason: String,
    },
}

impl Endpoints {
    /// Resolves `selector`, refusing a delete marker; `verb` names the action in messages.
    ///
    /// Round trips: the listing, with the unfinished-operation check beside it; then at once
    /// the current body, the body of the version the selector picks when no version is an
    /// intermediate snapshot (almost always the target), and the heads the
    /// intermediate-snapshot rule needs of the other versions (the two bodies give their own
    /// summaries); then the target's body only if the rule picked another one.
    pub(crate) async fn read(
        ctx: &Context,
        selector: &Selector,
        verb: &str,
    ) -> Result<Resolved, Error> {
        let location = ctx.location();
        let mut cache = ctx.store.summary_cache(true);
        let (listing, unfinished) = tokio::join!(
            ctx.listing_with(&[], Freshness::Live, &mut cache),
            ctx.store.unfinished()
        );
        let saved = cache.save();
        let mut listing = listing?;
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
        let guess = selector
            .resolve(&listing, &location, ctx.now)
            .ok()
            .filter(|v| !v.delete_marker && v.version_id != current.version_id)
            .cloned();
        let window: Vec<ObjectVersion> =
            listing.versions[selector.window(&listing.versions, ctx.now)].to_vec();
        let read_whole = |v: &ObjectVersion| {
            v.version_id == current.version_id
                || guess.as_ref().is_some_and(|g| g.version_id == v.version_id)
        };
        let heads: Vec<ObjectVersion> = window.iter().filter(|v| !read_whole(v)).cloned().collect();
        let hidden = ProgressBar::hidden();
        let (_, current_text, guessed_text) = tokio::try_join!(
            async {
                summaries(&ctx.store.objects, &heads, &mut cache, &hidden, Depth::Head)
                    .await
                    .map_err(Error::from)
            },
            ctx.read_text(&current),
            async {
                // A guess that fails to read is not an error: it may not be the target.
                Ok(match &guess {
                    Some(g) => ctx.read_text(g).await.ok(),
                    None => None,
                })
            },
        )?;
        // The bodies read whole summarise themselves, resources counted.
        let bodies = [
            (Some(&current), Some(&current_text)),
            (guess.as_ref(), guessed_text.as_ref()),
        ];
        for (version, text) in bodies.into_iter().filter_map(|(v, t)| Some((v?, t?))) {
            if cache
                .get(&version.version_id)
                .is_none_or(|c| matches!(c, Cached::Summary(s) if s.resources.is_none()))
            {
                let entry = match state::summarize(text.as_bytes()) {
                    Ok(summary) => Cached::Summary(summary),
                    Err(e) => Cached::Unreadable(e.to_string()),
                };
                cache.insert(version.version_id.clone(), entry);
            }
        }
        // Every summary of the window is known now (a guess that could not be read aside).
        let infos = ctx
            .summarize(&window, &mut cache, &hidden, Depth::Head)
            .await?;
        if let Err(e) = saved.and_then(|()| cache.save()) {
            tracing::warn!("could not write the summary cache: {e}");
        }
        listing.intermediate = selector::intermediate(&window, &summary_map(&window, &infos));
        let target = ctx.resolve(selector, &listing)?.clone();
        if target.delete_marker {
            return Err(Error::DeleteMarker {
                version: target.version_id.clone(),
            });
        }
        let target_text = match (guess, guessed_text) {
            (Some(g), Some(text)) if g.version_id == target.version_id => text,
            _ => ctx.read_text(&target).await?,
        };
        Ok(Resolved::Endpoints(Box::new(Endpoints {
            current,
            target,
            current_text,
            target_text,
            unfinished: unfinished.map_err(Error::from),
        })))
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

/// Under the lock, when the state moved since preflight (the snapshot is not the version
/// preflight read): resolves `selector` again and stops if it now names another version, so
/// `previous` never means a version the user did not see.
pub(crate) async fn target_still(
    ctx: &Context,
    selector: &Selector,
    resolved: &VersionId,
) -> Result<(), Error> {
    let listing = ctx.listing(&[selector], Freshness::Live).await?;
    let now = selector.resolve(&listing, &ctx.location(), ctx.now)?;
    if &now.version_id != resolved {
        return Err(Refusal::TargetMoved {
            selector: selector.to_string(),
            was: resolved.clone(),
            now: now.version_id.clone(),
        }
        .into());
    }
    Ok(())
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

/// The terraform binary a state-changing command runs and its version: asked while preflight
/// reads S3 (`terraform version` takes a process start), checked by `prepare_terraform`.
pub(crate) async fn find_terraform(
    ctx: &Context,
    flag: Option<&Path>,
    interrupt: tokio::sync::watch::Receiver<bool>,
) -> Result<(Terraform, String), Error> {
    let settings = &ctx.settings;
    let pinned = Pinned {
        dir: absolute(&settings.workdir),
        data_dir: absolute(&settings.data_dir),
        workspace: settings.backend.workspace.clone(),
    };
    let mut terraform = Terraform::locate(flag, None, pinned, interrupt)?;
    let version = terraform.version().await?;
    Ok((terraform, version))
}

/// The terraform binary `find_terraform` found, checked before anything changes: it must be
/// able to read a state that `target_terraform` wrote, and the working directory is
/// initialized if it is not yet. Returns the binary and its version.
pub(crate) async fn prepare_terraform(
    ctx: &Context,
    found: (Terraform, String),
    target: &VersionId,
    target_terraform: &str,
) -> Result<(Terraform, String), Error> {
    let settings = &ctx.settings;
    let (mut terraform, version) = found;
    if crate::terraform::is_newer(target_terraform, &version) {
        return Err(Refusal::TerraformTooOld {
            version: target.clone(),
            wrote: target_terraform.to_string(),
            binary: terraform.name().clone(),
            local: version,
        }
        .into());
    }
    let mut terraforms = settings.terraform_location.clone();
    if !terraform.is_initialized() {
        ctx.printer
            .note("preflight  the working directory is not initialized: running terraform init");
        terraform.init().await?;
        terraforms = terraform_location(&settings.data_dir, &settings.backend.workspace)?;
    }
    // terraform applies to the state its own init recorded; that must be the one locked.
    if terraforms.as_deref() != Some(ctx.location().as_str()) {
        return Err(Refusal::OtherState {
            ours: ctx.location(),
            terraforms,
        }
        .into());
    }
    Ok((terraform, version))
}

impl Endpoints {
    /// The current state as preflight read it, for the snapshot to check again under the lock
    /// (taking its body: nothing else needs it by then).
    pub(crate) fn found(&mut self) -> Fetched {
        Fetched {
            body: std::mem::take(&mut self.current_text).into_bytes(),
            etag: self.current.etag.clone(),
            version_id: Some(self.current.version_id.clone()),
        }
    }
}
