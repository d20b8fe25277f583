//! The one error type commands return, rendered once at the top as `error:` + causes + `hint:`,
//! and mapped to the documented exit codes.

use std::error::Error as _;
use std::process::ExitCode;

use crate::model::check::CheckError;
use crate::model::config::ConfigError;
use crate::model::mapping::MappingError;
use crate::model::selector::{SelectorError, VersionId};
use crate::model::state::StateError;
use crate::settings::SettingsError;
use crate::store::UnfinishedError;
use crate::store::journal::JournalError;
use crate::store::lock::LockError;
use crate::store::s3::S3Error;
use crate::terraform::TerraformError;

/// Exit codes, as documented in `--help` and docs/exit-codes.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    Restored = 3,
    RestoreFailed = 4,
    Locked = 5,
    /// `guard`: a check failed, tfrollback rolled back and the rollback is healthy.
    GuardRolledBack = 6,
    /// Rolled back, but the result does not check out (verification failed after a successful
    /// apply, or the health checks still fail); the state terraform wrote is kept.
    Unverified = 7,
    /// `doctor` found something that would stop a rollback.
    NotReady = 8,
    /// `status --check-frozen`: a deploy of this state is frozen.
    Frozen = 9,
    /// `guard` was interrupted while watching; nothing was changed.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
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
    Unfinished(#[from] UnfinishedError),
    #[error(transparent)]
    Terraform(#[from] TerraformError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(
        "the state was written as version {version} of {location}, but its DynamoDB digest could not be updated: terraform refuses the state until it is"
    )]
    DigestNotSet {
        location: String,
        version: VersionId,
        source: Box<LockError>,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn exit(&self) -> Exit {
        match self {
            Error::Selector(
                SelectorError::Invalid { .. }
                | SelectorError::BadMoment { .. }
                | SelectorError::Future { .. },
            )
            | Error::Mapping(MappingError::BadMap { .. }) => Exit::Usage,
            Error::Refused(r) if r.is_usage() => Exit::Usage,
            Error::Check(_) => Exit::Usage,
            Error::Lock(LockError::Held { .. })
            | Error::Refused(Refusal::Unfinished { .. } | Refusal::StillAlive { .. }) => {
                Exit::Locked
            }
            _ => Exit::Error,
        }
    }

    /// What to do next.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            Error::Settings(e) => e.hint(),
            Error::S3(e) => e.hint(),
            Error::Selector(SelectorError::Empty { .. }) => Some(
                "check --bucket, --key and --workspace (or the backend configuration); `terraform workspace list` shows the workspaces".into(),
            ),
            Error::Selector(
                SelectorError::BeforeOldest { .. }
                | SelectorError::DeletedAt { .. }
                | SelectorError::OnlySnapshots { .. },
            ) => Some(
                "`tfrollback list` shows when each version was written (UTC); `tfrollback list --at TIME` marks the one current then".into(),
            ),
            Error::Selector(SelectorError::Future { .. }) => Some(
                "a moment is UTC unless it carries an offset; `tfrollback list` shows when each version was written".into(),
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
            Error::Refused(r) => Some(r.hint()),
            Error::DigestNotSet { .. } => Some("run `tfrollback recover`: it sets the digest from the current state and releases the lock".into()),
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
            Error::Unfinished(UnfinishedError::Lock(e)) => e.hint(),
            Error::Journal(_) | Error::Unfinished(UnfinishedError::Journal(_)) => Some(
                "check write access to the bucket (s3:PutObject on <key>.tfrollback/*) and to .tfrollback/ in the working directory; `tfrollback status` shows what is unfinished".into(),
            ),
            Error::Stdout(_) => Some("check where stdout goes (a closed pipe, a full disk)".into()),
            Error::Check(_) => Some(
                "fix the --check: see `tfrollback guard --help` and docs/commands/guard.md; nothing was changed".into(),
            ),
        }
    }

    /// What kind of error this is, for programs reading `--json`: stable snake_case words,
    /// `refused.<why>` for refusals.
    pub(crate) fn kind(&self) -> String {
        match self {
            Error::Settings(_) => "settings".into(),
            Error::S3(_) => "s3".into(),
            Error::Selector(_) => "selector".into(),
            Error::Mapping(_) => "mapping".into(),
            Error::Config(_) => "config".into(),
            Error::State { .. } => "unreadable_state".into(),
            Error::DeleteMarker { .. } => "delete_marker".into(),
            Error::Lock(LockError::Held { .. }) => "locked".into(),
            Error::Lock(_) => "lock".into(),
            Error::Terraform(_) => "terraform".into(),
            Error::Journal(_) | Error::Unfinished(_) => "journal".into(),
            Error::Refused(r) => format!("refused.{}", r.kind()),
            Error::Write { .. } => "local_write".into(),
            Error::DigestNotSet { .. } => "digest_not_set".into(),
            Error::Stdout(_) => "stdout".into(),
            Error::Check(_) => "check".into(),
        }
    }

    /// The message people see on stderr.
    pub(crate) fn render(&self) -> String {
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

/// Why a command declined to go on. Each says what happened; `hint` says what to do next.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error(
        "nobody to ask for confirmation (no terminal, or CI / TF_IN_AUTOMATION is set), and --auto-approve was not given"
    )]
    NobodyToAsk,
    #[error("--var-file {path} does not exist")]
    MissingVarFile { path: String },
    #[error(
        "the target's lineage {target} differs from the current state's {current}: it belongs to another state's history"
    )]
    LineageChanged { target: String, current: String },
    #[error(
        "version {version} was written by terraform {wrote}, newer than the local {binary} {local}"
    )]
    TerraformTooOld {
        version: VersionId,
        wrote: String,
        binary: String,
        local: String,
    },
    #[error("{location} does not exist (deleted, or never written)")]
    StateMissing { location: String },
    #[error("no snapshot was taken, so there is nothing to restore")]
    NoSnapshot,
    #[error("no operation {operation} in the history of {location}")]
    UnknownOperation { operation: String, location: String },
    #[error("{count} operations start with {operation}")]
    AmbiguousOperation { operation: String, count: usize },
    #[error("{what} cancelled; nothing was changed")]
    Cancelled { what: &'static str },
    #[error("the state changed after the snapshot was taken; nothing was overwritten")]
    ChangedAfterSnapshot {
        #[source]
        source: crate::store::s3::S3Error,
    },
    #[error("interrupted before the apply; nothing was changed")]
    Interrupted,
    #[error(
        "the rollback plan destroys or replaces {destroy} resource(s), more than --max-destroy allows ({max})"
    )]
    TooManyDestroys {
        destroy: u64,
        max: u64,
        selector: String,
    },
    #[error(
        "verification failed: output {path} does not hold the value version {version} recorded"
    )]
    OutputMismatch {
        path: String,
        version: VersionId,
        variable: String,
    },
    #[error("verification failed: a follow-up plan with the rollback values still shows changes")]
    NotConverged,
    #[error("{}", no_slot_value(.version, .variable.as_deref()))]
    NoSlotValue {
        version: VersionId,
        variable: Option<String>,
    },
    #[error(
        "version {version} recorded no output that maps to a variable declared in the configuration, so a rollback would change nothing"
    )]
    NothingMapped { version: VersionId },
    #[error("terraform (pid {pid}) started by the interrupted rollback is still running")]
    TerraformStillRunning { pid: u32 },
    #[error(
        "terraform planned against serial {planned_serial} (lineage {planned_lineage}), not the snapshot taken under the lock (serial {snapshot_serial}): someone wrote the state without the lock; nothing was applied"
    )]
    PlanOfAnotherState {
        snapshot_serial: u64,
        planned_serial: u64,
        planned_lineage: String,
    },
    #[error(
        "the interrupted operation's lock was gone and the state was written since (current version {current}, snapshot {snapshot}): writing the snapshot back would undo that write"
    )]
    StaleSnapshot {
        snapshot: VersionId,
        current: VersionId,
    },
    #[error(
        "operation {operation_id} (by {who}) is still running: its heartbeat is {age_secs} s old; recover takes over only from an operation that stopped"
    )]
    StillAlive {
        operation_id: String,
        who: String,
        age_secs: i64,
    },
    #[error(
        "the state changed before the lock was taken: `{selector}` now names {now}, not {was} as when the command started; nothing was changed"
    )]
    TargetMoved {
        selector: String,
        was: VersionId,
        now: VersionId,
    },
    #[error(
        "the backend of {location} configures no state lock (neither use_lockfile nor dynamodb_table): nothing would keep others out during the rollback"
    )]
    NoLock { location: String },
    #[error(
        "the check `{check}` cannot be evaluated: {detail}; guard does not watch a deploy it cannot judge, and nothing was changed"
    )]
    CannotEvaluate { check: String, detail: String },
    #[error(
        "version {version} is frozen: guard rolled it back at {frozen_at} because `{check}` failed ({detail})"
    )]
    Frozen {
        version: VersionId,
        frozen_at: String,
        check: String,
        detail: String,
    },
    #[error(
        "version {version} is guard's rollback of the frozen deploy {frozen} (at {frozen_at}): that deploy was already rolled back once"
    )]
    AlreadyRolledBack {
        version: VersionId,
        frozen: VersionId,
        frozen_at: String,
    },
    #[error(
        "the rollback target `{selector}` is the deploy itself ({version}): there would be nothing to roll back to"
    )]
    TargetIsDeploy {
        selector: String,
        version: VersionId,
    },
    #[error(
        "the state changed while guard watched: {now} is current, not the deploy {watched} it watched; guard does not roll back a deploy it did not watch, and nothing was changed"
    )]
    DeployReplaced { watched: VersionId, now: VersionId },
    #[error("{}", other_state(.ours, .terraforms.as_deref()))]
    OtherState {
        ours: String,
        terraforms: Option<String>,
    },
    #[error(
        "a rollback of this state is unfinished: operation {operation_id} (`tfrollback {command}`, by {who}, started {started_at}); starting another could undo what it did"
    )]
    Unfinished {
        operation_id: String,
        command: String,
        who: String,
        started_at: String,
    },
}

