//! Linux implementation of the OS layer.

mod init;
mod poll;
mod proc;
mod socket;
mod waker;

pub(crate) use init::ensure_start_hook_linked;
pub(crate) use poll::wait_readable;
pub(crate) use proc::{
    ExitStatus, Forked, Signal, adopt_inherited_fd, exe_identity, exit_now, fork, getpid, getppid,
    kill_self, own_pidfd, pidfd_open, send_signal, spawn_self, take_env, thread_count, try_reap,
};
pub(crate) use socket::{MAX_FDS_PER_MESSAGE, recv_with_fds, send_with_fds, stream_pair};
pub(crate) use waker::Waker;
