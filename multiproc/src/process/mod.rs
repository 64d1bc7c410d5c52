//! Processes: start a function in a new OS process and get its result back.
//!
//! The parts: [`Builder`] and [`StartMethod`] say how a child starts;
//! [`Process`] is the parent's handle on it; [`current_process`] and
//! [`cpu_count`] tell a process about itself. Inside, `spawn`, `fork` and
//! `forkserver` start children, `child` runs in them (after `crate::boot` has
//! checked a re-executed image's bootstrap), and `reaper` keeps dropped children from
//! becoming zombies.

mod builder;
pub(crate) mod child;
pub(crate) mod current;
mod fork;
mod forkserver;
mod handle;
mod helpers;
mod panic_hook;
mod reaper;
mod spawn;

pub(crate) use child::{ChildStart, fail, run_spawned, run_target};
pub(crate) use forkserver::serve as serve_forks;

pub use builder::{Builder, StartMethod};
pub use current::{CurrentProcess, cpu_count, current_process};
pub use handle::Process;
