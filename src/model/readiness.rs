//! Is this state ready for a rollback? The findings of `tfrollback doctor`: each has a check,
//! a level (ok, warning, or a problem that would stop a rollback), a stable `kind` for
//! programs, a message that says what was found and a hint that says what to do. Pure: the
//! command gathers [`Facts`] (what S3, DynamoDB, STS, the working directory and terraform
//! said) and [`assess`] turns them into a [`Readiness`].

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::model::config::Configuration;
use crate::model::lifecycle::{
    CurrentExpiry, Fate, Horizon, Rule, VersionFate, current_expiry, fates, horizon,
};
use crate::model::mapping::{self, Mapping, MappingOptions, Source};
use crate::model::selector::{ObjectVersion, VersionId};
use crate::model::state::{Output, is_newer};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Level {
    Ok,
    /// Worth knowing or fixing; a rollback would still run.
    Warning,
    /// Would stop a rollback (or make it unsafe).
    Problem,
}

/// What a finding is about, in the order `doctor` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Check {
    State,
    Versioning,
    Lifecycle,
    Lock,
    Access,
    Variables,
    Terraform,
}

impl Check {
    pub(crate) const ALL: [Check; 7] = [
        Check::State,
        Check::Versioning,
        Check::Lifecycle,
        Check::Lock,
        Check::Access,
        Check::Variables,
        Check::Terraform,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Check::State => "State",
            Check::Versioning => "Versioning",
            Check::Lifecycle => "Lifecycle rules",
            Check::Lock => "Lock",
            Check::Access => "Access",
            Check::Variables => "Variables",
            Check::Terraform => "Terraform",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Finding {
    pub(crate) check: Check,
    pub(crate) level: Level,
    /// A stable snake_case word for programs (docs/commands/doctor.md lists them).
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

/// Why something could not be observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unseen {
    /// The identity in use may not make the request: the IAM action it needs.
    Denied { action: String },
    /// Anything else, said in words.
    Failed { reason: String },
}

impl Unseen {
    fn describe(&self) -> String {
        match self {
            Unseen::Denied { action } => format!("access denied (it needs {action})"),
            Unseen::Failed { reason } => reason.clone(),
        }
    }
}

/// An observation, or why there is none.
pub(crate) type Seen<T> = Result<T, Unseen>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versioning {
    Enabled,
    Suspended,
    /// Never enabled.
    Off,
}

/// The answer to a write that changes nothing: a conditional write whose condition cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteProbe {
    /// Refused on its condition, which is checked only once the write is authorized.
    Allowed,
    /// The server ignored the condition and wrote: what it wrote.
    ConditionIgnored { wrote: String },
}

/// The DynamoDB table's key schema and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableShape {
    /// (name, type) of the hash key: terraform needs (`LockID`, `S`).
    pub(crate) hash_key: Option<(String, String)>,
    pub(crate) range_key: Option<String>,
    pub(crate) status: String,
}

/// The digest item terraform checks on every read, against the current state's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Digest {
    Matches,
    /// No digest item: terraform accepts the state as it is.
    Absent,
    Differs {
        stored: String,
        actual: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableFacts {
    pub(crate) name: String,
    /// None: the table does not exist.
    pub(crate) shape: Seen<Option<TableShape>>,
    /// None: not tried (no table).
    pub(crate) write: Option<Seen<WriteProbe>>,
    /// Whether PutItem was probed besides DeleteItem (it is only when the digest item exists,
    /// so that it can carry the item unchanged).
    pub(crate) put_probed: bool,
    /// None: not checked (no table, or no current state to compare with).
    pub(crate) digest: Option<Seen<Digest>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockFacts {
    pub(crate) lockfile: bool,
    pub(crate) lockfile_key: String,
    pub(crate) table: Option<TableFacts>,
    /// Who holds the lock now, described, if anyone.
    pub(crate) holder: Seen<Option<String>>,
    /// An unfinished rollback of this state, described, if any.
    pub(crate) unfinished: Seen<Option<String>>,
}

/// What the current version holds, as far as a rollback needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CurrentState {
    pub(crate) version_id: VersionId,
    pub(crate) serial: u64,
    pub(crate) terraform_version: String,
    pub(crate) outputs: BTreeMap<String, Output>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TerraformFacts {
    /// The binary's name and version; `Failed` when there is none.
    pub(crate) binary: Seen<(String, String)>,
    /// Whether the working directory was initialized (`to` runs `init` otherwise).
    pub(crate) initialized: bool,
    /// The state terraform's init in this directory points at (`s3://bucket/key`), if any.
    pub(crate) terraform_location: Option<String>,
}

/// Everything `doctor` observed. Nothing was changed to observe it.
pub(crate) struct Facts<'a> {
    pub(crate) location: String,
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) now: Timestamp,
    pub(crate) versioning: Seen<Versioning>,
    pub(crate) lifecycle: Seen<Vec<Rule>>,
    /// Every version and delete marker of the state key, newest first.
    pub(crate) versions: Seen<Vec<ObjectVersion>>,
    pub(crate) marks: BTreeMap<VersionId, Vec<String>>,
    /// The tags read of versions (the marked ones, when a rule filters on tags).
    pub(crate) tags: BTreeMap<VersionId, Vec<(String, String)>>,
    /// The current version's content; None when there is no current state to read.
    pub(crate) current: Option<Seen<CurrentState>>,
    /// The write probe on the state key; None when there was nothing to probe.
    pub(crate) state_write: Option<Seen<WriteProbe>>,
    /// The caller's ARN, when STS said.
    pub(crate) principal: Option<String>,
    pub(crate) lock: LockFacts,
    pub(crate) config: Result<&'a Configuration, String>,
    pub(crate) mapping_options: &'a MappingOptions,
    pub(crate) terraform: TerraformFacts,
}

/// What `doctor` concluded.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    pub(crate) findings: Vec<Finding>,
    /// The fate of every version under the lifecycle rules, when they were read.
    pub(crate) fates: Vec<VersionFate>,
    pub(crate) horizon: Option<Horizon>,
    pub(crate) current_expiry: Option<CurrentExpiry>,
    /// The variables a rollback to a version like the current one would set.
    pub(crate) mapping: Option<Mapping>,
}

impl Readiness {
    /// Ready when nothing would stop a rollback (warnings allowed).
    pub(crate) fn ready(&self) -> bool {
        self.count(Level::Problem) == 0
    }

