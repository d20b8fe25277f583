//! The command line as clap sees it. No I/O here: `settings` turns these raw flags, the
//! environment and the backend configuration into one validated value before any command runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::check::CheckSpec;
use crate::model::selector::{Moment, Selector};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error; nothing was changed
  2  usage error (bad flag, argument or version selector)
  3  the rollback failed and the state was restored to the snapshot taken before it
  4  stopped with the lock held: the restore failed too, or the journal could not be
     closed (run `tfrollback recover`)
  5  the state is locked by someone else, or another rollback of it is unfinished
  6  guard: a check failed, tfrollback rolled back, and the rollback is healthy
  7  rolled back, but verification or the health checks failed afterwards (the state
     terraform wrote is kept)
  8  doctor: a finding would stop a rollback (the state is not ready for one)
  9  status --check-frozen: a deploy of this state is frozen (guard rolled it back)
130  guard: interrupted while watching; nothing was changed

Version selectors: an S3 version id, `current`, `previous` (the version before the current
one), `~N` (N versions back), `last-good` or `last:LABEL` (the newest version with that mark),
`@TIME` (the version current then: `@2026-11-20T14:30:00Z`, `@14:30` today in UTC, `@-2h`).";

#[derive(Debug, Parser)]
#[command(
    name = "tfrollback",
    version,
    about = "Roll Terraform infrastructure back to an earlier state version kept in a versioned S3 bucket",
    after_help = EXIT_CODES,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Terraform working directory (where `terraform init` ran)
    #[arg(
        short = 'C',
        long,
        global = true,
        value_name = "DIR",
        default_value = "."
    )]
    pub(crate) chdir: PathBuf,

    /// S3 bucket holding the state (default: from the backend configuration)
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) bucket: Option<String>,

    /// State object key, before any workspace prefix (default: from the backend configuration)
    #[arg(long, global = true, value_name = "KEY")]
    pub(crate) key: Option<String>,

    /// AWS region of the bucket (default: backend configuration, then the AWS environment)
    #[arg(long, global = true, value_name = "REGION")]
    pub(crate) region: Option<String>,

    /// Terraform workspace (default: TF_WORKSPACE, then .terraform/environment, then `default`)
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) workspace: Option<String>,

    /// S3 endpoint URL, for S3-compatible stores and local servers
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,

    /// Address the bucket in the path (`host/bucket`) instead of the host name
    #[arg(long, global = true)]
    pub(crate) path_style: bool,

    /// Print exactly one JSON document on stdout; logs and progress go to stderr
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Never use colors (NO_COLOR is honored too)
    #[arg(long, global = true)]
    pub(crate) no_color: bool,

    /// More logs on stderr (-v, -vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Print only errors
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    /// Versions asked for per ListObjectVersions page (S3 caps it at 1000)
    #[arg(long, global = true, hide = true, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub(crate) page_size: i32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the versions of the state object, newest first
    List(ListArgs),
    /// Show one state version: metadata and outputs (sensitive values hidden)
    Show(ShowArgs),
    /// Show what rolling back to VERSION would change: outputs, resources and variables
    Diff(DiffArgs),
    /// Roll the infrastructure back to VERSION through terraform plan and apply, under a held lock
    To(ToArgs),
    /// Write VERSION's state back as the current one, without an apply (state-only rollback)
    Restore(RestoreArgs),
    /// List the audit history of rollbacks, or show one operation with its report
    History(HistoryArgs),
    /// Mark VERSION as known-good (an S3 object version tag), for `last-good`
    Mark(MarkArgs),
    /// Remove a known-good mark from VERSION
    Unmark(UnmarkArgs),
    /// Show the state lock holder, any unfinished rollback, and frozen deploys
    Status(StatusArgs),
    /// Finish an interrupted rollback safely (restores the snapshot when the apply may have started)
    Recover(RecoverArgs),
    /// Watch a deploy's health checks for a window and roll back by itself when they fail
    #[command(after_long_help = GUARD_EXIT_CODES)]
    Guard(GuardArgs),
    /// Lift a freeze: let `guard` watch a deploy it rolled back from (and pipelines apply it)
    Unfreeze(UnfreezeArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(CompletionsArgs),
    /// Print the man page (roff), generated from this command line's definition
    Man,
    /// Check that the state is ready for a rollback, changing nothing (exit 8 when it is not)
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The terraform binary a rollback would run (terraform or tofu)
    #[arg(long, value_name = "PATH", env = "TFROLLBACK_TERRAFORM")]
    pub(crate) terraform_bin: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) mapping: MappingArgs,
}

