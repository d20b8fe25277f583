//! Where output goes. `Printer` owns the decisions: JSON or human text on stdout, notes and
//! errors on stderr, colors only on a terminal, progress bars only on an interactive stderr.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::GlobalArgs;

/// Running under CI or terraform automation (`CI`, `TF_IN_AUTOMATION`): never prompt, never
/// draw progress bars, even when a terminal is attached.
pub fn automated() -> bool {
    ["CI", "TF_IN_AUTOMATION"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"))
}

#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
    pub quiet: bool,
    progress: bool,
}

impl Printer {
    pub fn new(args: &GlobalArgs) -> Printer {
        let env_says_plain = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let automated = automated();
        let color = !args.no_color && !env_says_plain && std::io::stdout().is_terminal();
        let color_stderr = !args.no_color && !env_says_plain && std::io::stderr().is_terminal();
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color_stderr);
        Printer {
            json: args.json,
            quiet: args.quiet,
            progress: !args.json
                && !args.quiet
                && !env_says_plain
                && !automated
                && std::io::stderr().is_terminal(),
        }
    }

    /// The one JSON document of a `--json` run.
    pub fn json<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)
    }

    /// Human output on stdout (none with --quiet, which prints only errors).
    pub fn out(&self, text: &str) -> std::io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// A note for people on stderr (hidden by --quiet).
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// A bar of `len` steps on stderr, hidden unless stderr is an interactive terminal.
    pub fn bar(&self, message: &'static str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message);
        bar
    }
}