    pub(crate) fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, check: Check, level: Level, kind: &'static str, message: String) {
        self.0.push(Finding {
            check,
            level,
            kind,
            message,
            hint: None,
        });
    }

    fn hinted(
        &mut self,
        check: Check,
        level: Level,
        kind: &'static str,
        message: String,
        hint: impl Into<String>,
    ) {
        self.0.push(Finding {
            check,
            level,
            kind,
            message,
            hint: Some(hint.into()),
        });
    }
}

/// `2026-04-20` for a midnight, `2026-04-20 09:30 UTC` otherwise.
fn day(t: Timestamp) -> String {
    if t.as_second().rem_euclid(86_400) == 0 {
        t.strftime("%Y-%m-%d").to_string()
    } else {
        t.strftime("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// `from 2026-04-20`, or `already (since 2026-04-01)`.
fn when(from: Timestamp, now: Timestamp) -> String {
    if from <= now {
        format!("now (due since {})", day(from))
    } else {
        format!("from {}", day(from))
    }
}

pub(crate) fn assess(facts: &Facts<'_>) -> Readiness {
    let mut out = Findings(vec![]);
    state(facts, &mut out);
    versioning(facts, &mut out);
    let (fates, horizon, current_expiry) = lifecycle_findings(facts, &mut out);
    lock(facts, &mut out);
    access(facts, &mut out);
    let mapping = variables(facts, &mut out);
    terraform(facts, &mut out);
    let mut findings = out.0;
    // Stable order: by check, then as found.
    findings.sort_by_key(|f| f.check);
    Readiness {
        findings,
        fates,
        horizon,
        current_expiry,
        mapping,
    }
}

fn state(facts: &Facts<'_>, out: &mut Findings) {
    let c = Check::State;
    let Ok(versions) = &facts.versions else {
        return; // The access check says why the listing failed.
    };
    match versions.first() {
        None => out.hinted(
            c,
            Level::Problem,
            "state_missing",
            format!("there is no state at {}: the key has no versions", facts.location),
            "check --bucket, --key and --workspace (or the backend configuration); `terraform workspace list` shows the workspaces",
        ),
        Some(latest) if latest.delete_marker => out.hinted(
            c,
            Level::Problem,
            "state_deleted",
            format!(
                "the current version of {} is a delete marker ({}): terraform finds no state at all",
                facts.location, latest.version_id
            ),
            "`tfrollback restore VERSION` writes an earlier state back; `tfrollback list` shows them",
        ),
        Some(latest) => {
            let states = versions.iter().filter(|v| !v.delete_marker).count();
            let detail = match &facts.current {
                Some(Ok(s)) => format!(
                    ", the current one at serial {} written by terraform {}",
                    s.serial, s.terraform_version
                ),
                _ => String::new(),
            };
            out.add(
                c,
                Level::Ok,
                "state_found",
                format!(
                    "{} has {states} version{} holding a state{detail} (current: {})",
                    facts.location,
                    if states == 1 { "" } else { "s" },
                    latest.version_id
                ),
            );
            if states == 1 {
                out.add(
                    c,
                    Level::Ok,
                    "no_earlier_version",
                    "there is no earlier version yet: the first rollback becomes possible after the next write".into(),
                );
            }
        }
    }
    if let Some(Err(unseen)) = &facts.current {
        out.add(
            c,
            Level::Problem,
            "state_unreadable",
            format!("the current version cannot be used: {}", unseen.describe()),
        );
    }
}

fn versioning(facts: &Facts<'_>, out: &mut Findings) {
    let c = Check::Versioning;
    let enable = format!(
        "enable it: `aws s3api put-bucket-versioning --bucket {} --versioning-configuration Status=Enabled`; rollbacks become possible from the next write on",
        facts.bucket
    );
    match &facts.versioning {
        Ok(Versioning::Enabled) => out.add(
            c,
            Level::Ok,
            "versioning_enabled",
            format!(
                "versioning is enabled on bucket {}: every state write keeps the one before",
                facts.bucket
            ),
        ),
        Ok(Versioning::Suspended) => out.hinted(
            c,
            Level::Problem,
            "versioning_suspended",
            format!(
                "versioning is suspended on bucket {}: every write now replaces the current state instead of keeping it, and tfrollback refuses to work on the bucket",
                facts.bucket
            ),
            enable,
        ),
        Ok(Versioning::Off) => out.hinted(
            c,
            Level::Problem,
            "versioning_off",
            format!(
                "versioning was never enabled on bucket {}: no earlier state versions exist",
                facts.bucket
            ),
            enable,
        ),
        Err(unseen) => out.hinted(
            c,
            Level::Problem,
            "versioning_unknown",
            format!(
                "GetBucketVersioning on bucket {} failed: {}; every tfrollback command asks it first",
                facts.bucket,
                unseen.describe()
            ),
            "grant s3:GetBucketVersioning on the bucket (docs/iam.md), and check the bucket name and region",
        ),
    }
}

type LifecycleOutcome = (Vec<VersionFate>, Option<Horizon>, Option<CurrentExpiry>);

fn lifecycle_findings(facts: &Facts<'_>, out: &mut Findings) -> LifecycleOutcome {
    let c = Check::Lifecycle;
    let rules = match &facts.lifecycle {
        Ok(rules) => rules,
        Err(unseen) => {
            out.hinted(
                c,
                Level::Warning,
                "lifecycle_unknown",
                format!(
                    "the bucket's lifecycle rules could not be read ({}): how far back a rollback can go is unknown",
                    unseen.describe()
                ),
                "grant s3:GetLifecycleConfiguration on the bucket to the identity running doctor",
            );
            return (vec![], None, None);
        }
    };
    let covering: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.filter.covers_key(&facts.key))
        .collect();
    for r in covering.iter().filter(|r| !r.enabled) {
        if r.deletes_noncurrent() || r.expires_current() {
            out.add(
                c,
                Level::Ok,
                "lifecycle_rule_disabled",
                format!(
                    "{} would reach the state but is disabled{}",
                    r.name(),
                    if r.deletes_noncurrent() {
                        format!(" (it {})", r.describe_noncurrent())
                    } else {
                        String::new()
                    }
                ),
            );
        }
    }
    let active: Vec<&&Rule> = covering
        .iter()
        .filter(|r| r.enabled && (r.deletes_noncurrent() || r.expires_current()))
        .collect();
    if active.is_empty() {
        out.add(
            c,
            Level::Ok,
            if rules.is_empty() {
                "lifecycle_none"
            } else {
                "lifecycle_keeps_versions"
            },
            if rules.is_empty() {
                format!(
                    "bucket {} has no lifecycle rules: every version of the state is kept",
                    facts.bucket
                )
            } else {
                format!(
                    "no enabled lifecycle rule of bucket {} deletes versions of {}: every version is kept",
                    facts.bucket, facts.key
                )
            },
        );
    }
    let Ok(versions) = &facts.versions else {
        return (vec![], None, None);
    };
    let fates = fates(rules, &facts.key, versions, &facts.tags);
    let expiry = versions
        .first()
        .and_then(|current| current_expiry(rules, &facts.key, current, &facts.tags));
    if let Some(e) = &expiry {
        out.hinted(
            c,
            Level::Problem,
            "state_expires",
            format!(
                "{} expires current versions: S3 puts a delete marker on the state {}, after which terraform finds no state and plans to create everything again",
                e.rule,
                when(e.from, facts.now)
            ),
            format!(
                "narrow the rule's filter so that it leaves {} out, or drop its Expiration (NoncurrentVersionExpiration alone never touches the current state)",
                facts.key
            ),
        );
    }
    let deleting: Vec<&&Rule> = active
        .iter()
        .copied()
        .filter(|r| r.deletes_noncurrent())
        .collect();
    let horizon = horizon(&fates, facts.now);
    if !deleting.is_empty() {
        horizon_finding(facts, &deleting, &horizon, out);
    }
    marks(facts, &fates, out);
    (fates, Some(horizon), expiry)
}

fn horizon_finding(facts: &Facts<'_>, deleting: &[&&Rule], h: &Horizon, out: &mut Findings) {
    let c = Check::Lifecycle;
    let rules: Vec<String> = deleting
        .iter()
        .map(|r| {
            let filter = r.describe_filter();
            format!(
                "{} {}{}",
                r.name(),
                r.describe_noncurrent(),
                if filter.is_empty() {
                    String::new()
                } else {
                    format!(" ({filter})")
                }
            )
        })
        .collect();
    let oldest = match &h.oldest_restorable {
        Some(v) => format!(
            "the oldest you can roll back to is {} (written {}{})",
            v.version_id,
            day(v.last_modified),
            match &v.fate {
                Fate::Deleted { from, .. } => format!(", deletable {}", when(*from, facts.now)),
                Fate::KeptForWrites { writes, .. } => format!(
                    ", deleted after {writes} more write{}",
                    if *writes == 1 { "" } else { "s" }
                ),
                Fate::Kept => String::new(),
            }
        ),
        None => "no earlier version is safe from deletion".into(),
    };
    let message = format!(
        "{}: of {} earlier version{}, {} may be deleted now and {} later as things stand; {oldest}",
        rules.join("; "),
        h.earlier,
        if h.earlier == 1 { "" } else { "s" },
        h.deletable_now,
        h.deletable_later,
    );
    let previous_gone = h
        .previous
        .as_ref()
        .is_some_and(|p| p.fate.deleted_by(facts.now));
    if previous_gone {
        out.hinted(
            c,
            Level::Warning,
            "lifecycle_horizon",
            message,
            "the previous version may already be gone: a rollback to `previous` can fail; raise NoncurrentDays or NewerNoncurrentVersions if rollbacks must reach further",
        );
    } else {
        out.add(c, Level::Ok, "lifecycle_horizon", message);
    }
}

/// The marked versions the rules delete. What `last:LABEL` would pick is the newest version
/// with that label, so only a threat to one of those is a warning; older marks going is what
/// a retention rule is for, and is only noted.
fn marks(facts: &Facts<'_>, fates: &[VersionFate], out: &mut Findings) {
    let c = Check::Lifecycle;
    let mut seen: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut older = vec![];
    for f in fates {
        let Some(labels) = facts.marks.get(&f.version_id) else {
            continue;
        };
        let (newest, superseded): (Vec<&String>, Vec<&String>) =
            labels.iter().partition(|l| seen.insert(l.as_str()));
        if f.fate == Fate::Kept {
            continue;
        }
        if !superseded.is_empty() {
            older.push(f.version_id.to_string());
        }
        if newest.is_empty() {
            continue;
        }
        let labels = newest
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("`, `");
        let picks = if newest.len() == 1 {
            format!("the version `last:{labels}` picks")
        } else {
            "the version those labels pick".to_string()
        };
        match &f.fate {
            Fate::Deleted { from, rule } => out.hinted(
                c,
                Level::Warning,
                "mark_deletable",
                format!(
                    "version {} is marked `{labels}` ({picks}), and {rule} may delete it {}: a rollback to it then fails, and `last-good` falls back on an older mark",
                    f.version_id,
                    when(*from, facts.now)
                ),
                "mark a newer version once it is known good (`tfrollback mark`), or make the rule keep versions longer",
            ),
            Fate::KeptForWrites { writes, rule } => out.hinted(
                c,
                Level::Warning,
                "mark_deleted_after_writes",
                format!(
                    "version {} is marked `{labels}` ({picks}), and {rule} deletes it after {writes} more state write{} (it keeps only the newest noncurrent versions)",
                    f.version_id,
                    if *writes == 1 { "" } else { "s" }
                ),
                "mark a newer version once it is known good (`tfrollback mark`), or raise the rule's NewerNoncurrentVersions",
            ),
            Fate::Kept => {}
        }
    }
    if !older.is_empty() {
        out.add(
            c,
            Level::Ok,
            "older_marks_deletable",
            format!(
                "the rules also delete {} older marked version{} ({}), each behind a newer version with the same mark",
                older.len(),
                if older.len() == 1 { "" } else { "s" },
                older.join(", ")
            ),
        );
    }
}

fn lock(facts: &Facts<'_>, out: &mut Findings) {
    let c = Check::Lock;
    let l = &facts.lock;
    if !l.lockfile && l.table.is_none() {
        out.hinted(
            c,
            Level::Problem,
            "lock_none",
            "the backend configures no state lock (neither use_lockfile nor dynamodb_table): nothing keeps terraform out during a rollback, and `to` and `restore` refuse to run without --no-lock".into(),
            "set `use_lockfile = true` in the backend block (terraform >= 1.10), then `terraform init -reconfigure`",
        );
    }
    if l.lockfile {
        out.add(
            c,
            Level::Ok,
            "lock_file",
            format!(
                "lock file s3://{}/{} (use_lockfile), taken with a conditional write",
                facts.bucket, l.lockfile_key
            ),
        );
    }
    if let Some(t) = &l.table {
        table(facts, t, out);
    }
    match &l.holder {
        Ok(None) => {}
        Ok(Some(holder)) => out.hinted(
            c,
            Level::Warning,
            "lock_held",
            format!("the state is locked now, by {holder}: a rollback started now stops (exit 5)"),
            "wait for that operation, or give `to` a --lock-timeout; `tfrollback status` shows the lock",
        ),
        Err(unseen) => out.add(
            c,
            Level::Warning,
            "lock_unknown",
            format!("who holds the lock could not be read: {}", unseen.describe()),
        ),
    }
    match &l.unfinished {
        Ok(None) => {}
        Ok(Some(what)) => out.hinted(
            c,
            Level::Problem,
            "rollback_unfinished",
            format!("a rollback of this state is unfinished ({what}): `to` and `restore` refuse to start until it is finished"),
            "run `tfrollback recover` (`tfrollback status` shows what is left)",
        ),
        Err(unseen) => out.add(
            c,
            Level::Warning,
            "unfinished_unknown",
            format!(
                "whether a rollback is unfinished could not be read: {}",
                unseen.describe()
            ),
        ),
    }
}

fn table(facts: &Facts<'_>, t: &TableFacts, out: &mut Findings) {
    let c = Check::Lock;
    let create = format!(
        "create it with hash key LockID of type string: `aws dynamodb create-table --table-name {} --attribute-definitions AttributeName=LockID,AttributeType=S --key-schema AttributeName=LockID,KeyType=HASH --billing-mode PAY_PER_REQUEST`, or check dynamodb_table and the region",
        t.name
    );
    match &t.shape {
        Ok(None) => out.hinted(
            c,
            Level::Problem,
            "lock_table_missing",
            format!(
                "DynamoDB table {} (dynamodb_table) does not exist: terraform and tfrollback fail to take the lock",
                t.name
            ),
            create,
        ),
        Ok(Some(shape)) => {
            let key_ok = shape
                .hash_key
                .as_ref()
                .is_some_and(|(name, ty)| name == "LockID" && ty == "S")
                && shape.range_key.is_none();
            if !key_ok {
                let found = match &shape.hash_key {
                    Some((name, ty)) => format!("hash key {name} ({ty})"),
                    None => "no hash key".into(),
                };
                let range = shape
                    .range_key
                    .as_ref()
                    .map(|r| format!(" and range key {r}"))
                    .unwrap_or_default();
                out.hinted(
                    c,
                    Level::Problem,
                    "lock_table_bad_key",
                    format!(
                        "DynamoDB table {} has {found}{range}; terraform's lock needs the hash key LockID, a string, and nothing else",
                        t.name
                    ),
                    create,
                );
            } else if shape.status != "ACTIVE" {
                out.add(
                    c,
                    Level::Warning,
                    "lock_table_not_active",
                    format!(
                        "DynamoDB table {} is {}, not ACTIVE: locking may fail until it is",
                        t.name, shape.status
                    ),
                );
            } else {
                out.add(
                    c,
                    Level::Ok,
                    "lock_table",
                    format!(
                        "DynamoDB table {} (hash key LockID, a string) holds the lock and the state's digest; terraform 1.11 and later call dynamodb_table deprecated in favour of use_lockfile",
                        t.name
                    ),
                );
            }
        }
        Err(unseen) => out.hinted(
            c,
            Level::Warning,
            "lock_table_unknown",
            format!(
                "DynamoDB table {} could not be described: {}",
                t.name,
                unseen.describe()
            ),
            "grant dynamodb:DescribeTable on the table to the identity running doctor (a rollback itself does not need it)",
        ),
    }
    match &t.digest {
        None | Some(Ok(Digest::Absent)) => {}
        Some(Ok(Digest::Matches)) => out.add(
            c,
            Level::Ok,
            "digest_matches",
            format!(
                "the digest item {}/{}-md5 matches the current state, as terraform checks on every read",
                facts.bucket, facts.key
            ),
        ),
        Some(Ok(Digest::Differs { stored, actual })) => out.hinted(
            c,
            Level::Problem,
            "digest_mismatch",
            format!(
                "the digest item {}/{}-md5 holds {stored}, but the current state's MD5 is {actual}: terraform refuses the state (\"state data in S3 does not have the expected content\"), so no plan or apply can run",
                facts.bucket, facts.key
            ),
            format!(
                "if the current version is the state you want, set Digest to {actual} in that item (or delete the item); after an interrupted rollback, `tfrollback recover` does it"
            ),
        ),
        Some(Err(Unseen::Denied { action })) => out.hinted(
            c,
            Level::Problem,
            "lock_read_denied",
            format!(
                "reading the digest item {}/{}-md5 is denied ({action}): terraform reads it on every state read and fails, and tfrollback cannot see who holds the lock",
                facts.bucket, facts.key
            ),
            "grant dynamodb:GetItem, PutItem and DeleteItem on the table (docs/iam.md)",
        ),
        Some(Err(unseen)) => out.add(
            c,
            Level::Warning,
            "digest_unknown",
            format!("the state's digest item could not be read: {}", unseen.describe()),
        ),
    }
}

fn access(facts: &Facts<'_>, out: &mut Findings) {
    let c = Check::Access;
    if let Some(arn) = &facts.principal {
        out.add(
            c,
            Level::Ok,
            "principal",
            format!("requests are made as {arn}"),
        );
    }
    match &facts.versions {
        Ok(v) => out.add(
            c,
            Level::Ok,
            "read_versions",
            format!(
                "ListObjectVersions of the state key works ({} entr{})",
                v.len(),
                if v.len() == 1 { "y" } else { "ies" }
            ),
        ),
        Err(unseen) => out.hinted(
            c,
            Level::Problem,
            "read_versions_denied",
            format!(
                "the versions of the state cannot be listed: {}",
                unseen.describe()
            ),
            "grant s3:ListBucketVersions and s3:ListBucket on the bucket (docs/iam.md)",
        ),
    }
    match &facts.current {
        Some(Ok(s)) => out.add(
            c,
            Level::Ok,
            "read_state",
            format!("GetObject of the current version {} works", s.version_id),
        ),
        Some(Err(Unseen::Denied { action })) => out.hinted(
            c,
            Level::Problem,
            "read_state_denied",
            format!("the current version cannot be read: access denied ({action})"),
            "grant s3:GetObject and s3:GetObjectVersion on the state key (docs/iam.md)",
        ),
        Some(Err(Unseen::Failed { .. })) | None => {}
    }
    match &facts.state_write {
        None => {}
        Some(Ok(WriteProbe::Allowed)) => out.add(
            c,
            Level::Ok,
            "write_allowed",
            format!(
                "PutObject on {} is allowed: S3 refused a write conditional on an ETag no object has, with a digest the body does not have, and it checks those only once a request is authorized; nothing was written",
                facts.key
            ),
        ),
        Some(Ok(WriteProbe::ConditionIgnored { wrote })) => out.hinted(
            c,
            Level::Problem,
            "conditional_write_ignored",
            format!(
                "the server ignored If-Match on a PutObject of {} and wrote {wrote}: compare-and-swap writes, and terraform's lock file, are not safe on it",
                facts.key
            ),
            "use a server that honours conditional writes (docs/s3-compatible.md); the version written holds the current state's exact bytes",
        ),
        Some(Err(Unseen::Denied { action })) => out.hinted(
            c,
            Level::Problem,
            "write_denied",
            format!(
                "PutObject on {} is denied ({action}): a rollback that fails could not put the snapshot back, and `restore` cannot write",
                facts.key
            ),
            "grant s3:PutObject on the state key, its .tflock and .tfrollback/* (docs/iam.md lists the policy)",
        ),
        Some(Err(Unseen::Failed { reason })) => out.add(
            c,
            Level::Warning,
            "write_unknown",
            format!(
                "whether the state may be written could not be checked: {reason}"
            ),
        ),
    }
    let Some(t) = &facts.lock.table else { return };
    match &t.write {
        None => {}
        Some(Ok(WriteProbe::Allowed)) if t.put_probed => out.add(
            c,
            Level::Ok,
            "lock_write_allowed",
            format!(
                "DeleteItem and PutItem on table {} are allowed: DynamoDB refused both on a condition that cannot hold, which it evaluates only for authorized requests; nothing was written",
                t.name
            ),
        ),
        Some(Ok(WriteProbe::Allowed)) => out.add(
            c,
            Level::Ok,
            "lock_write_allowed",
            format!(
                "DeleteItem on table {} is allowed: DynamoDB refused it on a condition that cannot hold, which it evaluates only for authorized requests; PutItem was not probed, as there is no digest item to send back unchanged",
                t.name
            ),
        ),
        Some(Ok(WriteProbe::ConditionIgnored { wrote })) => out.hinted(
            c,
            Level::Problem,
            "lock_condition_ignored",
            format!(
                "table {} ignored a condition expression that cannot hold and let through {wrote}: terraform's DynamoDB lock is not safe on it",
                t.name
            ),
            "use a DynamoDB that honours condition expressions, or use_lockfile",
        ),
        Some(Err(Unseen::Denied { action })) => out.hinted(
            c,
            Level::Problem,
            "lock_write_denied",
            format!(
                "writes to table {} are denied ({action}): neither terraform nor tfrollback can take the lock or update the digest",
                t.name
            ),
            "grant dynamodb:GetItem, PutItem and DeleteItem on the table (docs/iam.md)",
        ),
        Some(Err(Unseen::Failed { reason })) => out.add(
            c,
            Level::Warning,
            "lock_write_unknown",
            format!(
                "whether table {} may be written could not be checked: {reason}",
                t.name
            ),
        ),
    }
}

fn variables(facts: &Facts<'_>, out: &mut Findings) -> Option<Mapping> {
    let c = Check::Variables;
    let config = match facts.config {
        Ok(config) => config,
        Err(ref reason) => {
            out.hinted(
                c,
                Level::Problem,
                "config_unreadable",
                format!("the configuration cannot be read: {reason}"),
                "fix it (`terraform validate` shows where); `to` reads the same files",
            );
            return None;
        }
    };
    let Some(Ok(current)) = &facts.current else {
        return None;
    };
    let outputs = &current.outputs;
    let mapping = match mapping::map_variables(
        config,
        facts.mapping_options,
        outputs,
        outputs,
        current.version_id.as_str(),
    ) {
        Ok(m) => m,
        Err(e) => {
            out.hinted(
                c,
                Level::Problem,
                "mapping_error",
                format!("a rollback to a version like the current one would stop: {e}"),
                "see docs/mapping.md for how outputs become rollback variables",
            );
            return None;
        }
    };
    match (&mapping.slot_variable, mapping.slot()) {
        (Some(name), Some(slot)) => out.add(
            c,
            Level::Ok,
            "slot_variable",
            format!(
                "the blue/green slot variable is {name}, recorded in {}",
                slot.source.describe()
            ),
        ),
        (Some(name), None) => out.hinted(
            c,
            Level::Warning,
            "slot_not_recorded",
            format!(
                "the blue/green slot variable is {name}, but the current version records no value for it: `to --only-slot` would fail"
            ),
            format!("echo it as an output (`output \"{name}\" {{ value = var.{name} }}`), see docs/mapping.md"),
        ),
        (None, _) => out.add(
            c,
            Level::Ok,
            "no_slot_variable",
            "no blue/green slot variable: none is restricted to \"blue\" and \"green\" or named like one".into(),
        ),
    }
    let recorded: Vec<String> = mapping
        .variables
        .iter()
        .filter(|v| v.source != Source::Generated)
        .map(|v| format!("{} ({})", v.name, v.source.describe()))
        .collect();
    if recorded.is_empty() {
        out.hinted(
            c,
            Level::Problem,
            "nothing_mapped",
            format!(
                "the current version records no declared variable in its outputs: `to` refuses a rollback to a version like it (`restore` still works); {} variable{} declared",
                config.variables.len(),
                if config.variables.len() == 1 { " is" } else { "s are" }
            ),
            "echo the inputs a rollback must restore as outputs, or map them with --map / tfrollback.hcl (docs/mapping.md)",
        );
    } else {
        out.add(
            c,
            Level::Ok,
            "variables_set",
            format!("a rollback sets {}", recorded.join(", ")),
        );
    }
    let unset = mapping.unset();
    if !unset.is_empty() {
        let listed: Vec<String> = unset
            .iter()
            .map(|u| format!("{} ({})", u.name, u.reason))
            .collect();
        out.hinted(
            c,
            Level::Warning,
            "variables_not_recorded",
            format!(
                "a rollback leaves {} declared variable{} as {}: {}",
                unset.len(),
                if unset.len() == 1 { "" } else { "s" },
                if unset.len() == 1 { "it is" } else { "they are" },
                listed.join("; ")
            ),
            "if a rollback must restore one, echo it as an output (docs/mapping.md); the others keep what the configuration, var files and --var give them",
        );
    }
    for ignored in mapping::ignored_objects(config, mapping.slot_variable.as_deref(), outputs) {
        out.hinted(
            c,
            Level::Ok,
            "object_output_ignored",
            format!(
                "output {} has keys named like variables ({}) but is not a config output, since {} name{} no variable: it feeds none of them",
                ignored.output,
                ignored.variable_keys.join(", "),
                ignored.other_keys.join(", "),
                if ignored.other_keys.len() == 1 { "s" } else { "" }
            ),
            format!(
                "if it records inputs, list it in config_outputs in tfrollback.hcl, or map a key with --map {}.{}={}",
                ignored.output, ignored.variable_keys[0], ignored.variable_keys[0]
            ),
        );
    }
    Some(mapping)
}

fn terraform(facts: &Facts<'_>, out: &mut Findings) {
    let c = Check::Terraform;
    let t = &facts.terraform;
    let written_by = match &facts.current {
        Some(Ok(s)) => Some(s.terraform_version.as_str()),
        _ => None,
    };
    match &t.binary {
        Err(unseen) => out.hinted(
            c,
            Level::Problem,
            "terraform_missing",
            format!(
                "no terraform to run ({}): `to` cannot roll back, and `restore` needs --no-plan",
                unseen.describe()
            ),
            "install terraform (or OpenTofu), or point --terraform-bin / TFROLLBACK_TERRAFORM at it",
        ),
        Ok((name, version)) => match written_by {
            Some(wrote) if is_newer(wrote, version) => out.hinted(
                c,
                Level::Problem,
                "terraform_too_old",
                format!(
                    "{name} {version} is older than terraform {wrote}, which wrote the current state: tfrollback refuses to roll back to a version written by a newer terraform than the binary, and {version} would rewrite the state without what {wrote} added"
                ),
                format!("install terraform {wrote} or newer (or point --terraform-bin at it)"),
            ),
            Some(wrote) => out.add(
                c,
                Level::Ok,
                "terraform_ok",
                format!("{name} {version} can work with the state (written by terraform {wrote})"),
            ),
            None => out.add(
                c,
                Level::Ok,
                "terraform_found",
                format!("{name} {version} is the binary a rollback runs"),
            ),
        },
    }
    match &t.terraform_location {
        Some(theirs) if *theirs != facts.location => out.hinted(
            c,
            Level::Problem,
            "terraform_other_state",
            format!(
                "terraform in this directory is initialized for {theirs}, not {}: `to` and `restore` refuse to lock one state and apply to the other",
                facts.location
            ),
            "run doctor without --bucket/--key/--workspace so it follows terraform, or re-run `terraform init` for the state you mean",
        ),
        _ if !t.initialized => out.add(
            c,
            Level::Ok,
            "terraform_not_initialized",
            "the working directory is not initialized: `to` runs `terraform init` first, which downloads the providers".into(),
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{ToolConfig, VarType, Variable};
    use crate::model::lifecycle::Filter;
    use crate::model::selector::tests::version;
    use serde_json::json;

    const KEY: &str = "app/terraform.tfstate";
    const LOCATION: &str = "s3://tfr-state/app/terraform.tfstate";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn id(s: &str) -> VersionId {
        VersionId::parse(s).unwrap()
    }

    fn configuration() -> Configuration {
        let var = |name: &str, ty: VarType, allowed: Option<&[&str]>| Variable {
            name: name.into(),
            ty,
            sensitive: false,
            allowed: allowed.map(|a| a.iter().map(|s| (*s).to_string()).collect()),
        };
        let vars = [
            var("active_slot", VarType::String, Some(&["blue", "green"])),
            var("green_version", VarType::String, None),
            var("fail_on_slot", VarType::String, None),
            var("tags", VarType::Map(Box::new(VarType::String)), None),
        ];
        Configuration {
            variables: vars.into_iter().map(|v| (v.name.clone(), v)).collect(),
            tool: ToolConfig::default(),
        }
    }

    fn outputs(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, Output> {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    (*n).to_string(),
                    Output {
                        value: v.clone(),
                        sensitive: false,
                    },
                )
            })
            .collect()
    }

    /// Three versions a day apart, the newest on 03-20.
    fn listing() -> Vec<ObjectVersion> {
        ["v3", "v2", "v1"]
            .iter()
            .zip([
                "2026-03-20T09:00:00Z",
                "2026-03-19T09:00:00Z",
                "2026-03-18T09:00:00Z",
            ])
            .enumerate()
            .map(|(i, (name, t))| {
                let mut v = version(name, i == 0, false);
                v.last_modified = at(t);
                v
            })
            .collect()
    }

    struct World {
        config: Configuration,
        options: MappingOptions,
    }

    impl World {
        fn new() -> World {
            World {
                config: configuration(),
                options: MappingOptions::default(),
            }
        }

        /// A state that is ready: versioning on, no rules, a DynamoDB table, writes allowed.
        fn healthy(&self) -> Facts<'_> {
            Facts {
                location: LOCATION.into(),
                bucket: "tfr-state".into(),
                key: KEY.into(),
                now: at("2026-03-21T12:00:00Z"),
                versioning: Ok(Versioning::Enabled),
                lifecycle: Ok(vec![]),
                versions: Ok(listing()),
                marks: BTreeMap::new(),
                tags: BTreeMap::new(),
                current: Some(Ok(CurrentState {
                    version_id: id("v3"),
                    serial: 3,
                    terraform_version: "1.11.4".into(),
                    outputs: outputs(&[
                        ("active_slot", json!("green")),
                        ("green_version", json!("v2")),
                        ("vpc", json!({"id": "vpc-1", "tags": {"team": "core"}})),
                    ]),
                })),
                state_write: Some(Ok(WriteProbe::Allowed)),
                principal: Some("arn:aws:sts::123456789012:assumed-role/ci/run".into()),
                lock: LockFacts {
                    lockfile: false,
                    lockfile_key: format!("{KEY}.tflock"),
                    table: Some(TableFacts {
                        name: "tfr-locks".into(),
                        shape: Ok(Some(TableShape {
                            hash_key: Some(("LockID".into(), "S".into())),
                            range_key: None,
                            status: "ACTIVE".into(),
                        })),
                        write: Some(Ok(WriteProbe::Allowed)),
                        put_probed: true,
                        digest: Some(Ok(Digest::Matches)),
                    }),
                    holder: Ok(None),
                    unfinished: Ok(None),
                },
                config: Ok(&self.config),
                mapping_options: &self.options,
                terraform: TerraformFacts {
                    binary: Ok(("terraform".into(), "1.11.4".into())),
                    initialized: true,
                    terraform_location: Some(LOCATION.into()),
                },
            }
        }
    }

    fn kinds(r: &Readiness, level: Level) -> Vec<&'static str> {
        r.findings
            .iter()
            .filter(|f| f.level == level)
            .map(|f| f.kind)
            .collect()
    }

    fn finding<'a>(r: &'a Readiness, kind: &str) -> &'a Finding {
        r.findings
            .iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} finding in {:#?}", r.findings))
    }

    #[test]
    fn a_healthy_state_is_ready_and_says_what_it_checked() {
        let world = World::new();
        let r = assess(&world.healthy());
        assert!(r.ready(), "{:#?}", r.findings);
        assert_eq!(kinds(&r, Level::Problem), Vec::<&str>::new());
        for kind in [
            "state_found",
            "versioning_enabled",
            "lifecycle_none",
            "lock_table",
            "digest_matches",
            "principal",
            "read_versions",
            "read_state",
            "write_allowed",
            "lock_write_allowed",
            "slot_variable",
            "variables_set",
            "terraform_ok",
        ] {
            assert_eq!(finding(&r, kind).level, Level::Ok, "{kind}");
        }
        // Every finding says what it is about, in order of the checks.
        let checks: Vec<Check> = r.findings.iter().map(|f| f.check).collect();
        let mut sorted = checks.clone();
        sorted.sort();
        assert_eq!(checks, sorted);
        // The variables nothing records are listed, the unrelated object named.
        let unset = finding(&r, "variables_not_recorded");
        assert_eq!(unset.level, Level::Warning);
        assert!(
            unset.message.contains("fail_on_slot ("),
            "{}",
            unset.message
        );
        assert!(unset.message.contains("tags ("), "{}", unset.message);
        let vpc = finding(&r, "object_output_ignored");
        assert!(
            vpc.message
                .contains("output vpc has keys named like variables (tags)")
        );
        assert!(
            vpc.message.contains("since id names no variable"),
            "{}",
            vpc.message
        );
        assert_eq!(
            vpc.hint.as_deref(),
            Some(
                "if it records inputs, list it in config_outputs in tfrollback.hcl, or map a key with --map vpc.tags=tags"
            )
        );
        let set = finding(&r, "variables_set");
        assert_eq!(
            set.message,
            "a rollback sets active_slot (output active_slot), green_version (output green_version)"
        );
        assert!(finding(&r, "slot_variable").message.contains("active_slot"));
    }

    #[test]
    fn versioning_suspended_or_off_stops_a_rollback() {
        let world = World::new();
        for (state, kind) in [
            (Versioning::Suspended, "versioning_suspended"),
            (Versioning::Off, "versioning_off"),
        ] {
            let r = assess(&Facts {
                versioning: Ok(state),
                ..world.healthy()
            });
            assert!(!r.ready());
            let f = finding(&r, kind);
            assert_eq!(f.level, Level::Problem);
            assert!(f.hint.as_ref().unwrap().contains("Status=Enabled"));
        }
        let r = assess(&Facts {
            versioning: Err(Unseen::Denied {
                action: "s3:GetBucketVersioning".into(),
            }),
            ..world.healthy()
        });
        assert_eq!(finding(&r, "versioning_unknown").level, Level::Problem);
    }

    #[test]
    fn lifecycle_rules_give_the_horizon_and_name_the_marks_they_delete() {
        let world = World::new();
        let rule = Rule {
            id: Some("trim".into()),
            enabled: true,
            noncurrent_days: Some(1),
            newer_noncurrent: Some(1),
            ..Rule::default()
        };
        let r = assess(&Facts {
            lifecycle: Ok(vec![rule]),
            marks: BTreeMap::from([
                (id("v2"), vec!["good".to_string()]),
                (id("v1"), vec!["good".to_string(), "baseline".to_string()]),
            ]),
            ..world.healthy()
        });
        assert!(r.ready(), "warnings only: {:#?}", r.findings);
        let h = finding(&r, "lifecycle_horizon");
        assert_eq!(h.level, Level::Ok);
        assert_eq!(
            h.message,
            "rule \"trim\" deletes noncurrent versions 1 day after they are replaced, keeping the newest one: \
             of 2 earlier versions, 1 may be deleted now and 0 later as things stand; \
             the oldest you can roll back to is v2 (written 2026-03-19 09:00 UTC, deleted after 1 more write)"
        );
        // v1 was replaced on 03-19 09:00: due 03-21 00:00, before `now`. Its `good` mark is
        // behind v2's; its `baseline` mark is the only one.
        let gone = finding(&r, "mark_deletable");
        assert_eq!(gone.level, Level::Warning);
        assert!(
            gone.message.starts_with(
                "version v1 is marked `baseline` (the version `last:baseline` picks), and rule \"trim\" may delete it now (due since 2026-03-21)"
            ),
            "{}",
            gone.message
        );
        let kept = finding(&r, "mark_deleted_after_writes");
        assert!(
            kept.message.starts_with(
                "version v2 is marked `good` (the version `last:good` picks), and rule \"trim\" deletes it after 1 more state write"
            ),
            "{}",
            kept.message
        );
        let older = finding(&r, "older_marks_deletable");
        assert_eq!(older.level, Level::Ok);
        assert!(
            older.message.contains("1 older marked version (v1)"),
            "{}",
            older.message
        );
        let h = r.horizon.unwrap();
        assert_eq!(h.deletable_now, 1);
    }

    #[test]
    fn a_previous_version_already_deletable_is_a_warning() {
        let world = World::new();
        let rule = Rule {
            id: Some("1d".into()),
            enabled: true,
            noncurrent_days: Some(1),
            ..Rule::default()
        };
        let r = assess(&Facts {
            lifecycle: Ok(vec![rule]),
            now: at("2026-03-30T00:00:00Z"),
            ..world.healthy()
        });
        let h = finding(&r, "lifecycle_horizon");
        assert_eq!(h.level, Level::Warning);
        assert!(
            h.message
                .ends_with("no earlier version is safe from deletion"),
            "{}",
            h.message
        );
    }

    #[test]
    fn an_expiration_of_the_state_itself_is_a_problem_and_other_rules_are_not() {
        let world = World::new();
        let expire = Rule {
            id: Some("expire-all".into()),
            enabled: true,
            expiration_days: Some(30),
            ..Rule::default()
        };
        let r = assess(&Facts {
            lifecycle: Ok(vec![expire.clone()]),
            ..world.healthy()
        });
        let f = finding(&r, "state_expires");
        assert_eq!(f.level, Level::Problem);
        assert!(f.message.contains("from 2026-04-20"), "{}", f.message);
        assert!(!r.ready());

        // Elsewhere in the bucket, disabled, or about other objects: nothing to fear.
        let logs = Rule {
            filter: Filter {
                prefix: "logs/".into(),
                ..Filter::default()
            },
            ..expire.clone()
        };
        let disabled = Rule {
            enabled: false,
            ..expire
        };
        let r = assess(&Facts {
            lifecycle: Ok(vec![logs, disabled]),
            ..world.healthy()
        });
        assert!(r.ready(), "{:#?}", r.findings);
        assert_eq!(finding(&r, "lifecycle_keeps_versions").level, Level::Ok);
        // The disabled rule would reach the state: it is named, as a note.
        let off = finding(&r, "lifecycle_rule_disabled");
        assert_eq!(off.level, Level::Ok);
        assert!(
            off.message
                .starts_with("rule \"expire-all\" would reach the state but is disabled")
        );
        let unreadable = assess(&Facts {
            lifecycle: Err(Unseen::Denied {
                action: "s3:GetLifecycleConfiguration".into(),
            }),
            ..world.healthy()
        });
        assert_eq!(
            finding(&unreadable, "lifecycle_unknown").level,
            Level::Warning
        );
        assert!(unreadable.ready());
    }

    #[test]
    fn lock_findings() {
        let world = World::new();
        let with_table = |shape: Seen<Option<TableShape>>, digest| {
            let mut f = world.healthy();
            let t = f.lock.table.as_mut().unwrap();
            t.shape = shape;
            t.digest = digest;
            f
        };
        let missing = assess(&with_table(Ok(None), None));
        assert_eq!(
            finding(&missing, "lock_table_missing").level,
            Level::Problem
        );
        assert!(
            finding(&missing, "lock_table_missing")
                .hint
                .as_ref()
                .unwrap()
                .contains("AttributeName=LockID,AttributeType=S")
        );
        let wrong = assess(&with_table(
            Ok(Some(TableShape {
                hash_key: Some(("id".into(), "S".into())),
                range_key: Some("sort".into()),
                status: "ACTIVE".into(),
            })),
            None,
        ));
        assert!(
            finding(&wrong, "lock_table_bad_key")
                .message
                .contains("has hash key id (S) and range key sort")
        );
        let mismatch = assess(&with_table(
            Ok(Some(TableShape {
                hash_key: Some(("LockID".into(), "S".into())),
                range_key: None,
                status: "ACTIVE".into(),
            })),
            Some(Ok(Digest::Differs {
                stored: "aaaa".into(),
                actual: "bbbb".into(),
            })),
        ));
        assert_eq!(finding(&mismatch, "digest_mismatch").level, Level::Problem);
        let unreadable = assess(&with_table(
            Ok(Some(TableShape {
                hash_key: Some(("LockID".into(), "S".into())),
                range_key: None,
                status: "ACTIVE".into(),
            })),
            Some(Err(Unseen::Denied {
                action: "dynamodb:GetItem".into(),
            })),
        ));
        assert_eq!(
            finding(&unreadable, "lock_read_denied").level,
            Level::Problem
        );

        let mut none = world.healthy();
        none.lock.table = None;
        none.lock.lockfile = false;
        let r = assess(&none);
        assert_eq!(finding(&r, "lock_none").level, Level::Problem);
        let mut file = world.healthy();
        file.lock.table = None;
        file.lock.lockfile = true;
        let r = assess(&file);
        assert!(r.ready());
        assert!(
            finding(&r, "lock_file")
                .message
                .contains("s3://tfr-state/app/terraform.tfstate.tflock")
        );

        let mut busy = world.healthy();
        busy.lock.holder = Ok(Some("alice@laptop since 2026-03-21T11:00:00Z".into()));
        busy.lock.unfinished = Ok(Some("`tfrollback to previous`".into()));
        let r = assess(&busy);
        assert_eq!(finding(&r, "lock_held").level, Level::Warning);
        assert_eq!(finding(&r, "rollback_unfinished").level, Level::Problem);
    }

    #[test]
    fn access_findings() {
        let world = World::new();
        let denied = |action: &str| {
            Err(Unseen::Denied {
                action: action.into(),
            })
        };
        let mut f = world.healthy();
        f.state_write = Some(denied("s3:PutObject"));
        f.lock.table.as_mut().unwrap().write = Some(denied("dynamodb:PutItem"));
        let r = assess(&f);
        assert_eq!(finding(&r, "write_denied").level, Level::Problem);
        assert_eq!(finding(&r, "lock_write_denied").level, Level::Problem);
        let mut f = world.healthy();
        f.state_write = Some(Ok(WriteProbe::ConditionIgnored {
            wrote: "version v4".into(),
        }));
        let r = assess(&f);
        assert!(
            finding(&r, "conditional_write_ignored")
                .message
                .contains("wrote version v4")
        );
        let mut f = world.healthy();
        f.versions = Err(Unseen::Denied {
            action: "s3:ListBucketVersions".into(),
        });
        f.current = None;
        let r = assess(&f);
        assert_eq!(finding(&r, "read_versions_denied").level, Level::Problem);
        let empty = assess(&Facts {
            versions: Ok(vec![]),
            current: None,
            state_write: None,
            ..world.healthy()
        });
        assert_eq!(finding(&empty, "state_missing").level, Level::Problem);
    }

    #[test]
    fn variable_findings() {
        let world = World::new();
        let mut f = world.healthy();
        if let Some(Ok(current)) = &mut f.current {
            current.outputs = outputs(&[("url", json!("https://x"))]);
        }
        let r = assess(&f);
        assert_eq!(finding(&r, "nothing_mapped").level, Level::Problem);
        assert_eq!(finding(&r, "slot_not_recorded").level, Level::Warning);
        let bad = MappingOptions {
            maps: vec!["nonsense".into()],
            ..MappingOptions::default()
        };
        let r = assess(&Facts {
            mapping_options: &bad,
            ..world.healthy()
        });
        assert_eq!(finding(&r, "mapping_error").level, Level::Problem);
        let r = assess(&Facts {
            config: Err("main.tf cannot be parsed as HCL".into()),
            ..world.healthy()
        });
        assert_eq!(finding(&r, "config_unreadable").level, Level::Problem);
    }

    #[test]
    fn terraform_findings() {
        let world = World::new();
        let mut f = world.healthy();
        f.terraform.binary = Ok(("terraform".into(), "1.9.8".into()));
        let r = assess(&f);
        let old = finding(&r, "terraform_too_old");
        assert_eq!(old.level, Level::Problem);
        assert!(
            old.message
                .contains("terraform 1.9.8 is older than terraform 1.11.4")
        );
        let mut f = world.healthy();
        f.terraform.binary = Err(Unseen::Failed {
            reason: "no `terraform` binary on PATH".into(),
        });
        assert_eq!(
            finding(&assess(&f), "terraform_missing").level,
            Level::Problem
        );
        let mut f = world.healthy();
        f.terraform.terraform_location = Some("s3://other/app/terraform.tfstate".into());
        assert_eq!(
            finding(&assess(&f), "terraform_other_state").level,
            Level::Problem
        );
        let mut f = world.healthy();
        f.terraform.initialized = false;
        f.terraform.terraform_location = None;
        let r = assess(&f);
        assert!(r.ready());
        assert_eq!(finding(&r, "terraform_not_initialized").level, Level::Ok);
    }
}
