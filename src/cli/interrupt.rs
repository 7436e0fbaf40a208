//! SIGINT and SIGTERM: the first one cancels the running command cleanly (upload sessions
//! deleted, temp files removed, exit 130 or 143); a second one, or a clean-up that overruns the
//! deadline, exits at once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use ferry::cancel::Cancel;

/// The longest a command may take to stop after the first signal.
const DEADLINE: Duration = Duration::from_millis(1900);

/// The signal received first (0: none).
static RECEIVED: AtomicU8 = AtomicU8::new(0);

/// The stop request every command runs under.
pub fn token() -> &'static Cancel {
    static TOKEN: OnceLock<Cancel> = OnceLock::new();
    TOKEN.get_or_init(Cancel::new)
}

/// The exit code of a command stopped by a signal: 128 + its number (130 SIGINT, 143 SIGTERM).
pub fn exit_code() -> u8 {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => 130,
        n => 128 + n,
    }
}

/// Starts listening (on the current runtime). Without signal support nothing is installed.
pub fn listen() {
    #[cfg(unix)]
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let (number, name) = tokio::select! {
            _ = int.recv() => (2u8, "SIGINT"),
            _ = term.recv() => (15u8, "SIGTERM"),
        };
        RECEIVED.store(number, Ordering::SeqCst);
        token().cancel(name);
        // A second signal, or a stop that takes too long: out now.
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            () = tokio::time::sleep(DEADLINE) => {}
        }
        std::process::exit(i32::from(128 + number));
    });
}