const GUARD_EXIT_CODES: &str = "Exit codes: 0 healthy through the window (marked with --label); \
6 a check failed, tfrollback rolled back and the rollback is healthy; 7 rolled back but the checks \
still fail afterwards; 3, 4 and 5 as for `to`; 2 a check cannot be evaluated (nothing changed); \
1 refused (a frozen deploy, no target); 130 interrupted while watching (nothing changed).";

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Exit 9 when a deploy of this state is frozen (guard rolled it back): a pipeline step
    /// before `terraform apply` that refuses to re-apply it
    #[arg(long)]
    pub(crate) check_frozen: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UnfreezeArgs {
    /// The frozen version to lift (default: every freeze of this state)
    #[arg(value_name = "VERSION")]
    pub(crate) version: Option<Selector>,
}

/// How health checks run, for `guard` and `to --check`.
#[derive(Debug, Args, Clone)]
pub(crate) struct CheckArgs {
    /// A health check (repeatable): cmd:COMMAND (healthy when it exits 0), http:URL (healthy
    /// on a 2xx answer; {{ output.NAME }} takes an output of the current version) or
    /// alarm:NAME (a CloudWatch alarm: ALARM fails, OK passes)
    #[arg(long = "check", value_name = "SPEC")]
    pub(crate) checks: Vec<CheckSpec>,

    /// How long one run of one check may take
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub(crate) check_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct GuardArgs {
    #[command(flatten)]
    pub(crate) check: CheckArgs,

    /// How long to watch the deploy (and then the rollback, if there is one)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub(crate) window: std::time::Duration,

    /// How often every check runs
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub(crate) interval: std::time::Duration,

    /// Roll back when one check fails this many times in a row
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) failures: u32,

    /// The version to roll back to
    #[arg(long = "to", value_name = "VERSION", default_value = "last-good")]
    pub(crate) target: Selector,

    /// Mark the deploy with this label when it stays healthy through the window
    #[arg(long, value_name = "LABEL", default_value = "good", value_parser = parse_label)]
    pub(crate) label: String,

    /// The note of that mark (which commit, which pipeline run)
    #[arg(long, value_name = "TEXT")]
    pub(crate) note: Option<String>,

    /// POST one JSON event per step to this URL (Slack-style webhooks read its `text`)
    #[arg(long, value_name = "URL")]
    pub(crate) notify: Option<String>,

    #[command(flatten)]
    pub(crate) values: RollbackValues,

    #[command(flatten)]
    pub(crate) mapping: MappingArgs,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_name = "SHELL")]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Show at most N versions (the newest)
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,

    /// Read every version from S3 again instead of using the summary cache
    #[arg(long)]
    pub(crate) no_cache: bool,

    /// Count each version's resources: reads whole bodies (streamed) where the cache has no
    /// count, instead of only their head and tail
    #[arg(long)]
    pub(crate) count_resources: bool,

    /// Mark the version that was current at TIME: `2026-11-20T14:30:00Z` (or with an offset),
    /// `14:30` (today, UTC) or `-2h` (ago), as the `@TIME` selector
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub(crate) at: Option<Moment>,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The version to show
    #[arg(value_name = "VERSION")]
    pub(crate) version: Selector,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The version a rollback would go back to
    #[arg(value_name = "VERSION")]
    pub(crate) version: Selector,

    /// Compare from this version instead of the current one
    #[arg(long, value_name = "VERSION")]
    pub(crate) against: Option<Selector>,

    #[command(flatten)]
    pub(crate) mapping: MappingArgs,
}

/// What a rollback through terraform sets and allows (`to`, and `guard` when it rolls back).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct RollbackValues {
    /// Set only the blue/green slot variable: a traffic flip back to the slot that still runs the old release
    #[arg(long)]
    pub(crate) only_slot: bool,

    /// A var file terraform reads before the rollback values (repeatable)
    #[arg(long = "var-file", value_name = "FILE")]
    pub(crate) var_files: Vec<PathBuf>,

    /// A variable terraform reads before the rollback values, as KEY=VALUE (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub(crate) vars: Vec<String>,

    /// Where to write the rollback variables [default: DIR/tfrollback.tfvars.json]
    #[arg(long, value_name = "PATH")]
    pub(crate) var_file_out: Option<PathBuf>,

    /// With --auto-approve, allow a rollback plan that destroys (or replaces) up to N resources
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_destroy: u64,
}

