//! One module per subcommand. `Context` carries what every command needs: the resolved
//! settings, the printer, and the state store.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cache::Cached;
use crate::config::Configuration;
use crate::error::{Error, Exit};
use crate::mapping::{self, MappingOptions};
use crate::output::Printer;
use crate::render::VersionView;
use crate::s3::{self, StateStore};
use crate::selector::{ObjectVersion, VersionId};
use crate::settings::Settings;
use crate::state::State;

pub mod diff;
pub mod list;
pub mod recover;
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

    /// The listing, after making sure the bucket keeps versions at all.
    pub async fn versions(&self) -> Result<Vec<ObjectVersion>, Error> {
        let (_, versions) =
            tokio::try_join!(self.store.check_versioning(), self.store.list_versions())?;
        Ok(versions)
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

    pub fn parse<'a>(&self, version: &VersionId, body: &'a str) -> Result<State<'a>, Error> {
        State::parse(body).map_err(|e| self.state_error(version, e))
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

/// The view of one listing entry with what is known of its body.
pub fn version_view(
    v: &ObjectVersion,
    info: Option<Cached>,
    slot_var: Option<&str>,
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
