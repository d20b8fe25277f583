//! tfrollback: roll Terraform infrastructure back to an earlier state version kept in a
//! versioned S3 bucket. `main` parses the command line, resolves settings once, runs one
//! command, and maps the outcome to a documented exit code.

use std::process::ExitCode;

use clap::Parser;

mod backend;
mod cache;
mod cli;
mod commands;
mod config;
mod diff;
mod error;
mod fsx;
mod hclx;
mod history;
mod journal;
mod lock;
mod mapping;
mod marks;
mod operation;
mod output;
mod render;
pub(crate) mod report;
mod s3;
mod selector;
mod settings;
mod state;
mod summaries;
mod terraform;

use cli::{Cli, Command};
use error::{Error, Exit};
use history::{Audit, HistoryStore};
use output::Printer;
use settings::{Env, Settings};

/// What a sensitive value is shown as, everywhere.
pub(crate) const SENSITIVE: &str = "(sensitive)";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let printer = Printer::new(&cli.global);
    let json = cli.global.json;
    let cli_quiet = cli.global.quiet;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Error.into();
        }
    };
    match runtime.block_on(run(cli, printer)) {
        Ok(exit) => exit.into(),
        Err(Error::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok.into(),
        Err(Error::NothingToDo { reason }) => {
            if json {
                let doc = serde_json::json!({"status": "already_at_target", "message": reason});
                println!("{doc:#}");
            } else if !cli_quiet {
                eprintln!("{reason}");
            }
            Exit::Ok.into()
        }
        Err(e) => {
            eprintln!("{}", e.render());
            if json {
                let doc = serde_json::json!({"error": {
                    "message": e.to_string(),
                    "hint": e.hint(),
                    "exit_code": e.exit() as u8,
                }});
                println!("{doc:#}");
            }
            e.exit().into()
        }
    }
}

async fn run(cli: Cli, printer: Printer) -> Result<Exit, Error> {
    // These need no state: they only describe the command line.
    match &cli.command {
        Command::Completions(args) => return print_completions(args.shell),
        Command::Man => return print_man(),
        _ => {}
    }
    let settings = Settings::resolve(&cli.global, &Env::from_process())?;
    tracing::debug!(?settings, "resolved settings");
    let ctx = commands::Context::new(settings, printer).await?;
    let mut audit = match &cli.command {
        Command::To(args) => Some(Audit::new(format!("to {}", args.version))),
        Command::Restore(args) => Some(Audit::new(format!("restore {}", args.version))),
        Command::Recover(_) => Some(Audit::new("recover".into())),
        _ => None,
    };
    let result = match &cli.command {
        Command::List(args) => commands::list::run(&ctx, args).await,
        Command::Show(args) => commands::show::run(&ctx, args).await,
        Command::Diff(args) => commands::diff::run(&ctx, args).await,
        Command::History(args) => commands::history::run(&ctx, args).await,
        Command::Mark(args) => commands::mark::mark(&ctx, args).await,
        Command::Unmark(args) => commands::mark::unmark(&ctx, args).await,
        Command::Status => commands::status::run(&ctx).await,
        Command::To(args) => commands::to::run(&ctx, args, audit.as_mut().expect("audit")).await,
        Command::Restore(args) => {
            commands::restore::run(&ctx, args, audit.as_mut().expect("audit")).await
        }
        Command::Recover(args) => {
            commands::recover::run(&ctx, args, audit.as_mut().expect("audit")).await
        }
        Command::Completions(_) | Command::Man => unreachable!("handled before settings"),
    };
    if let Err(e) = &result {
        let report = match &cli.command {
            Command::To(args) => Some((format!("to {}", args.version), &args.run)),
            Command::Restore(args) => Some((format!("restore {}", args.version), &args.run)),
            _ => None,
        };
        if let Some((command, run)) = report {
            // CI reads the report whatever happened: a refusal says why.
            let published =
                report::publish_failure(&command, &ctx.location(), e, run.report.as_deref());
            if let Err(io) = published {
                ctx.printer
                    .note(&format!("warning: could not write the report: {io}"));
            }
        }
    }
    if let Some(audit) = audit {
        record(&ctx, audit, &result).await;
    }
    result
}

fn print_completions(shell: clap_complete::Shell) -> Result<Exit, Error> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tfrollback", &mut out);
    std::io::Write::write_all(&mut std::io::stdout(), &out).map_err(Error::Stdout)?;
    Ok(Exit::Ok)
}

fn print_man() -> Result<Exit, Error> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(Error::Stdout)?;
    std::io::Write::write_all(&mut std::io::stdout(), &out).map_err(Error::Stdout)?;
    Ok(Exit::Ok)
}

/// Writes the history record of a state-changing command, whatever its outcome. A record that
/// cannot be written is a warning: it must never turn a rollback into a failure.
async fn record(ctx: &commands::Context, audit: Audit, result: &Result<Exit, Error>) {
    let mut audit = audit;
    let (code, error) = match result {
        Ok(exit) => (*exit as u8, None),
        Err(Error::NothingToDo { .. }) => {
            audit.result = Some("already_at_target".into());
            (0, None)
        }
        Err(e) => (e.exit() as u8, Some(e.render())),
    };
    let who = history::who(&ctx.aws, &ctx.settings.backend).await;
    let record = audit.finish(who, code, error);
    if let Err(e) = HistoryStore::new(ctx.store.clone()).record(&record).await {
        ctx.printer
            .note(&format!("warning: could not write the history record: {e}"));
    }
}

/// Logs go to stderr. The AWS SDK's own logs stay at info at most, whatever the verbosity,
/// so that request headers (signatures) never reach a log.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = format!(
        "{level},aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,aws_sdk_s3=info,aws_config=info,aws_sdk_dynamodb=info,aws_sdk_sts=info,hyper=warn,hyper_util=warn,h2=warn,rustls=warn"
    );
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .try_init();
}
