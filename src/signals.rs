//! SIGTERM, SIGINT and SIGHUP during a turn: the handler only records the
//! signal; the turn's loop notices it and stops codex itself (only the
//! thread that reaps codex may kill it).

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Installs the recording handler for SIGTERM, SIGINT and SIGHUP.
/// `restart`: interrupted reads resume (a turn, whose loop ticks anyway);
/// without it a blocked read returns EINTR so `replay` notices at once.
pub fn install(restart: bool) {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; the sigaction struct is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = record as *const () as usize;
            action.sa_flags = if restart { libc::SA_RESTART } else { 0 };
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// The signal received since `install`, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The terminal error for a run stopped by `signal`.
pub fn cancelled(signal: i32, what: &str) -> crate::event::TurnError {
    crate::event::TurnError::new(
        crate::event::ErrorCode::Cancelled,
        format!("the adapter received {}; {what}", name(signal)),
    )
}

pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
