//! The S3 backend configuration as Terraform records it: in `.terraform/terraform.tfstate`
//! (written by `terraform init`, including `-backend-config` values) or in a `backend "s3"`
//! block of the `*.tf` files. Pure: callers hand in file contents.

use std::fmt;

use serde_json::{Map, Value};

use crate::model::hclx;

/// One source's view of the backend; every field is optional so sources can be layered.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct BackendConfig {
    pub(crate) bucket: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) workspace_key_prefix: Option<String>,
    pub(crate) dynamodb_table: Option<String>,
    pub(crate) use_lockfile: Option<bool>,
    pub(crate) encrypt: Option<bool>,
    pub(crate) kms_key_id: Option<String>,
    pub(crate) sse_customer_key: Option<String>,
    pub(crate) acl: Option<String>,
    pub(crate) endpoint_s3: Option<String>,
    pub(crate) endpoint_dynamodb: Option<String>,
    pub(crate) endpoint_sts: Option<String>,
    pub(crate) use_path_style: Option<bool>,
    pub(crate) skip_s3_checksum: Option<bool>,
    pub(crate) profile: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BackendError {
    #[error("{file} is not valid JSON ({detail}); run `terraform init` again to rewrite it")]
    InitStateInvalid { file: String, detail: String },
    #[error("{file} cannot be parsed as HCL: {detail}")]
    HclInvalid { file: String, detail: String },
    #[error(
        "this configuration uses the `{kind}` backend; tfrollback works with the `s3` backend only"
    )]
    NotS3 { kind: String },
    #[error("backend setting `{name}` in {file} must be {expected}")]
    WrongType {
        file: String,
        name: String,
        expected: &'static str,
    },
}

impl BackendConfig {
    /// Reads `.terraform/terraform.tfstate`. `Ok(None)` when it records no backend.
    pub(crate) fn from_init_state(
        file: &str,
        text: &str,
    ) -> Result<Option<BackendConfig>, BackendError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| BackendError::InitStateInvalid {
                file: file.to_string(),
                detail: e.to_string(),
            })?;
        let Some(backend) = doc.get("backend").filter(|b| !b.is_null()) else {
            return Ok(None);
        };
        let kind = backend.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "s3" {
            return Err(BackendError::NotS3 {
                kind: kind.to_string(),
            });
        }
        let empty = Map::new();
        let config = backend
            .get("config")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        BackendConfig::from_map(file, config).map(Some)
    }

    /// Finds a `terraform { backend "s3" { ... } }` block in one `.tf` file.
    pub(crate) fn from_tf(file: &str, text: &str) -> Result<Option<BackendConfig>, BackendError> {
        let body = hcl::parse(text).map_err(|e| BackendError::HclInvalid {
            file: file.to_string(),
            detail: e.to_string(),
        })?;
        for terraform in body.blocks().filter(|b| b.identifier() == "terraform") {
            if let Some(backend) = terraform
                .body()
                .blocks()
                .find(|b| b.identifier() == "backend")
            {
                let kind = backend
                    .labels()
                    .first()
                    .map(|l| l.as_str().to_string())
                    .unwrap_or_default();
                if kind != "s3" {
                    return Err(BackendError::NotS3 { kind });
                }
                let map = hclx::literal_attributes(backend.body());
                return BackendConfig::from_map(file, &map).map(Some);
            }
        }
        Ok(None)
    }

    fn from_map(file: &str, map: &Map<String, Value>) -> Result<BackendConfig, BackendError> {
        let get = Getter { file, map };
        let endpoints = map.get("endpoints").and_then(Value::as_object);
        let endpoint = |name: &str| {
            endpoints
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(BackendConfig {
            bucket: get.string("bucket")?,
            key: get.string("key")?,
            region: get.string("region")?,
            workspace_key_prefix: get.string_or_empty("workspace_key_prefix")?,
            dynamodb_table: get.string("dynamodb_table")?,
            use_lockfile: get.bool("use_lockfile")?,
            encrypt: get.bool("encrypt")?,
            kms_key_id: get.string("kms_key_id")?,
            sse_customer_key: get.string("sse_customer_key")?,
            acl: get.string("acl")?,
            endpoint_s3: endpoint("s3").or(get.string("endpoint")?),
            endpoint_dynamodb: endpoint("dynamodb").or(get.string("dynamodb_endpoint")?),
            endpoint_sts: endpoint("sts").or(get.string("sts_endpoint")?),
            use_path_style: match get.bool("use_path_style")? {
                Some(v) => Some(v),
                None => get.bool("force_path_style")?,
            },
            skip_s3_checksum: get.bool("skip_s3_checksum")?,
            profile: get.string("profile")?,
        })
    }

    /// Fills every field this source leaves unset from `lower`.
    pub(crate) fn or(self, lower: BackendConfig) -> BackendConfig {
        BackendConfig {
            bucket: self.bucket.or(lower.bucket),
            key: self.key.or(lower.key),
            region: self.region.or(lower.region),
            workspace_key_prefix: self.workspace_key_prefix.or(lower.workspace_key_prefix),
            dynamodb_table: self.dynamodb_table.or(lower.dynamodb_table),
            use_lockfile: self.use_lockfile.or(lower.use_lockfile),
            encrypt: self.encrypt.or(lower.encrypt),
            kms_key_id: self.kms_key_id.or(lower.kms_key_id),
            sse_customer_key: self.sse_customer_key.or(lower.sse_customer_key),
            acl: self.acl.or(lower.acl),
            endpoint_s3: self.endpoint_s3.or(lower.endpoint_s3),
            endpoint_dynamodb: self.endpoint_dynamodb.or(lower.endpoint_dynamodb),
            endpoint_sts: self.endpoint_sts.or(lower.endpoint_sts),
            use_path_style: self.use_path_style.or(lower.use_path_style),
            skip_s3_checksum: self.skip_s3_checksum.or(lower.skip_s3_checksum),
            profile: self.profile.or(lower.profile),
        }
    }
}

