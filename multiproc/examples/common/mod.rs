//! What the CSP examples share: their command line (`--os` and numeric
//! options) and placing a process in a thread or an OS process.
// Each example uses the part it needs.
#![allow(dead_code, unreachable_pub)]

use std::str::FromStr;

use multiproc::csp::{self, Process};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An example's command line: `--os`, and `--name value` options.
#[derive(Debug)]
pub struct Args {
    /// `--os`: every CSP process is an OS process (PyCSP's
    /// `@multiprocess`); otherwise a thread (`@process`).
    pub os: bool,
    options: Vec<(String, String)>,
}

impl Args {
    /// Parses the command line; `known` names the options the example
    /// takes (without `--`). Exits with a usage message on anything else.
    pub fn parse(known: &[&str]) -> Self {
        let mut args = Self { os: false, options: Vec::new() };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            let name = word.strip_prefix("--").unwrap_or_default();
            if name == "os" {
                args.os = true;
            } else if let (true, Some(value)) = (known.contains(&name), words.next()) {
                args.options.push((name.to_owned(), value));
            } else {
                usage(known);
            }
        }
        args
    }

    /// The value of `--name`, or `default`; exits with a usage message if
    /// it does not parse.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.options.iter().rev().find(|(n, _)| n == name) {
            None => default,
            Some((_, value)) => value.parse().unwrap_or_else(|_| {
                eprintln!("--{name}: cannot use {value:?}");
                std::process::exit(2)
            }),
        }
    }

    /// "threads" or "OS processes", for what the example prints.
    pub fn mode(&self) -> &'static str {
        if self.os { "OS processes" } else { "threads" }
    }
}

/// Exits with `message` unless `holds` (a check of the options).
pub fn require(holds: bool, message: &str) {
    if !holds {
        eprintln!("{message}");
        std::process::exit(2);
    }
}

fn usage(known: &[&str]) -> ! {
    let options: String = known.iter().map(|name| format!(" [--{name} N]")).collect();
    let program = std::env::args().next().unwrap_or_default();
    eprintln!("usage: {program} [--os]{options}");
    std::process::exit(2)
}

/// Placing a process: in an OS process when `os` is true, else in a thread.
pub trait Place {
    /// `self.os()` if `os`, else `self`.
    fn place(self, os: bool) -> Self;
}

impl<F, A, R> Place for Process<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    fn place(self, os: bool) -> Self {
        if os { self.os() } else { self }
    }
}

/// A process's result with retirement counted as its normal end: PyCSP
/// ends a process quietly when a channel it uses retires.
pub fn retired_is_done(result: csp::Result<()>) -> csp::Result<()> {
    match result {
        Err(error) if error.is_retired() => Ok(()),
        other => other,
    }
}

/// A process's result with poison counted as its normal end (PyCSP ends a
/// poisoned process quietly), for results read after the network shut
/// down.
pub fn poisoned_is_done(result: csp::Result<()>) -> csp::Result<()> {
    match result {
        Err(error) if error.is_poisoned() => Ok(()),
        other => other,
    }
}
