#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

mod error;
mod os;
mod process;
#[allow(dead_code)] // transitional: wired to `sync` and `shared` in the next commit
mod shm;
pub mod transfer;

pub use error::{BoxError, Error, Result};
pub use process::{Builder, CurrentProcess, Process, StartMethod, cpu_count, current_process};
pub use transfer::FdHandle;
