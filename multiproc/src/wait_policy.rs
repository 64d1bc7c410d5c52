//! How long a blocked operation keeps its CPU before it sleeps: one policy
//! for the whole library, set per process.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How every blocking operation of this process waits: queues, pipes and
/// connections, locks, conditions, events, semaphores, barriers and manager
/// calls.
///
/// A wait first *spins* (looks again and again, with `pause` between looks;
/// only on a machine with two CPUs or more), then *polls* (looks, giving the
/// CPU to whoever else can run between looks), then *sleeps* in the kernel
/// until woken. Waking a sleeper whose CPU went idle costs 20-70 µs on a
/// virtual machine, a hundred times a cache-line transfer: an answer that
/// arrives while the waiter still looks is fast. The budgets are in time,
/// and shrink for an object whose recent waits all ended in sleep anyway,
/// so a consumer left idle costs almost no CPU.
///
/// # Examples
///
/// ```
/// use multiproc::{WaitPolicy, set_wait_policy, wait_policy};
///
/// set_wait_policy(WaitPolicy::LowestLatency);
/// assert_eq!(wait_policy(), WaitPolicy::LowestLatency);
/// set_wait_policy(WaitPolicy::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum WaitPolicy {
    /// Spin up to 50 µs and poll up to 200 µs before sleeping: for
    /// ping-pong between processes that each have a CPU.
    LowestLatency,
    /// Spin up to 2 µs and poll up to 50 µs (the default): ping-pong
    /// answers within a poll; an idle waiter sleeps after 50 µs, and after
    /// a few such waits on the same object, after 5 µs.
    #[default]
    Balanced,
    /// Sleep at once: the least CPU, at the price of a kernel wake-up for
    /// every wait that blocks.
    LowestCpu,
}

static POLICY: AtomicU8 = AtomicU8::new(1);

/// Sets how this process's blocking operations wait (see [`WaitPolicy`]).
/// Children started afterwards start with the same policy.
///
/// # Examples
///
/// ```
/// multiproc::set_wait_policy(multiproc::WaitPolicy::LowestCpu);
/// # multiproc::set_wait_policy(multiproc::WaitPolicy::default());
/// ```
pub fn set_wait_policy(policy: WaitPolicy) {
    let code = match policy {
        WaitPolicy::LowestLatency => 0,
        WaitPolicy::Balanced => 1,
        WaitPolicy::LowestCpu => 2,
    };
    POLICY.store(code, Ordering::Relaxed);
}

/// How this process's blocking operations wait now.
///
/// # Examples
///
/// ```
/// assert_eq!(multiproc::wait_policy(), multiproc::WaitPolicy::Balanced);
/// ```
pub fn wait_policy() -> WaitPolicy {
    match POLICY.load(Ordering::Relaxed) {
        0 => WaitPolicy::LowestLatency,
        2 => WaitPolicy::LowestCpu,
        _ => WaitPolicy::Balanced,
    }
}

/// The poll budgets of a wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// How long to spin (zero on one CPU).
    pub(crate) spin: Duration,
    /// How long to spin and poll in all.
    pub(crate) total: Duration,
    /// The total for an object whose recent waits all ended in sleep.
    pub(crate) idle_probe: Duration,
}

/// The budgets of the current policy on this machine.
pub(crate) fn budget() -> Budget {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let us = Duration::from_micros;
    let mut budget = match wait_policy() {
        WaitPolicy::LowestLatency => Budget { spin: us(50), total: us(200), idle_probe: us(50) },
        WaitPolicy::Balanced => Budget { spin: us(2), total: us(50), idle_probe: us(5) },
        WaitPolicy::LowestCpu => Budget { spin: us(0), total: us(0), idle_probe: us(0) },
    };
    if *CPUS.get_or_init(crate::cpu_count) < 2 {
        // The party we wait for cannot run while we spin: only poll.
        budget.spin = Duration::ZERO;
    }
    budget
}
