//! How a child reports a panic: a hook that names the process on stderr
//! (`process 'worker-1' (pid 4242) panicked at src/main.rs:7:5`, where the
//! standard hook would say `thread '<unnamed>'`) and keeps the panic's
//! location for the outcome the parent receives.
//!
//! The hook is set once per process, never in a forked child: a thread of
//! the parent that was panicking at the instant of the fork holds the
//! hook's lock forever in the child. The fork start method installs it in
//! the parent before forking; a spawned child, single-threaded at boot,
//! installs its own. It serves only the thread that runs a target (the
//! name is thread-local, set by `enter_child`); any other panic goes to the
//! hook that was there before.

use std::cell::RefCell;
use std::io::Write;
use std::panic::{self, PanicHookInfo};
use std::sync::Once;

thread_local! {
    /// The process's name, on the thread that runs its target.
    static NAME: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Where this thread's last panic happened (`file:line:column`).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets the hook, once per process. Call it in the parent before a fork,
/// or in a child that is still single-threaded.
pub(crate) fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            match NAME.try_with(|n| n.borrow().clone()).ok().flatten() {
                Some(name) => report(&name, info),
                None => previous(info),
            }
        }));
    });
}

/// Makes the calling thread report its panics as process `name`'s.
pub(crate) fn name_this_thread(name: &str) {
    let _ = NAME.try_with(|n| *n.borrow_mut() = Some(name.to_owned()));
}

fn report(name: &str, info: &PanicHookInfo<'_>) {
    let location = info.location().map(ToString::to_string);
    let message = super::child::panic_message(info.payload());
    let at = location.as_deref().unwrap_or("an unknown location");
    // Straight to the process's stderr: not `eprintln!`, which a forked
    // child of a test harness would send to its parent's capture buffer.
    let mut err = std::io::stderr().lock();
    let pid = std::process::id();
    let _ = writeln!(err, "process '{name}' (pid {pid}) panicked at {at}:\n{message}");
    // `capture` honours RUST_BACKTRACE / RUST_LIB_BACKTRACE, as the
    // standard hook does.
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        let _ = writeln!(err, "stack backtrace:\n{backtrace}");
    }
    let _ = LOCATION.try_with(|l| *l.borrow_mut() = location);
}

/// The location of this thread's last panic, taken.
pub(crate) fn take_location() -> Option<String> {
    LOCATION.try_with(|l| l.borrow_mut().take()).ok().flatten()
}
