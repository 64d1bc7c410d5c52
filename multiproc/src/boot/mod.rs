//! How a process that multiproc started learns what it is for.
//!
//! A parent that re-executes its own binary (the spawn start method, the
//! fork server, the shared-memory janitor) sets one environment variable,
//! [`BOOT_VAR`], to `ROLE:FD`: the role the new process plays and the
//! descriptor of a socket on which its parent then tells it the rest. A
//! pre-`main` hook (`os::init`) takes the variable away and calls
//! [`on_start`], which owns every decision about it:
//!
//! - the role must be one of [`Role`]'s; anything else is refused;
//! - the descriptor must not be a standard stream (0–2), must be a connected
//!   Unix stream socket, and the kernel's record of its other end
//!   (`SO_PEERCRED`) must name our parent process, with our user id, which
//!   must be both our real and our effective one, running the same
//!   executable file as we do ([`trust`]);
//! - a child then runs only an entry of the table the library itself built
//!   at compile time ([`entry`]), never a code address it was sent.
//!
//! Someone who controls a program's environment but is not its parent (a
//! user who runs a tool through `sudo` with a kept environment, say) can
//! therefore no longer make it run anything: the process reports the refusal
//! on standard error and exits with status [`EXIT_BOOT_FAILED`] before
//! `main`, having run no code of the program.

pub(crate) mod entry;
#[cfg(test)]
mod tests;
mod trust;

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::os;

/// The environment variable a parent sets when it re-executes its binary.
pub(crate) const BOOT_VAR: &str = "MULTIPROC_BOOT";
/// Exit status of a process that refused or could not follow its bootstrap.
pub(crate) const EXIT_BOOT_FAILED: i32 = 70;

/// What a re-executed process is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A child of the spawn start method: runs one target and reports.
    Spawn,
    /// The fork server: forks children on its parent's requests.
    ForkServer,
    /// The shared-memory janitor: removes named blocks nobody uses.
    Janitor,
}

impl Role {
    const ALL: [Role; 3] = [Role::Spawn, Role::ForkServer, Role::Janitor];

    fn name(self) -> &'static str {
        match self {
            Role::Spawn => "spawn",
            Role::ForkServer => "forkserver",
            Role::Janitor => "janitor",
        }
    }
}

/// Starts this executable again as a process playing `role`, which reads
/// its instructions from `sock` (left open in it, at the same number).
pub(crate) fn start(role: Role, sock: BorrowedFd<'_>) -> io::Result<u32> {
    os::ensure_start_hook_linked();
    let value = format!("{}:{}", role.name(), sock.as_raw_fd());
    os::spawn_self(BOOT_VAR, &value, sock)
}

/// Parses `ROLE:FD`.
fn parse(value: &str) -> Option<(Role, i32)> {
    let (name, fd) = value.split_once(':')?;
    let role = Role::ALL.into_iter().find(|role| role.name() == name)?;
    // Only the canonical spelling a parent writes: no sign, no leading zero.
    let number: i32 = fd.parse().ok()?;
    (number.to_string() == fd).then_some((role, number))
}

/// Called before `main` when [`BOOT_VAR`] was set: checks the bootstrap and
/// becomes what it asks for, or refuses and exits. Never returns.
pub(crate) fn on_start(value: OsString) -> ! {
    let text = value.to_string_lossy();
    let Some((role, raw)) = parse(&text) else {
        refuse(&format!("malformed {BOOT_VAR}={text:?}"));
    };
    let sock = match trust::accept(raw) {
        Ok(sock) => sock,
        Err(why) => refuse(&format!("{BOOT_VAR} names descriptor {raw}, which {why}")),
    };
    match role {
        Role::Spawn => crate::process::run_spawned(sock),
        Role::ForkServer => crate::process::serve_forks(sock),
        Role::Janitor => crate::shared::janitor::serve(sock),
    }
}

fn refuse(why: &str) -> ! {
    eprintln!("multiproc: refusing to start as a child: {why}");
    os::exit_now(EXIT_BOOT_FAILED)
}
