//! Signals during a state-changing operation: the first Ctrl-C or SIGTERM asks the running
//! terraform to stop and the operation to wind down safely; it never kills anything mid-write.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// What the first signal is answered with during a state-changing operation.
pub(crate) const WINDING_DOWN: &str = "tfrollback: stopping; terraform was asked to stop and the state will be left as safe as it was found";

/// Listens for Ctrl-C, SIGTERM, SIGHUP (a dropped SSH session) and SIGQUIT. The first one
/// flips the returned flag (the running terraform gets SIGINT once and the operation winds
/// down safely); later ones only remind the user that tfrollback is finishing. Nothing here
/// may fail on a terminal that is gone.
pub(crate) fn interrupts() -> watch::Receiver<bool> {
    interrupts_saying(Arc::new(Mutex::new(WINDING_DOWN)))
}

/// `interrupts`, answering the first signal with whatever `first` holds by then: `guard`
/// says that nothing changed while it watches, and switches to `WINDING_DOWN` once it rolls
/// back.
pub(crate) fn interrupts_saying(first_answer: Arc<Mutex<&'static str>>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term), Ok(mut hup), Ok(mut quit)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::quit()),
        ) else {
            return;
        };
        let mut first = true;
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
                _ = hup.recv() => {},
                _ = quit.recv() => {},
            }
            let said = if first {
                let _ = tx.send(true);
                first = false;
                first_answer.lock().map_or(WINDING_DOWN, |said| *said)
            } else {
                "tfrollback: still finishing safely; please wait"
            };
            let _ = writeln!(std::io::stderr(), "{said}");
        }
    });
    rx
}
