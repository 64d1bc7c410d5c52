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
pub(crate) mod helpers;
mod panic_hook;
mod reaper;
mod related;
mod spawn;

pub(crate) use child::{ChildStart, fail, panic_message, run_spawned, run_target};
pub(crate) use forkserver::serve as serve_forks;
pub(crate) use helpers::spawn_helper;

pub use builder::{Builder, StartMethod};
pub use current::{CurrentProcess, cpu_count, current_process};
pub use handle::Process;
pub use related::{
    ActiveChild, ParentProcess, active_children, get_start_method, parent_process, set_start_method,
};
