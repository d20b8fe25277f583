//! Flags, environment and backend discovery resolved into one validated `Settings` value before
//! any command runs. Sources, highest first: flags, `.terraform/terraform.tfstate` (it includes
//! `-backend-config` values), then the `backend "s3"` block of the `*.tf` files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::model::backend::{Backend, BackendConfig, BackendError, Encryption, workspace_key};
use crate::model::config::ConfigError;
use crate::model::identity::{CiIdentity, Identity};
use crate::workdir::read_tf_files;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cannot tell where the state is: no {missing} in flags, {dir}/.terraform/terraform.tfstate or a backend \"s3\" block"
    )]
    NotFound { missing: &'static str, dir: String },
    #[error("the working directory {dir} does not exist")]
    NoWorkdir { dir: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the workspace name `{name}` is not valid (it names a directory in the state key)")]
    BadWorkspace { name: String },
}

impl SettingsError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            SettingsError::NotFound { .. } => Some(
                "run `terraform init` in the working directory (-C DIR), or pass --bucket and --key".into(),
            ),
            SettingsError::NoWorkdir { .. } => Some("pass the Terraform directory with -C DIR".into()),
            SettingsError::Backend(BackendError::HclInvalid { .. })
            | SettingsError::Config(ConfigError::Hcl { .. }) => {
                Some("fix the file (`terraform validate` shows where), or pass --bucket and --key".into())
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) workdir: PathBuf,
    /// terraform's data directory: `TF_DATA_DIR` (relative to the working directory, as
    /// terraform runs there), else `.terraform`.
    pub(crate) data_dir: PathBuf,
    /// The state terraform itself would use in this directory, per its init state, for the
    /// selected workspace: `to` and `restore` refuse to run terraform against another one.
    pub(crate) terraform_location: Option<String>,
    pub(crate) backend: Backend,
    pub(crate) page_size: i32,
    /// Who runs this: `user@host`, the host, and the CI run.
    pub(crate) identity: Identity,
    /// `$XDG_CACHE_HOME/tfrollback`, else `~/.cache/tfrollback`.
    pub(crate) cache_dir: Option<PathBuf>,
    /// The S3 endpoint named by the backend or `AWS_ENDPOINT_URL_S3` (it keys the cache).
    pub(crate) endpoint: Option<String>,
    /// The SDK's read timeout (tests of slow servers shorten it).
    pub(crate) read_timeout: Duration,
    /// `$GITHUB_STEP_SUMMARY`: where CI wants the Markdown report appended.
    pub(crate) step_summary: Option<PathBuf>,
    /// `TFROLLBACK_FAILPOINT=STEP=wait:FILE`: a test seam that stops an operation after a step.
    pub(crate) failpoint: Option<String>,
    /// How often a running operation refreshes its heartbeat (`TFROLLBACK_HEARTBEAT`, seconds;
    /// default 10). `recover` takes over only once three intervals passed without a beat.
    pub(crate) heartbeat: Duration,
}

/// How the terminal wants output: resolved once, handed to the printer and the prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Terminal {
    /// `NO_COLOR` or `TERM=dumb`: no colors, no progress bars.
    pub(crate) plain: bool,
    /// `CI` or `TF_IN_AUTOMATION`: never prompt, never draw progress, even on a terminal.
    pub(crate) automated: bool,
    /// `COLUMNS`, when set.
    pub(crate) columns: Option<usize>,
}

/// What settings read from the process environment; passed in so resolution stays testable.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    pub(crate) tf_workspace: Option<String>,
    pub(crate) tf_data_dir: Option<PathBuf>,
    pub(crate) sse_customer_key: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) host: String,
    pub(crate) ci: Option<CiIdentity>,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) endpoint_s3: Option<String>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) step_summary: Option<PathBuf>,
    pub(crate) failpoint: Option<String>,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) plain: bool,
    pub(crate) automated: bool,
    pub(crate) columns: Option<usize>,
}

