//! Questions to the person at the terminal, and the rule that nobody is asked when nobody
//! could answer (no terminal, CI): tfrollback never hangs on a prompt.

use std::io::IsTerminal;

use tokio::sync::watch;

use crate::error::{Error, Refusal};
use crate::settings::Terminal;

/// Refuses at once when nobody could answer a confirmation.
pub(crate) fn require_answerable(
    terminal: Terminal,
    auto_approve: bool,
    dry_run: bool,
) -> Result<(), Error> {
    let interactive =
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && !terminal.automated;
    if !auto_approve && !dry_run && !interactive {
        return Err(Refusal::NobodyToAsk.into());
    }
    Ok(())
}

/// Asks on the terminal; anything but y/yes is no.
pub(crate) async fn confirm(question: &str) -> bool {
    eprint!("{question}");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok();
        matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    })
    .await
    .unwrap_or(false)
}

/// Goes on when `auto_approve` is set or the person says yes; otherwise `what` is cancelled.
/// Ctrl-C at the prompt stops at once (the answer is never waited for).
pub(crate) async fn approve(
    auto_approve: bool,
    question: &str,
    what: &'static str,
    interrupt: &watch::Receiver<bool>,
) -> Result<(), Error> {
    if auto_approve {
        return Ok(());
    }
    tokio::select! {
        yes = confirm(question) => {
            if yes {
                Ok(())
            } else {
                Err(Refusal::Cancelled { what }.into())
            }
        }
        () = interrupted(interrupt.clone()) => {
            eprintln!();
            Err(Refusal::Interrupted.into())
        }
    }
}

/// Resolves when the flag turns true; never, when nobody can raise it any more.
async fn interrupted(mut flag: watch::Receiver<bool>) {
    if flag.wait_for(|raised| *raised).await.is_err() {
        std::future::pending::<()>().await;
    }
}
