//! Signals during a state-changing operation: the first Ctrl-C or SIGTERM asks the running
//! terraform to stop and the operation to wind down safely; it never kills anything mid-write.

use tokio::sync::watch;

/// Listens for Ctrl-C and SIGTERM. The first one flips the returned flag (the running
/// terraform gets SIGINT once and the operation winds down safely); later ones only remind
/// the user that tfrollback is finishing.
pub(crate) fn interrupts() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut first = true;
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            if first {
                eprintln!(
                    "tfrollback: stopping; terraform was asked to stop and the state will be left as safe as it was found"
                );
                let _ = tx.send(true);
                first = false;
            } else {
                eprintln!("tfrollback: still finishing safely; please wait");
            }
        }
    });
    rx
}