impl Env {
    /// The one place that reads the process environment.
    pub(crate) fn from_process() -> Env {
        let var = |name: &str| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let user = var("USER").or_else(|| var("USERNAME")).or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        });
        let cache_dir = var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|base| base.join("tfrollback"));
        Env {
            tf_workspace: var("TF_WORKSPACE"),
            tf_data_dir: var("TF_DATA_DIR").map(PathBuf::from),
            sse_customer_key: var("AWS_SSE_CUSTOMER_KEY"),
            user,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            ci: CiIdentity::from_vars(&var),
            cache_dir,
            endpoint_s3: var("AWS_ENDPOINT_URL_S3"),
            read_timeout: var("TFROLLBACK_READ_TIMEOUT")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64),
            step_summary: var("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            failpoint: var("TFROLLBACK_FAILPOINT"),
            heartbeat: var("TFROLLBACK_HEARTBEAT")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64),
            plain: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
                || var("TERM").is_some_and(|t| t == "dumb"),
            automated: ["CI", "TF_IN_AUTOMATION"]
                .iter()
                .any(|name| var(name).is_some_and(|v| v != "0" && v != "false")),
            columns: var("COLUMNS").and_then(|c| c.parse().ok()),
        }
    }

    pub(crate) fn terminal(&self) -> Terminal {
        Terminal {
            plain: self.plain,
            automated: self.automated,
            columns: self.columns,
        }
    }
}

impl Settings {
    pub(crate) fn resolve(args: &GlobalArgs, env: &Env) -> Result<Settings, SettingsError> {
        let workdir = args.chdir.clone();
        if !workdir.is_dir() {
            return Err(SettingsError::NoWorkdir {
                dir: workdir.display().to_string(),
            });
        }
        let flags = BackendConfig {
            bucket: args.bucket.clone(),
            key: args.key.clone(),
            region: args.region.clone(),
            endpoint_s3: args.endpoint_url.clone(),
            use_path_style: args.path_style.then_some(true),
            ..BackendConfig::default()
        };
        let data_dir = workdir.join(
            env.tf_data_dir
                .as_deref()
                .unwrap_or(Path::new(".terraform")),
        );
        let init = read_init_state(&data_dir)?;
        let mut merged = flags;
        if let Some(init) = init.clone() {
            merged = merged.or(init);
        }
        // The block comes last, field by field: flags naming the bucket and key must not lose
        // the lock table or encryption that only the block (before any `terraform init`) names.
        for (file, text) in read_tf_files(&workdir)? {
            if let Some(block) = BackendConfig::from_tf(&file, &text)? {
                merged = merged.or(block);
                break;
            }
        }
        let dir = workdir.display().to_string();
        let bucket = merged.bucket.ok_or(SettingsError::NotFound {
            missing: "bucket",
            dir: dir.clone(),
        })?;
        let base_key = merged.key.ok_or(SettingsError::NotFound {
            missing: "key",
            dir: dir.clone(),
        })?;
        let workspace = match args.workspace.clone().or(env.tf_workspace.clone()) {
            Some(w) => w,
            None => read_environment_file(&data_dir)?.unwrap_or_else(|| "default".into()),
        };
        if workspace.is_empty() || workspace.contains('/') {
            return Err(SettingsError::BadWorkspace { name: workspace });
        }
        let prefix = merged.workspace_key_prefix.unwrap_or_else(|| "env:".into());
        let key = workspace_key(&base_key, &workspace, &prefix);
        let terraform_location = init.and_then(|init| location_of(init, &workspace));
        let encryption = encryption(
            merged.encrypt,
            merged.kms_key_id,
            merged.sse_customer_key.or(env.sse_customer_key.clone()),
        );
        let endpoint = merged
            .endpoint_s3
            .clone()
            .or_else(|| env.endpoint_s3.clone());
        Ok(Settings {
            data_dir,
            terraform_location,
            workdir,
            backend: Backend {
                bucket,
                key,
                workspace,
                region: merged.region,
                endpoint_s3: merged.endpoint_s3,
                endpoint_dynamodb: merged.endpoint_dynamodb,
                endpoint_sts: merged.endpoint_sts,
                path_style: merged.use_path_style.unwrap_or(false),
                dynamodb_table: merged.dynamodb_table,
                use_lockfile: merged.use_lockfile.unwrap_or(false),
                encryption,
                acl: merged.acl,
                skip_checksum: merged.skip_s3_checksum.unwrap_or(false),
                profile: merged.profile,
            },
            page_size: args.page_size,
            identity: Identity {
                user: format!("{}@{}", env.user.as_deref().unwrap_or("unknown"), env.host),
                host: env.host.clone(),
                ci: env.ci.clone(),
            },
            cache_dir: env.cache_dir.clone(),
            endpoint,
            read_timeout: env.read_timeout.unwrap_or(Duration::from_secs(30)),
            step_summary: env.step_summary.clone(),
            failpoint: env.failpoint.clone(),
            heartbeat: env.heartbeat.unwrap_or(Duration::from_secs(10)),
        })
    }
}

