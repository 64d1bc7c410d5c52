//! Named shared memory: sharing by name and by handle, errors, and no leaked
//! /dev/shm entries, also when processes are killed.

mod common;

use std::io::Write;
use std::path::Path;

use common::{METHODS, eventually, join, read_exact_within, wait};
use multiproc::{Error, FdHandle, Process, SharedMemory};

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("test-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

fn entries_with_prefix(prefix: &str) -> usize {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(prefix))
        .count()
}

fn write_by_name(name: String) -> usize {
    let block = SharedMemory::open(&name).unwrap();
    block.write(0, b"by name").unwrap();
    block.size()
}

fn write_by_handle(block: SharedMemory) {
    block.write(8, b"by handle").unwrap();
}

#[test]
fn children_reach_a_block_by_name_and_by_handle() {
    for method in METHODS {
        let name = unique("share");
        let block = SharedMemory::create(&name, 64).unwrap();
        let by_name = common::builder(method).spawn(write_by_name, name.clone());
        assert_eq!(join(by_name.unwrap()).unwrap(), 64);
        let by_handle = common::builder(method).spawn(write_by_handle, block.clone());
        join(by_handle.unwrap()).unwrap();
        assert_eq!(&block.to_vec()[..17], b"by name\0by handle", "{method:?}");
        drop(block);
        eventually(&format!("{method:?}: the last drop removes the name"), || !exists(&name));
    }
}

#[test]
fn bad_names_sizes_and_offsets_are_clear_errors() {
    let name = unique("errors");
    assert!(matches!(SharedMemory::open(&name), Err(Error::NotFound { .. })));
    let block = SharedMemory::create(&name, 16).unwrap();
    assert!(matches!(SharedMemory::create(&name, 16), Err(Error::AlreadyExists { .. })));
    assert!(matches!(
        SharedMemory::open_with_size(&name, 32),
        Err(Error::SizeMismatch { expected: 32, actual: 16 })
    ));
    assert_eq!(SharedMemory::open_with_size(&name, 16).unwrap().size(), 16);
    for bad in ["", "a/b", "..", &"x".repeat(300)] {
        assert!(matches!(SharedMemory::create(bad, 1), Err(Error::InvalidName { .. })), "{bad}");
    }
    assert!(SharedMemory::create(&unique("zero"), 0).is_err());
    assert!(matches!(block.write(10, &[0; 7]), Err(Error::OutOfBounds { .. })));
    assert!(matches!(block.read(usize::MAX, &mut [0; 2]), Err(Error::OutOfBounds { .. })));
    block.unlink();
    assert!(!exists(&name));
    block.write(0, b"still mapped").unwrap();
}

/// Creates a block, reports that it did, and hangs holding it.
fn create_and_hang(args: (String, FdHandle)) {
    let (name, report) = args;
    let block = SharedMemory::create(&name, 4096).unwrap();
    block.write(0, b"alive").unwrap();
    report.file().write_all(b"k").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(300));
}

#[test]
fn a_block_whose_creator_is_killed_is_removed() {
    for method in METHODS {
        let name = unique("killed");
        let (reader, writer) = std::io::pipe().unwrap();
        let child = common::builder(method)
            .spawn(create_and_hang, (name.clone(), FdHandle::new(writer)))
            .unwrap();
        assert_eq!(read_exact_within(reader, 1), b"k");
        assert!(exists(&name));
        child.kill().unwrap();
        assert_eq!(wait(&child), -9);
        eventually(&format!("{method:?}: {name} removed after SIGKILL"), || !exists(&name));
    }
}

#[test]
fn a_block_outlives_its_killed_creator_while_someone_uses_it() {
    let name = unique("survivor");
    let (reader, writer) = std::io::pipe().unwrap();
    let child = Process::spawn(create_and_hang, (name.clone(), FdHandle::new(writer))).unwrap();
    assert_eq!(read_exact_within(reader, 1), b"k");
    let ours = SharedMemory::open(&name).unwrap();
    child.kill().unwrap();
    wait(&child);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(exists(&name), "still in use by us");
    assert_eq!(&ours.to_vec()[..5], b"alive");
    drop(ours);
    eventually("the name goes with its last user", || !exists(&name));
}

