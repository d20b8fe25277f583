//! The command line as clap sees it. No I/O here: `settings` turns these raw flags, the
//! environment and the backend configuration into one validated value before any command runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::selector::Selector;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  error; nothing was changed
  2  usage error (bad flag, argument or version selector)

Version selectors: an S3 version id, `current`, `previous` (the version before the current
one), or `~N` (N versions back).";

#[derive(Debug, Parser)]
#[command(
    name = "tfrollback",
    version,
    about = "Roll Terraform infrastructure back to an earlier state version kept in a versioned S3 bucket",
    after_help = EXIT_CODES,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Terraform working directory (where `terraform init` ran)
    #[arg(short = 'C', long, global = true, value_name = "DIR", default_value = ".")]
    pub chdir: PathBuf,

    /// S3 bucket holding the state (default: from the backend configuration)
    #[arg(long, global = true, value_name = "NAME")]
    pub bucket: Option<String>,

    /// State object key, before any workspace prefix (default: from the backend configuration)
    #[arg(long, global = true, value_name = "KEY")]
    pub key: Option<String>,

    /// AWS region of the bucket (default: backend configuration, then the AWS environment)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// Terraform workspace (default: TF_WORKSPACE, then .terraform/environment, then `default`)
    #[arg(long, global = true, value_name = "NAME")]
    pub workspace: Option<String>,

    /// S3 endpoint URL, for S3-compatible stores and local servers
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Address the bucket in the path (`host/bucket`) instead of the host name
    #[arg(long, global = true)]
    pub path_style: bool,

    /// Print exactly one JSON document on stdout; logs and progress go to stderr
    #[arg(long, global = true)]
    pub json: bool,

    /// Never use colors (NO_COLOR is honored too)
    #[arg(long, global = true)]
    pub no_color: bool,

    /// More logs on stderr (-v, -vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Versions asked for per ListObjectVersions page (S3 caps it at 1000)
    #[arg(long, global = true, hide = true, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: i32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the versions of the state object, newest first
    List(ListArgs),
    /// Show one state version: metadata and outputs (sensitive values hidden)
    Show(ShowArgs),
    /// Show what rolling back to VERSION would change: outputs, resources and variables
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show at most N versions (the newest)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Read every version from S3 again instead of using the summary cache
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The version to show
    #[arg(value_name = "VERSION")]
    pub version: Selector,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The version a rollback would go back to
    #[arg(value_name = "VERSION")]
    pub version: Selector,

    /// Compare from this version instead of the current one
    #[arg(long, value_name = "VERSION")]
    pub against: Option<Selector>,

    #[command(flatten)]
    pub mapping: MappingArgs,
}

/// How recorded outputs become input variables for a rollback.
#[derive(Debug, Args, Clone, Default)]
pub struct MappingArgs {
    /// Map an output (or a key inside an object output) to a variable; repeatable
    #[arg(long = "map", value_name = "OUTPUT.PATH=VARIABLE")]
    pub maps: Vec<String>,

    /// The variable that selects the live blue/green slot (default: detected)
    #[arg(long, value_name = "NAME")]
    pub slot_var: Option<String>,

    /// Let sensitive outputs become rollback values
    #[arg(long)]
    pub include_sensitive: bool,
}
