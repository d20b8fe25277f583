//! `tfrollback doctor`: is this state ready for a rollback? Reads what a rollback depends on
//! (versioning, lifecycle rules, the lock, access, the variables a rollback would set, the
//! terraform binary), changes nothing, and explains each finding. Exit 0 when ready (warnings
//! allowed), 8 when a finding would stop a rollback.
//!
//! Requests, all reads or writes that cannot succeed: GetBucketVersioning,
//! GetBucketLifecycleConfiguration, ListObjectVersions, GetObject of the current version and of
//! the marks index, GetObjectTagging of marked versions (only when a rule filters on tags),
//! STS GetCallerIdentity, the lock holder (lock file, DynamoDB item), DescribeTable, the
//! digest item, and the write probes of `StateStore::probe_write` and `LockTable::probe_write`.

use std::collections::BTreeMap;

use md5::{Digest as _, Md5};

use crate::cli::DoctorArgs;
use crate::commands::Context;
use crate::error::{Error, Exit};
use crate::model::mapping::{MappingError, MappingOptions, map_variables};
use crate::model::readiness::{
    self, CurrentState, Digest, Facts, LockFacts, Seen, TableFacts, TerraformFacts, Unseen,
    WriteProbe,
};
use crate::model::selector::{ObjectVersion, VersionId};
use crate::model::state::State;
use crate::render::{DoctorView, render_doctor};
use crate::store::fsx::absolute;
use crate::store::lock::{LockError, LockTable};
use crate::store::s3::S3Error;
use crate::terraform::{Pinned, Terraform};
use crate::workdir;

fn from_s3(e: &S3Error) -> Unseen {
    match e.denied_action() {
        Some(action) => Unseen::Denied { action },
        None => Unseen::Failed {
            reason: e.to_string(),
        },
    }
}

fn from_lock(e: &LockError) -> Unseen {
    match e.denied_action() {
        Some(action) => Unseen::Denied { action },
        None => Unseen::Failed {
            reason: e.to_string(),
        },
    }
}

/// The current version's bytes, read by version id, and what they hold.
struct Current {
    body: Vec<u8>,
    state: CurrentState,
}

pub(crate) async fn run(ctx: &Context, args: &DoctorArgs) -> Result<Exit, Error> {
    let store = &ctx.store;
    let objects = &store.objects;
    let backend = store.backend();
    let (bucket, key) = (backend.bucket.clone(), backend.key.clone());

    // Everything that depends on nothing else, at once.
    let index_key = store.marks.index_key();
    let (versioning, lifecycle, listing, marks, principal, holder, unfinished, shape) = tokio::join!(
        objects.versioning(),
        objects.lifecycle_rules(),
        objects.list_versions(&index_key),
        store.marks.load(),
        store.caller_arn(),
        store.locker.holder(),
        store.unfinished(),
        async {
            match &store.table {
                Some(t) => Some(t.describe().await),
                None => None,
            }
        },
    );
    let versions: Seen<Vec<ObjectVersion>> = listing.map(|(v, _)| v).map_err(|e| from_s3(&e));
    let rules = lifecycle.map_err(|e| from_s3(&e));
    let marks = marks.map(|m| m.by_version()).unwrap_or_default();

    let current = match versions.as_ref().ok().and_then(|v| v.first()) {
        Some(latest) if !latest.delete_marker => Some(read_current(ctx, &latest.version_id).await),
        _ => None,
    };
    let tags = marked_tags(ctx, rules.as_ref().ok(), &marks).await;
    let state_write = match &current {
        Some(Ok(c)) => Some(match objects.probe_write(c.body.clone()).await {
            Ok(None) => Ok(WriteProbe::Allowed),
            Ok(Some(written)) => Ok(WriteProbe::ConditionIgnored {
                wrote: written.version_id.map_or_else(
                    || "a new object".to_string(),
                    |v| format!("a byte-identical copy of the state as version {v}"),
                ),
            }),
            Err(e) => Err(from_s3(&e)),
        }),
        _ => None,
    };
    let table = match (&store.table, shape) {
        (Some(t), Some(shape)) => Some(
            table_facts(
                t,
                &bucket,
                &key,
                shape,
                current.as_ref().and_then(|c| c.as_ref().ok()),
            )
            .await,
        ),
        _ => None,
    };

    let config = workdir::configuration(&ctx.settings.workdir).map_err(|e| e.to_string());
    let mapping_options = MappingOptions {
        maps: args.mapping.maps.clone(),
        slot_var: args.mapping.slot_var.clone(),
        include_sensitive: args.mapping.include_sensitive,
    };
    // A --map that is no mapping is a usage error (exit 2), as in `diff` and `to`; what the
    // mapping finds in the state is a finding.
    if let Ok(config) = &config
        && let Err(e @ MappingError::BadMap { .. }) = map_variables(
            config,
            &mapping_options,
            &BTreeMap::new(),
            &BTreeMap::new(),
            "",
        )
    {
        return Err(e.into());
    }
    let terraform = terraform_facts(ctx, args).await;
    let facts = Facts {
        location: ctx.location(),
        bucket,
        key,
        now: jiff::Timestamp::now(),
        versioning: versioning.map_err(|e| from_s3(&e)),
        lifecycle: rules,
        versions,
        marks,
        tags,
        current: current.map(|c| c.map(|c| c.state)),
        state_write,
        principal,
        lock: LockFacts {
            lockfile: backend.use_lockfile,
            lockfile_key: format!("{}.tflock", backend.key),
            table,
            holder: holder
                .map(|h| {
                    h.map(|h| {
                        format!(
                            "{} since {} (operation `{}`, lock ID {})",
                            h.who, h.created, h.operation, h.id
                        )
                    })
                })
                .map_err(|e| from_lock(&e)),
            unfinished: unfinished
                .map(|j| {
                    j.map(|j| {
                        format!(
                            "`tfrollback {}` by {}, started {}, operation {}",
                            j.command, j.who, j.started_at, j.operation_id
                        )
                    })
                })
                .map_err(|e| Unseen::Failed {
                    reason: e.to_string(),
                }),
        },
        config: config.as_ref().map_err(Clone::clone),
        mapping_options: &mapping_options,
        terraform,
    };
    let readiness = readiness::assess(&facts);
    let view = DoctorView::new(&facts, &readiness, ctx.terminal.plain);
    ctx.emit(&view, render_doctor)?;
    Ok(if readiness.ready() {
        Exit::Ok
    } else {
        Exit::NotReady
    })
}

