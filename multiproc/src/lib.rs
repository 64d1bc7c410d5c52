#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

mod error;
mod os;
mod process;
pub mod transfer;

pub use error::{BoxError, Error, Result};
pub use process::{Builder, CurrentProcess, Process, StartMethod, cpu_count, current_process};
pub use transfer::FdHandle;
