//! Linux implementation of the OS layer.

mod futex;
mod image;
mod init;
mod memory;
mod poll;
mod proc;
mod signal;
mod socket;
mod tracked;
mod waker;

pub(crate) use futex::{
    current_owner_id, current_tid, fork_generation, futex_wait, futex_wait_any, futex_wake,
    namespaces, owner_alive,
};
pub(crate) use image::segments_of_object;
pub(crate) use init::ensure_start_hook_linked;
pub(crate) use memory::{
    Mapping, create_exclusive, file_identity, file_size, flock, is_sealed, open_existing,
    page_size, path_identity, read_at, reserve, sealed_memfd, set_len, unlink_if_same, write_at,
};
pub(crate) use poll::{peer_hung_up, wait_fds, wait_readable};
pub(crate) use proc::{
    ExitStatus, Forked, Signal, adopt_inherited_fd, at_exit, borrow_inherited_fd, close_other_fds,
    default_sigchld, detach, exe_identity, exit_now, fork, getpid, getppid, is_privileged,
    kill_and_reap, kill_self, make_fd_room_after, object_base, own_pidfd, pidfd_open,
    process_ended, process_ended_fd, process_exe_identity, raise_fd_limit, reap_blocking,
    send_signal, set_thread_name, spawn_self, start_time, take_env, thread_ids, try_reap, uids,
    with_fd_room,
};
pub(crate) use signal::StopSignals;
pub(crate) use socket::{
    MAX_FDS_PER_MESSAGE, is_seqpacket, peer_credentials, recv_with_fds, send_with_fds,
    seqpacket_pair, stream_pair, unread_by_peer,
};
pub(crate) use tracked::{
    lock_for_fork as lock_tracked_fds_for_fork, track as track_fd, untrack as untrack_fd,
};
pub(crate) use waker::Waker;
