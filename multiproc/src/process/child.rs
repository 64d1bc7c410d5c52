//! The child side: adopt the bootstrap, run the target, report the outcome.
//!
//! A child reports exactly one *outcome frame* on its private socket before it
//! exits: the encoded return value, the panic message, or why it could not run
//! its target. Then it ends with `_exit`, running none of its parent's exit
//! handlers (for the fork start method) and nothing after the target (for the
//! others, where the target ran before `main`).

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::current::{self, ChildInfo};
use crate::boot::EXIT_BOOT_FAILED;
use crate::boot::entry::EntryRef;
use crate::os;
use crate::transfer::codec;
use crate::transfer::frame::{self, Frame};
use crate::{Error, Result};

/// How long a child waits for its bootstrap message.
const BOOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

const TAG_RETURNED: u8 = 0;
const TAG_PANICKED: u8 = 1;
const TAG_FAILED: u8 = 2;

/// What a parent tells a re-executed (spawn) or fork-server child.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Boot {
    pub(crate) exe: (u64, u64),
    pub(crate) entry: EntryRef,
    pub(crate) info: ChildInfo,
}

/// A child's private socket and its still-encoded arguments.
#[derive(Debug)]
pub(crate) struct ChildStart {
    pub(crate) sock: OwnedFd,
    args: Vec<u8>,
    fds: Vec<OwnedFd>,
}

/// Splits a bootstrap frame: `boot length: u32 LE | Boot | encoded arguments`
/// (its descriptors: our parent's pidfd, then the arguments' ones).
fn split_boot(frame: &Frame) -> Result<(Boot, &[u8])> {
    let payload = &frame.payload;
    let len_bytes: [u8; 4] = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::protocol("bootstrap frame too short"))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let boot_bytes =
        payload.get(4..4 + len).ok_or_else(|| Error::protocol("bootstrap length out of range"))?;
    let boot: Boot = postcard::from_bytes(boot_bytes).map_err(Error::decode::<Boot>)?;
    Ok((boot, &payload[4 + len..]))
}

/// Runs a child whose parent sends its bootstrap on `sock`.
pub(crate) fn run_spawned(sock: OwnedFd) -> ! {
    // The parent sends the bootstrap right after starting us; if it died
    // first (and a forked sibling keeps the socket open), give up.
    let deadline = crate::shm::park::deadline_after(BOOT_TIMEOUT);
    let frame = match frame::recv_frame(sock.as_fd(), u64::MAX, deadline) {
        Ok(Some(frame)) => frame,
        // The parent went away before saying what to run.
        Ok(None) => os::exit_now(EXIT_BOOT_FAILED),
        Err(e) => fail(&sock, format!("could not read the bootstrap message: {}", chain(&e))),
    };
    let (boot, args) = match split_boot(&frame) {
        Ok(parts) => parts,
        Err(e) => fail(&sock, format!("malformed bootstrap message: {}", chain(&e))),
    };
    match os::exe_identity() {
        Ok(exe) if exe == boot.exe => {}
        Ok(_) => fail(&sock, "the child's executable differs from its parent's".to_owned()),
        Err(e) => fail(&sock, format!("could not identify the executable: {e}")),
    }
    let args = args.to_vec();
    let mut fds = frame.fds.into_iter();
    let Some(parent) = fds.next() else {
        fail(&sock, "the bootstrap message lacks the parent's pidfd".to_owned())
    };
    let daemon = boot.info.daemon;
    current::enter_child(boot.info);
    if daemon {
        if let Err(message) = watch_parent(parent) {
            fail(&sock, message);
        }
    } else {
        drop(parent);
    }
    let run = match boot.entry.resolve() {
        Ok(run) => run,
        Err(why) => fail(&sock, format!("the bootstrap names no runnable target: {why}")),
    };
    run(ChildStart { sock, args, fds: fds.collect() })
}

