//! Naming a target function across `exec`.
//!
//! A spawned child runs the same executable as its parent, but at another
//! load address. A function therefore travels as its offset from a reference
//! function of this crate; the child adds its own address of that reference.
//! Two checks make sure the image really is the same: the executable file's
//! identity (device and inode, compared by the child) and the offset of a
//! second reference function.
#![allow(unsafe_code)]

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::child::{self, ChildStart};
use crate::os;
use crate::{Error, Result};

/// The monomorphic entry a child calls: decodes `A`, runs the target, reports.
type Trampoline = fn(usize, ChildStart) -> !;

#[inline(never)]
fn anchor() {
    std::hint::black_box(0u8);
}

#[inline(never)]
fn probe() {
    std::hint::black_box(1u16);
}

fn offset(addr: usize) -> i64 {
    addr.wrapping_sub(anchor as fn() as usize) as i64
}

fn address(offset: i64) -> usize {
    (anchor as fn() as usize).wrapping_add(offset as usize)
}

/// Where, relative to [`anchor`], a child finds its entry and its target.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct CodeRefs {
    layout: i64,
    trampoline: i64,
    target: i64,
}

impl CodeRefs {
    /// The references for running `f` in a child.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if `f` does not live in the same loaded object
    /// as multiproc (a function of a dynamic library loaded beside it): its
    /// offset would mean nothing in the child.
    pub(crate) fn new<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> Result<Self> {
        let trampoline: Trampoline = trampoline::<A, R>;
        let home = os::object_base(anchor as fn() as usize);
        let same_object = |addr: usize| home.is_some() && os::object_base(addr) == home;
        if !same_object(f as usize) || !same_object(trampoline as usize) {
            return Err(Error::Unsupported {
                reason: "the target function is not in the same executable image as multiproc",
            });
        }
        Ok(Self {
            layout: offset(probe as fn() as usize),
            trampoline: offset(trampoline as usize),
            target: offset(f as usize),
        })
    }
}

/// Runs, in this child, the target that `refs` names. Never returns.
///
/// `refs` must come from the bootstrap message of our parent, which runs the
/// same executable file (the caller checked its identity).
pub(crate) fn enter(refs: CodeRefs, start: ChildStart) -> ! {
    if refs.layout != offset(probe as fn() as usize) {
        child::fail(&start.sock, "the child's executable differs from its parent's".to_owned());
    }
    // SAFETY: the parent computed `refs.trampoline` with `offset` from a
    // `Trampoline` value that it checked lies in the same loaded object as
    // `anchor` (`CodeRefs::new`), in the same executable file (identity
    // checked by the caller, layout checked just above), so `address` gives
    // back that very function's address in this image. The bootstrap comes
    // from the socket our parent named in the environment; a privileged
    // program ignores that variable (`os::is_privileged`), so only someone who
    // could run arbitrary code as us anyway can choose these numbers.
    let trampoline = unsafe { std::mem::transmute::<usize, Trampoline>(address(refs.trampoline)) };
    trampoline(address(refs.target), start)
}

fn trampoline<A: DeserializeOwned, R: Serialize>(target: usize, start: ChildStart) -> ! {
    // SAFETY: the parent built these references with `CodeRefs::new::<A, R>`,
    // whose `target` is a `fn(A) -> R` and whose trampoline is this very
    // instantiation, so `target` is the address of a `fn(A) -> R` (see `enter`).
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(target) };
    child::run_target(f, start)
}
