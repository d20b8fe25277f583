//! The one error type commands return, rendered once at the top as `error:` + causes + `hint:`,
//! and mapped to the documented exit codes.

use std::error::Error as _;
use std::process::ExitCode;

use crate::config::ConfigError;
use crate::journal::JournalError;
use crate::lock::LockError;
use crate::mapping::MappingError;
use crate::s3::S3Error;
use crate::selector::{SelectorError, VersionId};
use crate::settings::SettingsError;
use crate::state::StateError;
use crate::terraform::TerraformError;

/// Exit codes, as documented in `--help` and docs/exit-codes.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    Restored = 3,
    RestoreFailed = 4,
    Locked = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("version {version} of {location} is not a state tfrollback can use: {source}")]
    State {
        version: VersionId,
        location: String,
        source: StateError,
    },
    #[error("version {version} is a delete marker, not a state")]
    DeleteMarker { version: VersionId },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Terraform(#[from] TerraformError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{reason}")]
    Refused {
        reason: String,
        hint: String,
        /// A usage problem (exit 2) rather than a refusal on the merits (exit 1).
        usage: bool,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// Not a failure: the command had nothing to do (exit 0).
    #[error("{reason}")]
    NothingToDo { reason: String },
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::NothingToDo { .. } => Exit::Ok,
            Error::Selector(SelectorError::Invalid { .. })
            | Error::Mapping(MappingError::BadMap { .. })
            | Error::Refused { usage: true, .. } => Exit::Usage,
            Error::Lock(LockError::Held { .. }) => Exit::Locked,
            _ => Exit::Error,
        }
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Settings(e) => e.hint(),
            Error::S3(e) => e.hint(),
            Error::Selector(SelectorError::Empty { .. }) => Some(
                "check --bucket, --key and --workspace (or the backend configuration); `terraform workspace list` shows the workspaces".into(),
            ),
            Error::Selector(_) => Some("`tfrollback list` shows the versions and their ids".into()),
            Error::Config(ConfigError::Hcl { .. }) => {
                Some("fix the file; `terraform validate` points at the error".into())
            }
            Error::State { source: StateError::Encrypted, .. } => Some(
                "this state is encrypted by OpenTofu; decrypt it with tofu before rolling back".into(),
            ),
            Error::State { .. } => {
                Some("pick another version: `tfrollback list` marks unreadable ones".into())
            }
            Error::Lock(e) => e.hint(),
            Error::Refused { hint, .. } => Some(hint.clone()),
            Error::Write { .. } => Some("free some space or fix the permissions, then run the command again; nothing was changed".into()),
            Error::Terraform(TerraformError::NotFound { .. }) => Some(
                "install terraform (or OpenTofu), or point --terraform-bin / TFROLLBACK_TERRAFORM at it".into(),
            ),
            Error::Terraform(_) => Some("fix what terraform reports above, then run the command again".into()),
            Error::DeleteMarker { .. } => {
                Some("pick a version that holds a state: `tfrollback list` marks delete markers with x".into())
            }
            Error::Mapping(_) => {
                Some("see docs/mapping.md for how outputs become rollback variables".into())
            }
            Error::Config(ConfigError::Read { .. }) => {
                Some("check the path given with -C and its permissions".into())
            }
            Error::Journal(_) => Some(
                "check write access to the bucket (s3:PutObject on <key>.tfrollback/*) and to .tfrollback/ in the working directory; `tfrollback status` shows what is unfinished".into(),
            ),
            Error::Stdout(_) => Some("check where stdout goes (a closed pipe, a full disk)".into()),
            Error::NothingToDo { .. } => None,
        }
    }

    /// The message people see on stderr.
    pub fn render(&self) -> String {
        let mut out = format!("error: {self}");
        let mut source = self.source();
        // `transparent` variants share their inner error's message; skip repeating it.
        if let Some(s) = source
            && s.to_string() == self.to_string()
        {
            source = s.source();
        }
        while let Some(s) = source {
            let text = s.to_string();
            if !out.contains(&text) {
                out.push_str(&format!("\n  caused by: {text}"));
            }
            source = s.source();
        }
        if let Some(hint) = self.hint() {
            out.push_str(&format!("\nhint: {hint}"));
        }
        out
    }
}