impl Refusal {
    /// A usage problem (exit 2) rather than a refusal on the merits (exit 1).
    fn is_usage(&self) -> bool {
        matches!(
            self,
            Refusal::NobodyToAsk
                | Refusal::MissingVarFile { .. }
                | Refusal::AmbiguousOperation { .. }
                | Refusal::OtherState { .. }
                | Refusal::CannotEvaluate { .. }
        )
    }

    fn kind(&self) -> &'static str {
        match self {
            Refusal::NobodyToAsk => "nobody_to_ask",
            Refusal::MissingVarFile { .. } => "missing_var_file",
            Refusal::LineageChanged { .. } => "lineage_changed",
            Refusal::TerraformTooOld { .. } => "terraform_too_old",
            Refusal::StateMissing { .. } => "state_missing",
            Refusal::NoSnapshot => "no_snapshot",
            Refusal::UnknownOperation { .. } => "unknown_operation",
            Refusal::AmbiguousOperation { .. } => "ambiguous_operation",
            Refusal::Cancelled { .. } => "cancelled",
            Refusal::ChangedAfterSnapshot { .. } => "changed_after_snapshot",
            Refusal::Interrupted => "interrupted",
            Refusal::TooManyDestroys { .. } => "too_many_destroys",
            Refusal::OutputMismatch { .. } => "output_mismatch",
            Refusal::NotConverged => "not_converged",
            Refusal::NoSlotValue { .. } => "no_slot_value",
            Refusal::NothingMapped { .. } => "nothing_mapped",
            Refusal::TerraformStillRunning { .. } => "terraform_still_running",
            Refusal::Unfinished { .. } => "unfinished_operation",
            Refusal::OtherState { .. } => "other_state",
            Refusal::NoLock { .. } => "no_lock",
            Refusal::TargetMoved { .. } => "target_moved",
            Refusal::StillAlive { .. } => "still_alive",
            Refusal::StaleSnapshot { .. } => "stale_snapshot",
            Refusal::PlanOfAnotherState { .. } => "plan_of_another_state",
            Refusal::CannotEvaluate { .. } => "cannot_evaluate",
            Refusal::Frozen { .. } => "frozen",
            Refusal::AlreadyRolledBack { .. } => "already_rolled_back",
            Refusal::TargetIsDeploy { .. } => "target_is_deploy",
            Refusal::DeployReplaced { .. } => "deploy_replaced",
        }
    }

    fn hint(&self) -> String {
        match self {
            Refusal::CannotEvaluate { .. } => "fix the check (the command, the URL, the alarm name, or the access to CloudWatch), then run guard again".into(),
            Refusal::Frozen { version, .. } => format!("fix the release and deploy a new one, or lift the freeze with `tfrollback unfreeze {version}` if this deploy is wanted after all"),
            Refusal::AlreadyRolledBack { frozen, .. } => format!("deploy a fixed release; `tfrollback history` shows the rollback, `tfrollback unfreeze {frozen}` lifts the freeze"),
            Refusal::TargetIsDeploy { .. } => "mark an earlier version good (`tfrollback mark VERSION`) or name one with --to".into(),
            Refusal::DeployReplaced { .. } => "`tfrollback list` shows who wrote it; run guard after that deploy if it needs watching".into(),
            Refusal::NobodyToAsk => "pass --auto-approve to go ahead without asking (CI), or --dry-run to only see what would change".into(),
            Refusal::MissingVarFile { .. } => "pass a path relative to the current directory or an absolute one".into(),
            Refusal::LineageChanged { .. } => "check the bucket, key and workspace; pass --allow-lineage-change only if replacing the history is intended".into(),
            Refusal::TerraformTooOld { wrote, .. } => format!("install terraform {wrote} or newer (or point --terraform-bin at it)"),
            Refusal::StateMissing { .. } => "run `tfrollback list` to see its versions".into(),
            Refusal::NoSnapshot => "the state was not changed by this operation".into(),
            Refusal::UnknownOperation { .. } => "`tfrollback history` lists the operations and their ids".into(),
            Refusal::AmbiguousOperation { .. } => "give more of the operation id".into(),
            Refusal::Cancelled { .. } => "run the command again to retry".into(),
            Refusal::ChangedAfterSnapshot { .. } => "someone wrote the state without the lock: run `tfrollback list` and try again".into(),
            Refusal::Interrupted => "run the command again when ready".into(),
            Refusal::TooManyDestroys { destroy, selector, .. } => format!(
                "review the plan with `tfrollback to {selector} --dry-run`, then pass --max-destroy {destroy} if it is intended"
            ),
            Refusal::OutputMismatch { variable, .. } => format!(
                "the configuration may no longer derive that output from variable {variable}"
            ),
            Refusal::NotConverged => "run `terraform plan` with the var file to see what does not converge".into(),
            Refusal::NoSlotValue { .. } => "name it with --slot-var, or map it with --map OUTPUT.PATH=VARIABLE".into(),
            Refusal::NothingMapped { .. } => "map outputs to variables with --map OUTPUT.PATH=VARIABLE (docs/mapping.md), or roll back the state alone with `tfrollback restore`".into(),
            Refusal::TerraformStillRunning { .. } => "wait for it to stop (it was sent an interrupt and is saving its state), then run `tfrollback recover` again".into(),
            Refusal::PlanOfAnotherState { .. } => "find out who wrote it (`tfrollback list`, `tfrollback history`), then run the rollback again".into(),
            Refusal::StaleSnapshot { .. } => "look at `tfrollback list` and `tfrollback diff`; then `tfrollback recover --force-restore` puts the snapshot back anyway, or `tfrollback recover --keep-current` closes the operation and leaves the state as it is".into(),
            Refusal::StillAlive { .. } => "let it finish (or stop it with Ctrl-C where it runs); if its machine is gone, run `tfrollback recover` again once its heartbeat is older than three intervals (30 s by default)".into(),
            Refusal::TargetMoved { .. } => "look at `tfrollback list` and run the command again, or name the version id you mean".into(),
            Refusal::NoLock { .. } => "configure `use_lockfile = true` (or a dynamodb_table) in the backend, or pass --no-lock if nobody else can write this state now".into(),
            Refusal::OtherState { .. } => "run the command without --bucket/--key/--workspace so it follows terraform, or re-run `terraform init` (with -backend-config, or -reconfigure) for the state you mean".into(),
            Refusal::Unfinished { .. } => "if it is still running, wait for it; if it was interrupted, run `tfrollback recover` to finish it (`tfrollback status` shows it and the lock)".into(),
        }
    }
}