struct Getter<'a> {
    file: &'a str,
    map: &'a Map<String, Value>,
}

impl Getter<'_> {
    fn string(&self, name: &str) -> Result<Option<String>, BackendError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(name, "a string")),
        }
    }

    /// Like `string`, but an empty string is a value: `workspace_key_prefix = ""` is valid
    /// and puts workspaces at `<workspace>/<key>` (terraform defaults only a null prefix).
    fn string_or_empty(&self, name: &str) -> Result<Option<String>, BackendError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(name, "a string")),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, BackendError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // `-backend-config=encrypt=true` arrives as a string in the init state.
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(self.wrong(name, "true or false")),
        }
    }

    fn wrong(&self, name: &str, expected: &'static str) -> BackendError {
        BackendError::WrongType {
            file: self.file.to_string(),
            name: name.to_string(),
            expected,
        }
    }
}

/// The object key of the state for a workspace, as the S3 backend computes it.
pub(crate) fn workspace_key(key: &str, workspace: &str, prefix: &str) -> String {
    if workspace == "default" {
        return key.to_string();
    }
    // terraform joins the parts with Go's path.Join: empty parts vanish and slashes collapse,
    // so an empty prefix puts workspaces at `<workspace>/<key>`.
    [prefix, workspace, key]
        .iter()
        .flat_map(|part| part.split('/'))
        .filter(|segment| !segment.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Server-side encryption of the state object, as the backend writes it.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) enum Encryption {
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
pub(crate) struct Backend {
    pub(crate) bucket: String,
    /// The object key of the selected workspace's state.
    pub(crate) key: String,
    pub(crate) workspace: String,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_s3: Option<String>,
    pub(crate) endpoint_dynamodb: Option<String>,
    pub(crate) endpoint_sts: Option<String>,
    pub(crate) path_style: bool,
    pub(crate) dynamodb_table: Option<String>,
    pub(crate) use_lockfile: bool,
    pub(crate) encryption: Encryption,
    pub(crate) acl: Option<String>,
    pub(crate) skip_checksum: bool,
    pub(crate) profile: Option<String>,
}

impl Backend {
    /// `s3://bucket/key`, as messages name the state.
    pub(crate) fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_init_state_with_backend_config_values() {
        let text = r#"{"version":3,"terraform_version":"1.11.4","backend":{"type":"s3","config":{
            "bucket":"b","key":"app/terraform.tfstate","region":"eu-west-1","dynamodb_table":"locks",
            "use_lockfile":null,"encrypt":"true","endpoints":{"s3":"http://127.0.0.1:9000","dynamodb":null},
            "use_path_style":true,"workspace_key_prefix":null,"kms_key_id":""},"hash":1}}"#;
        let c = BackendConfig::from_init_state("f", text).unwrap().unwrap();
        assert_eq!(c.bucket.as_deref(), Some("b"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.dynamodb_table.as_deref(), Some("locks"));
        assert_eq!(c.encrypt, Some(true));
        assert_eq!(c.kms_key_id, None);
        assert_eq!(c.endpoint_s3.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.endpoint_dynamodb, None);
        assert_eq!(c.use_path_style, Some(true));
    }

    #[test]
    fn refuses_other_backends() {
        let text = r#"{"backend":{"type":"gcs","config":{}}}"#;
        assert_eq!(
            BackendConfig::from_init_state("f", text),
            Err(BackendError::NotS3 { kind: "gcs".into() })
        );
        assert_eq!(
            BackendConfig::from_tf("main.tf", "terraform {\n backend \"local\" {}\n}\n"),
            Err(BackendError::NotS3 {
                kind: "local".into()
            })
        );
    }

    #[test]
    fn reads_the_backend_block_with_legacy_names() {
        let tf = r#"
            terraform {
              required_version = ">= 1.5"
              backend "s3" {
                bucket           = "state"
                key              = "net/terraform.tfstate"
                use_lockfile     = true
                force_path_style = true
                endpoint         = "http://localhost:4566"
                region           = var.not_allowed_here
              }
            }
        "#;
        let c = BackendConfig::from_tf("main.tf", tf).unwrap().unwrap();
        assert_eq!(c.bucket.as_deref(), Some("state"));
        assert_eq!(c.use_lockfile, Some(true));
        assert_eq!(c.use_path_style, Some(true));
        assert_eq!(c.endpoint_s3.as_deref(), Some("http://localhost:4566"));
        assert_eq!(c.region, None);
        assert_eq!(
            BackendConfig::from_tf("x.tf", "variable \"a\" {}").unwrap(),
            None
        );
        assert!(matches!(
            BackendConfig::from_tf("bad.tf", "terraform {"),
            Err(BackendError::HclInvalid { .. })
        ));
    }

    #[test]
    fn layers_sources_field_by_field() {
        let flags = BackendConfig {
            bucket: Some("flag".into()),
            ..Default::default()
        };
        let init = BackendConfig {
            bucket: Some("init".into()),
            key: Some("k".into()),
            ..Default::default()
        };
        let merged = flags.or(init);
        assert_eq!(merged.bucket.as_deref(), Some("flag"));
        assert_eq!(merged.key.as_deref(), Some("k"));
    }

    #[test]
    fn workspace_keys_follow_the_backend() {
        assert_eq!(
            workspace_key("a/t.tfstate", "default", "env:"),
            "a/t.tfstate"
        );
        assert_eq!(
            workspace_key("a/t.tfstate", "staging", "env:"),
            "env:/staging/a/t.tfstate"
        );
        // Go's path.Join: an empty prefix vanishes, doubled slashes collapse.
        assert_eq!(
            workspace_key("a/t.tfstate", "staging", ""),
            "staging/a/t.tfstate"
        );
        assert_eq!(
            workspace_key("a/t.tfstate", "staging", "envs/"),
            "envs/staging/a/t.tfstate"
        );
    }
}
