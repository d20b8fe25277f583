//! Flags, environment and backend discovery resolved into one validated `Settings` value before
//! any command runs. Sources, highest first: flags, `.terraform/terraform.tfstate` (it includes
//! `-backend-config` values), then the `backend "s3"` block of the `*.tf` files.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::backend::{BackendConfig, BackendError, workspace_key};
use crate::cli::GlobalArgs;
use crate::config::{ConfigError, read_tf_files};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
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
    pub fn hint(&self) -> Option<String> {
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

/// Server-side encryption of the state object, as the backend writes it.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Encryption {
    #[default]
    None,
    Aes256,
    Kms(String),
    /// SSE-C: the base64 key is needed on every read and write. Never printed.
    CustomerKey(String),
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encryption::None => f.write_str("None"),
            Encryption::Aes256 => f.write_str("Aes256"),
            Encryption::Kms(id) => write!(f, "Kms({id})"),
            Encryption::CustomerKey(_) => f.write_str("CustomerKey(<redacted>)"),
        }
    }
}

/// Where the state lives and how the backend treats it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub bucket: String,
    /// The object key of the selected workspace's state.
    pub key: String,
    pub workspace: String,
    pub region: Option<String>,
    pub endpoint_s3: Option<String>,
    pub endpoint_dynamodb: Option<String>,
    pub endpoint_sts: Option<String>,
    pub path_style: bool,
    pub dynamodb_table: Option<String>,
    pub use_lockfile: bool,
    pub encryption: Encryption,
    pub acl: Option<String>,
    pub skip_checksum: bool,
    pub profile: Option<String>,
}

impl Backend {
    /// `s3://bucket/key`, as messages name the state.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub workdir: PathBuf,
    pub backend: Backend,
    pub page_size: i32,
}

/// What settings read from the process environment; passed in so resolution stays testable.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub tf_workspace: Option<String>,
    pub sse_customer_key: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Env {
            tf_workspace: var("TF_WORKSPACE"),
            sse_customer_key: var("AWS_SSE_CUSTOMER_KEY"),
        }
    }
}

impl Settings {
    pub fn resolve(args: &GlobalArgs, env: &Env) -> Result<Settings, SettingsError> {
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
        let mut merged = flags;
        if let Some(init) = read_init_state(&workdir)? {
            merged = merged.or(init);
        }
        if merged.bucket.is_none() || merged.key.is_none() {
            for (file, text) in read_tf_files(&workdir)? {
                if let Some(block) = BackendConfig::from_tf(&file, &text)? {
                    merged = merged.or(block);
                    break;
                }
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
            None => read_environment_file(&workdir)?.unwrap_or_else(|| "default".into()),
        };
        if workspace.is_empty() || workspace.contains('/') {
            return Err(SettingsError::BadWorkspace { name: workspace });
        }
        let prefix = merged.workspace_key_prefix.unwrap_or_else(|| "env:".into());
        let key = workspace_key(&base_key, &workspace, &prefix);
        let encryption = match (
            merged.sse_customer_key.or(env.sse_customer_key.clone()),
            merged.kms_key_id,
            merged.encrypt,
        ) {
            (Some(k), _, _) => Encryption::CustomerKey(k),
            (None, Some(kms), _) => Encryption::Kms(kms),
            (None, None, Some(true)) => Encryption::Aes256,
            _ => Encryption::None,
        };
        Ok(Settings {
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
        })
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

fn read_init_state(workdir: &Path) -> Result<Option<BackendConfig>, SettingsError> {
    let path = workdir.join(".terraform").join("terraform.tfstate");
    match read_optional(&path)? {
        Some(text) => Ok(BackendConfig::from_init_state(
            &path.display().to_string(),
            &text,
        )?),
        None => Ok(None),
    }
}

fn read_environment_file(workdir: &Path) -> Result<Option<String>, SettingsError> {
    let path = workdir.join(".terraform").join("environment");
    Ok(read_optional(&path)?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}
