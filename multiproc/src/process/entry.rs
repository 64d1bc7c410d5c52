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
    pub(crate) fn new<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> Self {
        let trampoline: Trampoline = trampoline::<A, R>;
        Self {
            layout: offset(probe as fn() as usize),
            trampoline: offset(trampoline as usize),
            target: offset(f as usize),
        }
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
    // `Trampoline` value in the same executable file (identity checked by the
    // caller, layout checked just above), so `address` gives back that very
    // function's address in this image. The bootstrap socket is private to
    // our parent, a multiproc process, so nobody else chose these numbers.
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
