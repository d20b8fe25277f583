//! Where output goes. `Printer` owns the decisions: JSON or human text on stdout, notes and
//! errors on stderr, colors only on a terminal, progress bars only on an interactive stderr.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::settings::Terminal;

#[derive(Debug, Clone)]
pub(crate) struct Printer {
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    progress: bool,
    /// Width of the terminal tables: `COLUMNS`, else the terminal's, else 120.
    pub(crate) columns: usize,
}

/// What the command line asks of output.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OutputFlags {
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) no_color: bool,
}

impl Printer {
    pub(crate) fn new(args: OutputFlags, terminal: Terminal) -> Printer {
        let color = !args.no_color && !terminal.plain && std::io::stdout().is_terminal();
        let color_stderr = !args.no_color && !terminal.plain && std::io::stderr().is_terminal();
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color_stderr);
        let stdout = console::Term::stdout();
        let columns = terminal.columns.unwrap_or_else(|| {
            if stdout.is_term() {
                stdout.size().1 as usize
            } else {
                120
            }
        });
        Printer {
            json: args.json,
            quiet: args.quiet,
            progress: !args.json
                && !args.quiet
                && !terminal.plain
                && !terminal.automated
                && std::io::stderr().is_terminal(),
            columns,
        }
    }

    /// The one JSON document of a `--json` run.
    pub(crate) fn json<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)
    }

    /// Human output on stdout (none with --quiet, which prints only errors).
    pub(crate) fn out(&self, text: &str) -> std::io::Result<()> {
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

    /// A note for people on stderr (hidden by --quiet). A stderr that is gone (a dropped
    /// SSH session) is not a reason to stop a rollback half way: write errors are ignored.
    pub(crate) fn note(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{text}");
        }
    }

    /// A live line on stderr (`{prefix} {message}` with a spinner), hidden unless stderr is an
    /// interactive terminal.
    pub(crate) fn spinner(&self) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let line = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        line.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        line.enable_steady_tick(std::time::Duration::from_millis(250));
        line
    }

    /// A bar of `len` steps on stderr, hidden unless stderr is an interactive terminal.
    pub(crate) fn bar(&self, message: &'static str) -> ProgressBar {
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