/// How recorded outputs become input variables for a rollback.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct MappingArgs {
    /// Map an output (or a key inside an object output) to a variable; repeatable
    #[arg(long = "map", value_name = "OUTPUT.PATH=VARIABLE")]
    pub(crate) maps: Vec<String>,

    /// The variable that selects the live blue/green slot (default: detected)
    #[arg(long, value_name = "NAME")]
    pub(crate) slot_var: Option<String>,

    /// Let sensitive outputs become rollback values
    #[arg(long)]
    pub(crate) include_sensitive: bool,
}

/// What every state-changing command shares.
#[derive(Debug, Args, Clone)]
pub(crate) struct RunArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub(crate) auto_approve: bool,

    /// Keep trying to take the state lock for this long (e.g. 30s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub(crate) lock_timeout: std::time::Duration,

    /// Write a Markdown report here (also appended to $GITHUB_STEP_SUMMARY when set)
    #[arg(long, value_name = "PATH")]
    pub(crate) report: Option<PathBuf>,

    /// The terraform binary (terraform or tofu)
    #[arg(long, value_name = "PATH", env = "TFROLLBACK_TERRAFORM")]
    pub(crate) terraform_bin: Option<PathBuf>,

    /// Go ahead although the backend configures no state lock (nothing keeps others out). A
    /// lock that is configured is always taken.
    #[arg(long)]
    pub(crate) no_lock: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ToArgs {
    /// The version to roll back to
    #[arg(value_name = "VERSION")]
    pub(crate) version: Selector,

    /// Plan only: show what the rollback would do, change nothing
    #[arg(long)]
    pub(crate) dry_run: bool,

    #[command(flatten)]
    pub(crate) values: RollbackValues,

    /// Allow a target whose lineage differs from the current state's
    #[arg(long)]
    pub(crate) allow_lineage_change: bool,

    #[command(flatten)]
    pub(crate) mapping: MappingArgs,

    /// Health checks run once after the verify step (exit 7 when they fail)
    #[command(flatten)]
    pub(crate) check: CheckArgs,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The version whose state to restore
    #[arg(value_name = "VERSION")]
    pub(crate) version: Selector,

    /// Show the state diff and write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Do not run `terraform plan` after the restore
    #[arg(long)]
    pub(crate) no_plan: bool,

    /// Allow a target whose lineage differs from the current state's
    #[arg(long)]
    pub(crate) allow_lineage_change: bool,

    /// A var file for the follow-up plan (repeatable)
    #[arg(long = "var-file", value_name = "FILE")]
    pub(crate) var_files: Vec<PathBuf>,

    /// A variable for the follow-up plan, as KEY=VALUE (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub(crate) vars: Vec<String>,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Show this operation (an id, or a unique prefix of one) with its report
    #[arg(value_name = "OPERATION-ID")]
    pub(crate) operation: Option<String>,

    /// Show at most N records (the newest)
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct MarkArgs {
    /// The version to mark
    #[arg(value_name = "VERSION")]
    pub(crate) version: Selector,

    /// The mark's label (`last:LABEL` selects it; `last-good` is `last:good`)
    #[arg(long, value_name = "NAME", default_value = "good", value_parser = parse_label)]
    pub(crate) label: String,

    /// A note kept with the mark (for example the smoke test that passed)
    #[arg(long, value_name = "TEXT")]
    pub(crate) note: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct UnmarkArgs {
    /// The version to unmark
    #[arg(value_name = "VERSION")]
    pub(crate) version: Selector,

    /// The label to remove
    #[arg(long, value_name = "NAME", default_value = "good", value_parser = parse_label)]
    pub(crate) label: String,
}

fn parse_label(s: &str) -> Result<String, String> {
    if crate::model::selector::valid_label(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a label: use 1 to 64 letters, digits, `.`, `_` or `-`"
        ))
    }
}

#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// Keep trying to take the state lock for this long (e.g. 30s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub(crate) lock_timeout: std::time::Duration,

    /// Write the snapshot back even though the interrupted operation's lock was gone and the
    /// state was written since (undoing whatever was written)
    #[arg(long, conflicts_with = "keep_current")]
    pub(crate) force_restore: bool,

    /// Close the interrupted operation and leave the state as it is now, when it was written
    /// since the operation's lock was gone
    #[arg(long)]
    pub(crate) keep_current: bool,
}

/// `30s`, `5m`, `1h30m`, `90` (seconds).
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 30s, 5m or 1h30m"))?;
    std::time::Duration::try_from(d).map_err(|_| format!("`{s}` must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("5m").unwrap().as_secs(), 300);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