fn other_state(ours: &str, terraforms: Option<&str>) -> String {
    match terraforms {
        Some(theirs) => format!(
            "the flags name {ours}, but terraform in this directory uses {theirs}: a rollback would lock one state and apply to the other"
        ),
        None => format!(
            "the flags name {ours}, but terraform in this directory is not initialized for an S3 backend: a rollback would apply to another state"
        ),
    }
}

fn no_slot_value(version: &VersionId, variable: Option<&str>) -> String {
    match variable {
        Some(v) => format!("version {version} recorded no value for the slot variable `{v}`"),
        None => "no blue/green slot variable was found in the configuration".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::lock::LockInfo;

    #[test]
    fn refusals_carry_a_kind_an_exit_code_and_a_hint() {
        let usage: Error = Refusal::NobodyToAsk.into();
        assert_eq!(usage.kind(), "refused.nobody_to_ask");
        assert_eq!(usage.exit(), Exit::Usage);
        assert!(usage.render().contains("hint: pass --auto-approve"));

        let merits: Error = Refusal::TooManyDestroys {
            destroy: 3,
            max: 0,
            selector: "previous".into(),
        }
        .into();
        assert_eq!(merits.kind(), "refused.too_many_destroys");
        assert_eq!(merits.exit(), Exit::Error);
        assert_eq!(
            merits.hint().as_deref(),
            Some(
                "review the plan with `tfrollback to previous --dry-run`, then pass --max-destroy 3 if it is intended"
            )
        );
    }

    #[test]
    fn a_lock_held_by_someone_else_is_its_own_kind_and_exit_code() {
        let holder = LockInfo::new(
            "OperationTypeApply".into(),
            String::new(),
            "ops@laptop".into(),
            "1.11.4".into(),
            "b",
            "k",
        );
        let held: Error = LockError::Held {
            holder: Box::new(holder),
            place: "the lock file",
        }
        .into();
        assert_eq!(held.kind(), "locked");
        assert_eq!(held.exit(), Exit::Locked);
    }
}
