//! The pre-`main` hook that lets a re-executed binary become a child process.
//!
//! glibc runs every function listed in `.init_array` before `main`. The hook
//! looks for the environment variable a multiproc parent sets when it
//! re-executes the current binary; in any other program it returns at once and
//! costs one `getenv`.
#![allow(unsafe_code)]

use std::ffi::c_char;
use std::ffi::c_int;

type InitFn = extern "C" fn(c_int, *const *const c_char, *const *const c_char);

// SAFETY: `.init_array` holds pointers to functions with the signature glibc
// calls them with (argc, argv, envp); `START_HOOK` is exactly such a pointer.
// The function it names never unwinds (it catches every panic) and, when it
// does not take the process over, returns having changed nothing but our own
// statics and the one environment variable addressed to us.
#[used]
#[unsafe(link_section = ".init_array")]
static START_HOOK: InitFn = start_hook;

extern "C" fn start_hook(_argc: c_int, _argv: *const *const c_char, _envp: *const *const c_char) {
    // A privileged (setuid, file-capability) program never takes orders from
    // its environment: that would let anyone run code in it.
    if super::is_privileged() {
        return;
    }
    // SAFETY: `.init_array` functions run before `main`, while this process has
    // a single thread, so nothing else reads or changes the environment.
    let Some(boot) = (unsafe { super::take_env(crate::boot::BOOT_VAR) }) else {
        return;
    };
    // A panic must not unwind into the C runtime; the child side handles its
    // own failures, so anything that still escapes means a broken bootstrap.
    if std::panic::catch_unwind(|| crate::boot::on_start(boot)).is_err() {
        super::exit_now(crate::boot::EXIT_BOOT_FAILED);
    }
}

/// Makes sure the object file holding the hook is linked into the program.
///
/// The linker only pulls the parts of a static library that something uses;
/// every path that starts a child calls this, so a binary able to start a
/// child also contains the hook that lets the child run.
pub(crate) fn ensure_start_hook_linked() {
    std::hint::black_box(&START_HOOK);
}