#[test]
fn ten_thousand_named_create_drop_cycles_leave_nothing_behind() {
    let prefix = unique("cycle");
    drop(SharedMemory::create(&format!("{prefix}-warm"), 1).unwrap());
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    for i in 0..10_000 {
        let block = SharedMemory::create(&format!("{prefix}-{i}"), 128).unwrap();
        block.write(0, &[1; 128]).unwrap();
    }
    // Names nobody uses are removed at the last drop, or by the janitor a
    // moment later when it won the race for the file's lock.
    eventually("every name is removed", || entries_with_prefix(&prefix) == 0);
    // Other tests of this binary open descriptors too: wait for them.
    eventually("no descriptor is left behind", || {
        std::fs::read_dir("/proc/self/fd").unwrap().count() <= fds
    });
}

fn touch_and_leave(block: SharedMemory) {
    block.write(0, b"x").unwrap();
}

#[test]
fn a_child_dropping_its_handle_does_not_remove_a_block_the_parent_uses() {
    for method in METHODS {
        let name = unique("shared-ofd");
        let block = SharedMemory::create(&name, 8).unwrap();
        let child = common::builder(method).spawn(touch_and_leave, block.clone());
        join(child.unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(exists(&name), "{method:?}: the parent still uses it");
        assert!(SharedMemory::open(&name).is_ok());
        drop(block);
        eventually("removed after the last user", || !exists(&name));
    }
}

#[test]
fn dropping_a_handle_never_removes_a_block_another_program_made() {
    // Python's shm_open takes no flock: a plain file stands in for it.
    let name = unique("foreign");
    let path = Path::new("/dev/shm").join(&name);
    std::fs::write(&path, [0u8; 32]).unwrap();
    let block = SharedMemory::open(&name).unwrap();
    block.write(0, b"ours").unwrap();
    drop(block);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(path.exists(), "a name multiproc did not create must survive");
    assert_eq!(&std::fs::read(&path).unwrap()[..4], b"ours");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_block_larger_than_the_shared_memory_file_system_is_refused_at_create() {
    let fs = rustix::fs::statvfs("/dev/shm").unwrap();
    let total = fs.f_blocks * fs.f_frsize;
    let name = unique("too-big");
    let err = SharedMemory::create(&name, (total + (1 << 20)) as usize).unwrap_err();
    assert!(matches!(err, Error::Os { .. }), "{err:?}");
    assert!(err.to_string().contains("reserve shared memory"), "{err}");
    assert!(!exists(&name), "a refused block left its name behind");
}

/// In a child: another party shrinks the block's file; reads and writes
/// past its new end report an error rather than kill the process.
fn touch_after_truncation(name: String) -> (bool, bool, bool) {
    let block = SharedMemory::open(&name).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(Path::new("/dev/shm").join(&name))
        .unwrap()
        .set_len(4096)
        .unwrap();
    let mut buf = [0u8; 16];
    let read_far = block.read(512 << 10, &mut buf);
    let write_far = block.write(512 << 10, b"still alive");
    let read_near = block.read(0, &mut buf);
    (
        matches!(read_far, Err(Error::OutOfBounds { size: 4096, .. })),
        matches!(write_far, Err(Error::OutOfBounds { size: 4096, .. })),
        read_near.is_ok(),
    )
}

#[test]
fn reads_and_writes_survive_a_block_shrunk_by_another_party() {
    let name = unique("shrunk");
    let block = SharedMemory::create(&name, 1 << 20).unwrap();
    let outcome = join(Process::spawn(touch_after_truncation, name).unwrap());
    assert_eq!(outcome.unwrap(), (true, true, true));
    drop(block);
}