/// The encryption terraform's S3 backend applies: none unless `encrypt = true`; then a KMS key
/// if one is named, else an SSE-C key if one is given, else AES256. Without `encrypt`, a
/// `kms_key_id` or `sse_customer_key` changes nothing, on writes or reads.
fn encryption(
    encrypt: Option<bool>,
    kms: Option<String>,
    customer_key: Option<String>,
) -> Encryption {
    match (encrypt, kms, customer_key) {
        (Some(true), Some(kms), _) => Encryption::Kms(kms),
        (Some(true), None, Some(key)) => Encryption::CustomerKey(key),
        (Some(true), None, None) => Encryption::Aes256,
        _ => Encryption::None,
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, SettingsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SettingsError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The state terraform uses in a directory initialized with `init`, for `workspace`.
fn location_of(init: BackendConfig, workspace: &str) -> Option<String> {
    let prefix = init.workspace_key_prefix.unwrap_or_else(|| "env:".into());
    Some(format!(
        "s3://{}/{}",
        init.bucket?,
        workspace_key(&init.key?, workspace, &prefix)
    ))
}

/// The state terraform would use in `data_dir`'s directory for `workspace`, as its init state
/// says (None: not initialized for an S3 backend).
pub(crate) fn terraform_location(
    data_dir: &Path,
    workspace: &str,
) -> Result<Option<String>, SettingsError> {
    Ok(read_init_state(data_dir)?.and_then(|init| location_of(init, workspace)))
}

/// The backend `terraform init` recorded in the data directory, if it did.
fn read_init_state(data_dir: &Path) -> Result<Option<BackendConfig>, SettingsError> {
    let path = data_dir.join("terraform.tfstate");
    match read_optional(&path)? {
        Some(text) => Ok(BackendConfig::from_init_state(
            &path.display().to_string(),
            &text,
        )?),
        None => Ok(None),
    }
}

fn read_environment_file(data_dir: &Path) -> Result<Option<String>, SettingsError> {
    let path = data_dir.join("environment");
    Ok(read_optional(&path)?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_follows_encrypt_as_terraform_does() {
        let kms = || Some("alias/state".to_string());
        let key = || Some("a2V5".to_string());
        assert_eq!(encryption(None, kms(), key()), Encryption::None);
        assert_eq!(encryption(Some(false), kms(), None), Encryption::None);
        assert_eq!(
            encryption(Some(true), kms(), key()),
            Encryption::Kms("alias/state".into())
        );
        assert_eq!(
            encryption(Some(true), None, key()),
            Encryption::CustomerKey("a2V5".into())
        );
        assert_eq!(encryption(Some(true), None, None), Encryption::Aes256);
    }
}
