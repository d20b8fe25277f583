//! tfrollback: roll Terraform infrastructure back to an earlier state version kept in a
//! versioned S3 bucket. `main` parses the command line, resolves settings once, runs one
//! command, and maps the outcome to a documented exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod error;
mod model;
mod operation;
mod printer;
mod probe;
mod render;
mod settings;
mod store;
mod terraform;
mod workdir;

use cli::{Cli, Command};
use commands::{Context, Outcome};
use error::{Error, Exit};
use printer::{OutputFlags, Printer};
use settings::{Env, Settings};

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let env = Env::from_process();
    let flags = OutputFlags {
        json: cli.global.json,
        quiet: cli.global.quiet,
        no_color: cli.global.no_color,
    };
    let printer = Printer::new(flags, env.terminal());
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
    match runtime.block_on(run(cli, &env, printer.clone())) {
        Ok(Outcome::Done(exit)) => exit.into(),
        Ok(Outcome::NothingToDo { reason }) => {
            if printer.json {
                let doc = serde_json::json!({"status": "already_at_target", "message": reason});
                println!("{doc:#}");
            } else {
                printer.note(&reason);
            }
            Exit::Ok.into()
        }
        Err(Error::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok.into(),
        Err(e) => {
            eprintln!("{}", e.render());
            if printer.json {
                let doc = serde_json::json!({"error": {
                    "kind": e.kind(),
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

async fn run(cli: Cli, env: &Env, printer: Printer) -> Result<Outcome, Error> {
    // These need no state: they only describe the command line.
    match &cli.command {
        Command::Completions(args) => return print_completions(args.shell).map(Outcome::Done),
        Command::Man => return print_man().map(Outcome::Done),
        _ => {}
    }
    let settings = Settings::resolve(&cli.global, env)?;
    tracing::debug!(?settings, "resolved settings");
    let ctx = Context::new(settings, printer, env.terminal()).await?;
    commands::run(&ctx, &cli.command).await
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

/// Logs go to stderr. Every `aws_*` crate is capped at warnings (the service clients at info)
/// whatever the verbosity: `aws_sigv4` and the runtime log request headers at debug and trace,
/// signatures and SSE-C keys among them. A directive's target matches as a prefix.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = format!(
        "{level},aws=warn,aws_sdk_s3=info,aws_sdk_dynamodb=info,aws_sdk_sts=info,aws_config=info,hyper=warn,hyper_util=warn,h2=warn,rustls=warn"
    );
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .try_init();
}