/// Decodes the arguments, runs `f`, reports. Never returns.
pub(crate) fn run_target<F, A, R>(f: F, start: ChildStart) -> !
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let ChildStart { sock, args: args_bytes, fds } = start;
    let args: A = match codec::decode(&args_bytes, fds) {
        Ok(args) => args,
        Err(e) => fail(&sock, format!("could not decode the arguments: {}", chain(&e))),
    };
    drop(args_bytes);
    finish(&sock, panic::catch_unwind(AssertUnwindSafe(move || f(args))))
}

/// Reports the target's outcome on `sock` and exits.
pub(crate) fn finish<R: Serialize>(sock: &OwnedFd, result: std::thread::Result<R>) -> ! {
    let code = match result {
        Ok(value) => {
            let code = match codec::encode_into(&value, vec![TAG_RETURNED]) {
                Ok(encoded) => {
                    let fds: Vec<_> = encoded.fds.iter().map(AsFd::as_fd).collect();
                    // A parent that dropped our handle no longer listens.
                    let _ = frame::send_frame(sock.as_fd(), &[&encoded.bytes], &fds);
                    0
                }
                Err(e) => {
                    let message = format!("could not encode the return value: {}", chain(&e));
                    let _ =
                        frame::send_frame(sock.as_fd(), &[&[TAG_FAILED], message.as_bytes()], &[]);
                    1
                }
            };
            drop(value);
            code
        }
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            // The location first, then a NUL (which no file name holds).
            let location = super::panic_hook::take_location().unwrap_or_default();
            let body = [location.as_bytes(), b"\0", message.as_bytes()];
            let _ = frame::send_frame(sock.as_fd(), &[&[TAG_PANICKED], &body.concat()], &[]);
            // Dropping a panic payload may itself panic; it does not matter now.
            std::mem::forget(payload);
            1
        }
    };
    // Children this one started and did not wait for must read their
    // bootstraps while it still lives.
    super::spawn::wait_for_pending_boots();
    os::exit_now(code)
}

/// Reports that the target could not be run, and exits.
pub(crate) fn fail(sock: &OwnedFd, message: String) -> ! {
    let _ = frame::send_frame(sock.as_fd(), &[&[TAG_FAILED], message.as_bytes()], &[]);
    eprintln!("multiproc: {message}");
    os::exit_now(EXIT_BOOT_FAILED)
}

/// Turns an outcome frame of the child named `process` into the parent's
/// result.
pub(crate) fn decode_outcome<R: DeserializeOwned>(frame: Frame, process: &str) -> Result<R> {
    match frame.payload.split_first() {
        Some((&TAG_RETURNED, body)) => codec::decode(body, frame.fds),
        Some((&TAG_PANICKED, body)) => {
            let (location, message) = match body.iter().position(|&b| b == 0) {
                Some(nul) => (&body[..nul], &body[nul + 1..]),
                None => (&b""[..], body),
            };
            Err(Error::Panicked {
                process: process.to_owned(),
                location: (!location.is_empty())
                    .then(|| String::from_utf8_lossy(location).into_owned()),
                message: String::from_utf8_lossy(message).into_owned(),
            })
        }
        Some((&TAG_FAILED, body)) => {
            Err(Error::ChildSetup { message: String::from_utf8_lossy(body).into_owned() })
        }
        Some((tag, _)) => Err(Error::protocol(format!("unknown outcome tag {tag}"))),
        None => Err(Error::protocol("empty outcome frame")),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic payload that is not a string".to_owned()
    }
}

/// An error and its sources, as one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Makes this (daemon) process die when the process behind `parent` ends,
/// however it ends: a thread waits on the parent's pidfd.
pub(crate) fn watch_parent(parent: OwnedFd) -> std::result::Result<(), String> {
    match os::wait_readable(&[parent.as_fd()], Some(Instant::now())) {
        Ok(Some(_)) => os::kill_self(),
        Ok(None) => {}
        Err(e) => return Err(format!("could not watch the parent process: {e}")),
    }
    super::helpers::spawn_helper("multiproc-daemon", move || {
        let _ = os::wait_readable(&[parent.as_fd()], None);
        os::kill_self()
    })
    .map_err(|e| format!("could not start the daemon watcher thread: {e}"))
}
