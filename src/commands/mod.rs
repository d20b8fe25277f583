//! One module per subcommand, and what they share: `Context` (settings, printer, store),
//! reading versions (`versions`), the checks before a state change (`preflight`), prompts,
//! and the audit of state-changing commands (`audit`).

use serde::Serialize;

use crate::cli::Command;
use crate::error::{Error, Exit};
use crate::operation::Engine;
use crate::printer::Printer;
use crate::settings::{Settings, Terminal};
use crate::store::{Store, StoreOptions};

pub(crate) mod audit;
pub(crate) mod diff;
pub(crate) mod doctor;
pub(crate) mod guard;
pub(crate) mod history;
pub(crate) mod list;
pub(crate) mod mark;
pub(crate) mod notify;
pub(crate) mod preflight;
pub(crate) mod prompt;
pub(crate) mod recover;
pub(crate) mod restore;
pub(crate) mod show;
pub(crate) mod status;
pub(crate) mod to;
pub(crate) mod unfreeze;
pub(crate) mod versions;

/// What every command works with, built once per run.
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) printer: Printer,
    pub(crate) terminal: Terminal,
    pub(crate) store: Store,
    /// When the run started: the one reading of the clock that selectors use, so `@-2h` and
    /// `@14:30` name one moment for the whole run (and again under the lock).
    pub(crate) now: jiff::Timestamp,
}

impl Context {
    pub(crate) async fn new(
        settings: Settings,
        printer: Printer,
        terminal: Terminal,
    ) -> Result<Context, Error> {
        let now = jiff::Timestamp::now();
        let store = Store::connect(StoreOptions {
            backend: &settings.backend,
            workdir: &settings.workdir,
            page_size: settings.page_size,
            read_timeout: settings.read_timeout,
            cache_dir: settings.cache_dir.clone(),
            endpoint: settings.endpoint.clone(),
        })
        .await?;
        Ok(Context {
            settings,
            printer,
            terminal,
            store,
            now,
        })
    }

    pub(crate) fn location(&self) -> String {
        self.store.location()
    }

    /// What the rollback engine needs of this run.
    pub(crate) fn engine(&self) -> Engine<'_> {
        Engine {
            store: &self.store,
            printer: &self.printer,
            workdir: &self.settings.workdir,
            identity: &self.settings.identity,
            failpoint: self.settings.failpoint.as_deref(),
            heartbeat: self.settings.heartbeat,
        }
    }

    /// Prints a view as JSON or as text.
    pub(crate) fn emit<T: Serialize>(
        &self,
        view: &T,
        render: impl Fn(&T) -> String,
    ) -> Result<Exit, Error> {
        let written = if self.printer.json {
            self.printer.json(view)
        } else {
            self.printer.out(&render(view))
        };
        written.map_err(Error::Stdout)?;
        Ok(Exit::Ok)
    }
}

/// How a command ended, when it did not fail.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done(Exit),
    /// An expected outcome, not a failure: there was nothing to do (exit 0).
    NothingToDo {
        reason: String,
    },
}

/// Runs one command (`completions` and `man` need no state and never get here).
pub(crate) async fn run(ctx: &Context, command: &Command) -> Result<Outcome, Error> {
    let done = |r: Result<Exit, Error>| r.map(Outcome::Done);
    match command {
        Command::List(args) => done(list::run(ctx, args).await),
        Command::Show(args) => done(show::run(ctx, args).await),
        Command::Diff(args) => done(diff::run(ctx, args).await),
        Command::History(args) => done(history::run(ctx, args).await),
        Command::Mark(args) => done(mark::mark(ctx, args).await),
        Command::Unmark(args) => done(mark::unmark(ctx, args).await),
        Command::Status(args) => done(status::run(ctx, args).await),
        Command::Guard(args) => guard::run(ctx, args).await,
        Command::Unfreeze(args) => unfreeze::run(ctx, args).await,
        Command::To(args) => to::run(ctx, args).await,
        Command::Restore(args) => restore::run(ctx, args).await,
        Command::Recover(args) => recover::run(ctx, args).await,
        Command::Doctor(args) => done(doctor::run(ctx, args).await),
        Command::Completions(_) | Command::Man => {
            unreachable!("completions and man are answered before settings are resolved")
        }
    }
}
