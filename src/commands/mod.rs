//! One module per subcommand. `Context` carries what every command needs: the resolved
//! settings, the printer, and the state store.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde::Serialize;

use indicatif::ProgressBar;

use crate::cache::{Cached, SummaryCache};
use crate::config::Configuration;
use crate::error::{Error, Exit};
use crate::mapping::{self, MappingOptions};
use crate::marks::MarkStore;
use crate::output::Printer;
use crate::render::VersionView;
use crate::s3::{self, StateStore};
use crate::selector::{self, Listing, Selector};
use crate::selector::{ObjectVersion, VersionId};
use crate::settings::Settings;
use crate::state::State;
use crate::state::StateSummary;
use crate::summaries::summaries;
use crate::terraform::Terraform;

pub mod diff;
pub mod history;
pub mod list;
pub mod mark;
pub mod recover;
pub mod restore;
pub mod show;
pub mod status;
pub mod to;

pub struct Context {
    pub settings: Settings,
    pub printer: Printer,
    pub store: StateStore,
    pub aws: aws_config::SdkConfig,
    /// The S3 endpoint in use, when not AWS's own (it keys the cache).
    pub endpoint: Option<String>,
}

impl Context {
    pub async fn new(settings: Settings, printer: Printer) -> Result<Context, Error> {
        let config = s3::aws_config(&settings.backend).await?;
        s3::check_credentials(&config).await?;
        let store = StateStore::new(&config, &settings.backend, settings.page_size);
        let endpoint = settings
            .backend
            .endpoint_s3
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| config.endpoint_url().map(str::to_string));
        Ok(Context {
            settings,
            printer,
            store,
            aws: config,
            endpoint,
        })
    }

    pub fn location(&self) -> String {
        self.settings.backend.location()
    }

    /// The listing with its marks, after making sure the bucket keeps versions at all.
    /// Probable intermediate snapshots are worked out over the newest `depth` versions, from
    /// the summary cache or S3.
    pub async fn listing(&self, depth: usize) -> Result<Listing, Error> {
        let marks = MarkStore::new(self.store.clone());
        let (_, versions, index) = tokio::try_join!(
            self.store.check_versioning(),
            self.store.list_versions(),
            marks.load()
        )?;
        let mut listing = Listing {
            versions,
            marks: index.by_version(),
            intermediate: Default::default(),
        };
        if depth > 0 {
            let window: Vec<ObjectVersion> = listing.versions.iter().take(depth).cloned().collect();
            let mut cache = SummaryCache::open(self.endpoint.as_deref(), &self.location(), true);
            let infos = summaries(&self.store, &window, &mut cache, &ProgressBar::hidden()).await?;
            if let Err(e) = cache.save() {
                tracing::warn!("could not write the summary cache: {e}");
            }
            listing.intermediate = selector::intermediate(&window, &summary_map(&window, &infos));
        }
        Ok(listing)
    }

    /// The configuration's slot variable, for highlighting only: any problem just means no hint.
    pub fn slot_hint(&self) -> Option<String> {
        let config = Configuration::load(&self.settings.workdir).ok()?;
        mapping::slot_variable(&config, &MappingOptions::default())
            .ok()
            .flatten()
    }

    /// Prints a view as JSON or as text.
    pub fn emit<T: Serialize>(
        &self,
        view: &T,
        render: impl Fn(&T) -> String,
    ) -> Result<Exit, Error> {
        let written = if self.printer.json {
            self.printer.json(view)
        } else {
            self.printer.out(&render(view))
        };
        written.map_err(Error::Stdout)?;
        Ok(Exit::Ok)
    }

    /// A version's body as text.
    pub async fn read_text(&self, version: &ObjectVersion) -> Result<String, Error> {
        if version.delete_marker {
            return Err(Error::DeleteMarker {
                version: version.version_id.clone(),
            });
        }
        let bytes = self.store.read(&version.version_id).await?;
        String::from_utf8(bytes).map_err(|_| self.state_error(&version.version_id, not_utf8()))
    }

    /// Parses a whole state. When that fails, the streaming scanner gives the diagnosis, so
    /// every command refuses the same broken bodies with the same words (truncated, not JSON,
    /// another format version, outputs too large, encrypted).
    pub fn parse<'a>(&self, version: &VersionId, body: &'a str) -> Result<State<'a>, Error> {
        State::parse(body).map_err(|e| {
            let diagnosis = crate::state::summarize(body.as_bytes()).err().unwrap_or(e);
            self.state_error(version, diagnosis)
        })
    }

    /// Parses two states at once, one per core: for large states the parse is most of a diff.
    pub fn parse_both<'a, 'b>(
        &self,
        a: (&VersionId, &'a str),
        b: (&VersionId, &'b str),
    ) -> (Result<State<'a>, Error>, Result<State<'b>, Error>) {
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let first = scope.spawn(|| self.parse(a.0, a.1));
                let second = self.parse(b.0, b.1);
                (
                    first
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    second,
                )
            })
        })
    }

    fn state_error(&self, version: &VersionId, source: crate::state::StateError) -> Error {
        Error::State {
            version: version.clone(),
            location: self.location(),
            source,
        }
    }
}