/// Reads the current version whole (the read check, the outputs, the bytes the write probe
/// sends back unchanged).
async fn read_current(ctx: &Context, version: &VersionId) -> Seen<Current> {
    let body = ctx
        .store
        .objects
        .read(version)
        .await
        .map_err(|e| from_s3(&e))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let state = State::parse(&text).map_err(|e| Unseen::Failed {
        reason: format!("version {version} is not a state tfrollback can use: {e}"),
    })?;
    let state = CurrentState {
        version_id: version.clone(),
        serial: state.serial,
        terraform_version: state.terraform_version,
        outputs: state.outputs,
    };
    Ok(Current { body, state })
}

/// The tags of the marked versions, read only when an enabled rule filters on tags (the
/// versions terraform writes carry none; marks add tags to theirs).
async fn marked_tags(
    ctx: &Context,
    rules: Option<&Vec<crate::model::lifecycle::Rule>>,
    marks: &BTreeMap<VersionId, Vec<String>>,
) -> BTreeMap<VersionId, Vec<(String, String)>> {
    let mut tags = BTreeMap::new();
    if !rules.is_some_and(|r| r.iter().any(|r| r.enabled && !r.filter.tags.is_empty())) {
        return tags;
    }
    for version in marks.keys() {
        match ctx.store.objects.tags(version).await {
            Ok(t) => {
                tags.insert(version.clone(), t);
            }
            Err(e) => tracing::warn!("cannot read the tags of version {version}: {e}"),
        }
    }
    tags
}

async fn table_facts(
    table: &LockTable,
    bucket: &str,
    key: &str,
    shape: Result<Option<readiness::TableShape>, LockError>,
    current: Option<&Current>,
) -> TableFacts {
    let exists = matches!(shape, Ok(Some(_)));
    let shape = shape.map_err(|e| from_lock(&e));
    if !exists {
        return TableFacts {
            name: table.name().to_string(),
            shape,
            write: None,
            put_probed: false,
            digest: None,
        };
    }
    let stored = table.digest(bucket, key).await;
    let digest = current.map(|c| {
        let actual: String = Md5::digest(&c.body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        match &stored {
            Ok(None) => Ok(Digest::Absent),
            Ok(Some(s)) if *s == actual => Ok(Digest::Matches),
            Ok(Some(s)) => Ok(Digest::Differs {
                stored: s.clone(),
                actual,
            }),
            Err(e) => Err(from_lock(e)),
        }
    });
    let (write, put_probed) = match &stored {
        Ok(stored) => match table.probe_write(bucket, key, stored.as_deref()).await {
            Ok((put, None)) => (Some(Ok(WriteProbe::Allowed)), put),
            Ok((put, Some(wrote))) => (Some(Ok(WriteProbe::ConditionIgnored { wrote })), put),
            Err(e) => (Some(Err(from_lock(&e))), false),
        },
        // Without the item as it is, no probe could be sure to leave it unchanged.
        Err(e) => (
            Some(Err(Unseen::Failed {
                reason: format!(
                    "the digest item, which the probe writes back unchanged, could not be read first ({e})"
                ),
            })),
            false,
        ),
    };
    TableFacts {
        name: table.name().to_string(),
        shape,
        write,
        put_probed,
        digest,
    }
}

/// The binary a rollback would run, its version, and the working directory's init.
async fn terraform_facts(ctx: &Context, args: &DoctorArgs) -> TerraformFacts {
    let settings = &ctx.settings;
    let pinned = Pinned {
        dir: absolute(&settings.workdir),
        data_dir: absolute(&settings.data_dir),
        workspace: settings.backend.workspace.clone(),
    };
    // Nothing interrupts `terraform version`; the sender lives as long as the binary runs.
    let (_keep, interrupt) = tokio::sync::watch::channel(false);
    let binary = match Terraform::locate(args.terraform_bin.as_deref(), None, pinned, interrupt) {
        Ok(mut terraform) => {
            let initialized = terraform.is_initialized();
            let version = terraform.version().await.map(|v| (terraform.name(), v));
            return TerraformFacts {
                binary: version.map_err(|e| Unseen::Failed {
                    reason: e.to_string(),
                }),
                initialized,
                terraform_location: settings.terraform_location.clone(),
            };
        }
        Err(e) => Err(Unseen::Failed {
            reason: e.to_string(),
        }),
    };
    TerraformFacts {
        binary,
        initialized: settings.data_dir.join("terraform.tfstate").is_file(),
        terraform_location: settings.terraform_location.clone(),
    }
}
