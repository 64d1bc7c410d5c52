//! Logging through the `log` crate: a capturing logger sees process starts,
//! exits, panics and a manager's refused key (its own test binary, so that
//! the process-wide logger sees only this file's tests).

mod common;

use std::sync::Mutex;

use common::join;
use multiproc::{Error, Manager, Process};

/// Every record logged by multiproc, as "LEVEL message".
static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("multiproc")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}", record.level(), record.args());
            RECORDS.lock().unwrap().push(line);
        }
    }

    fn flush(&self) {}
}

fn capture() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// Whether a record holds every one of `parts`.
fn logged(parts: &[&str]) -> bool {
    RECORDS.lock().unwrap().iter().any(|line| parts.iter().all(|part| line.contains(part)))
}

fn double(x: u32) -> u32 {
    x * 2
}

fn boom(_: ()) {
    panic!("on purpose")
}

#[test]
fn a_childs_start_exit_and_panic_are_logged_with_its_name_and_pid() {
    capture();
    let p = Process::builder().name("logged-child").spawn(double, 21).unwrap();
    let pid = p.pid().to_string();
    assert_eq!(join(p).unwrap(), 42);
    assert!(logged(&["DEBUG", "started process \"logged-child\"", &pid, "Spawn"]));
    assert!(logged(&["DEBUG", "\"logged-child\"", &pid, "exited with code 0"]));

    let p = Process::builder().name("logged-panic").spawn(boom, ()).unwrap();
    let pid = p.pid().to_string();
    assert!(matches!(join(p), Err(Error::Panicked { .. })));
    assert!(logged(&["WARN", "\"logged-panic\"", &pid, "panicked", "on purpose"]));
    assert!(logged(&["INFO", "\"logged-panic\"", &pid, "exited with code 1"]));
}

#[test]
fn a_wrong_authkey_is_logged() {
    capture();
    let m = Manager::builder().authkey(b"right").start().unwrap();
    let address = format!("{:?}", m.address());
    assert!(matches!(
        Manager::connect(m.address(), Some(b"wrong")),
        Err(Error::AuthenticationFailed)
    ));
    assert!(logged(&["WARN", "authentication", &address, "failed"]));
}