fn not_utf8() -> crate::state::StateError {
    crate::state::StateError::NotJson {
        detail: "the body is not UTF-8 text".into(),
    }
}

/// Version -> summary, for the versions whose body was readable.
pub fn summary_map(
    versions: &[ObjectVersion],
    infos: &[Option<Cached>],
) -> BTreeMap<VersionId, StateSummary> {
    versions
        .iter()
        .zip(infos)
        .filter_map(|(v, info)| match info {
            Some(Cached::Summary(s)) => Some((v.version_id.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

/// The view of one listing entry with what is known of its body.
pub fn version_view(
    v: &ObjectVersion,
    info: Option<Cached>,
    slot_var: Option<&str>,
    listing: &Listing,
) -> VersionView {
    let mut view = VersionView {
        version_id: v.version_id.to_string(),
        last_modified: v.last_modified.to_string(),
        size: v.size,
        is_latest: v.is_latest,
        delete_marker: v.delete_marker,
        serial: None,
        lineage: None,
        terraform_version: None,
        resources: None,
        outputs: None,
        slot: None,
        error: None,
        marks: listing
            .marks
            .get(&v.version_id)
            .cloned()
            .unwrap_or_default(),
        intermediate: listing.intermediate.contains(&v.version_id),
        slot_path: None,
    };
    match info {
        Some(Cached::Summary(s)) => {
            let outputs: BTreeMap<String, serde_json::Value> = s
                .outputs
                .iter()
                .map(|(name, o)| (name.clone(), o.display_value()))
                .collect();
            if let Some((path, slot)) = mapping::find_slot(&outputs, slot_var) {
                view.slot_path = Some(path);
                view.slot = Some(slot);
            }
            view.serial = Some(s.serial);
            view.lineage = Some(s.lineage);
            view.terraform_version = Some(s.terraform_version);
            view.resources = Some(s.resources);
            view.outputs = Some(outputs);
        }
        Some(Cached::Unreadable(reason)) => view.error = Some(reason),
        None => {}
    }
    view
}

/// Refuses at once when nobody could answer a confirmation: never hang on a prompt.
pub fn require_answerable(auto_approve: bool, dry_run: bool) -> Result<(), Error> {
    let interactive = std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
        && !crate::output::automated();
    if !auto_approve && !dry_run && !interactive {
        return Err(Error::Refused {
            reason: "nobody to ask for confirmation (no terminal, or CI / TF_IN_AUTOMATION is set), and --auto-approve was not given".into(),
            hint: "pass --auto-approve to go ahead without asking (CI), or --dry-run to only see what would change".into(),
            usage: true,
        });
    }
    Ok(())
}

/// The user's `--var-file`s as absolute paths: terraform runs in the working directory.
pub fn user_var_files(files: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    files
        .iter()
        .map(|f| {
            if f.is_file() {
                Ok(absolute(f))
            } else {
                Err(Error::Refused {
                    reason: format!("--var-file {} does not exist", f.display()),
                    hint: "pass a path relative to the current directory or an absolute one".into(),
                    usage: true,
                })
            }
        })
        .collect()
}

pub fn lineage_error(target: &str, current: &str) -> Error {
    Error::Refused {
        reason: format!(
            "the target's lineage {target} differs from the current state's {current}: it belongs to another state's history"
        ),
        hint: "check the bucket, key and workspace; pass --allow-lineage-change only if replacing the history is intended".into(),
        usage: false,
    }
}

/// An absolute path without `.` components (terraform runs in the working directory, so
/// relative paths the user typed must not be read relative to it).
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    joined.components().collect()
}

/// Asks on the terminal; anything but y/yes is no.
pub async fn confirm(question: &str) -> bool {
    eprint!("{question}");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok();
        matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    })
    .await
    .unwrap_or(false)
}

/// The current version and the one a rollback goes to, with their bodies: what `to` and
/// `restore` both start from. Nothing has been changed when this returns.
pub struct Endpoints {
    pub current: ObjectVersion,
    pub target: ObjectVersion,
    pub current_text: String,
    pub target_text: String,
}

impl Endpoints {
    /// Resolves `selector`, refusing a delete marker; `verb` names the action in messages.
    /// `to last-good` when the current version is itself marked good has nothing to do.
    pub async fn read(ctx: &Context, selector: &Selector, verb: &str) -> Result<Endpoints, Error> {
        let location = ctx.location();
        let listing = ctx.listing(selector.depth()).await?;
        let current = selector::current(&listing, &location)?;
        if let Selector::Marked(label) = selector
            && listing
                .marks
                .get(&current.version_id)
                .is_some_and(|l| l.contains(label))
        {
            return Err(Error::NothingToDo {
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
        Ok(Endpoints {
            current,
            target,
            current_text,
            target_text,
        })
    }

    /// Both states, parsed; a target from another lineage is refused unless allowed.
    pub fn states(
        &self,
        ctx: &Context,
        allow_lineage_change: bool,
    ) -> Result<(State<'_>, State<'_>), Error> {
        let (current, target) = ctx.parse_both(
            (&self.current.version_id, &self.current_text),
            (&self.target.version_id, &self.target_text),
        );
        let (current, target) = (current?, target?);
        if current.lineage != target.lineage && !allow_lineage_change {
            return Err(lineage_error(&target.lineage, &current.lineage));
        }
        Ok((current, target))
    }
}

/// The terraform binary a state-changing command runs, checked before anything changes: it
/// must be able to read a state that `target_terraform` wrote, and the working directory is
/// initialized if it is not yet. Returns the binary and its version.
pub async fn prepare_terraform(
    ctx: &Context,
    flag: Option<&Path>,
    interrupt: tokio::sync::watch::Receiver<bool>,
    target: &VersionId,
    target_terraform: &str,
) -> Result<(Terraform, String), Error> {
    let mut terraform = Terraform::locate(flag, None, &ctx.settings.workdir, interrupt)?;
    let version = terraform.version().await?;
    if crate::terraform::is_newer(target_terraform, &version) {
        return Err(Error::Refused {
            reason: format!(
                "version {target} was written by terraform {target_terraform}, newer than the local {} {version}",
                terraform.name()
            ),
            hint: format!(
                "install terraform {target_terraform} or newer (or point --terraform-bin at it)"
            ),
            usage: false,
        });
    }
    if !terraform.is_initialized() {
        ctx.printer
            .note("preflight  the working directory is not initialized: running terraform init");
        terraform.init().await?;
    }
    Ok((terraform, version))
}
