//! Processes: start a function in a new OS process and get its result back.
//!
//! The parts: [`Builder`] and [`StartMethod`] say how a child starts;
//! [`Process`] is the parent's handle on it; [`current_process`] and
//! [`cpu_count`] tell a process about itself. Inside, `spawn`, `fork` and
//! `forkserver` start children, `child` runs in them, `entry` finds the target
//! function in a re-executed image, and `reaper` keeps dropped children from
//! becoming zombies.

mod builder;
pub(crate) mod child;
mod current;
mod entry;
mod fork;
mod forkserver;
mod handle;
mod helpers;
mod reaper;
mod spawn;

pub use builder::{Builder, StartMethod};
pub use current::{CurrentProcess, cpu_count, current_process};
pub use handle::Process;
