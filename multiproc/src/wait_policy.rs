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
    if budget.spin > Duration::ZERO {
        let cpus = *CPUS.get_or_init(crate::cpu_count);
        if cpus < 2 || oversubscribed(cpus) {
            // The party we wait for may need our CPU to run: only poll,
            // giving the CPU away between looks.
            budget.spin = Duration::ZERO;
        }
    }
    budget
}

/// How long a sample of the machine's load stays good.
const LOAD_SAMPLE_MS: u64 = 10;

/// Whether more threads are runnable on this machine than this process may
/// use CPUs, as the kernel counted them within the last
/// [`LOAD_SAMPLE_MS`] (`/proc/loadavg`, read by one waiter at a time, at
/// most once per period). With four CSP processes in a ring on two CPUs,
/// spinning even 2 µs made each communication 4x slower.
fn oversubscribed(cpus: usize) -> bool {
    use std::sync::atomic::AtomicU64;
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    /// `(milliseconds since EPOCH, plus one) << 1 | oversubscribed`; 0: no sample.
    static SAMPLE: AtomicU64 = AtomicU64::new(0);
    let now = EPOCH.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1;
    let sample = SAMPLE.load(Ordering::Relaxed);
    let over = sample & 1 == 1;
    if sample != 0 && now.saturating_sub(sample >> 1) < LOAD_SAMPLE_MS {
        return over;
    }
    // One waiter refreshes; the others go on with the old answer.
    let claim = (now << 1) | u64::from(over);
    if SAMPLE.compare_exchange(sample, claim, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        return over;
    }
    let over = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| runnable_threads(&text))
        .is_some_and(|running| running > cpus);
    SAMPLE.store((now << 1) | u64::from(over), Ordering::Relaxed);
    over
}

/// The runnable threads in `/proc/loadavg` text (its fourth field,
/// `running/total`); `None` if it is not of that shape.
fn runnable_threads(loadavg: &str) -> Option<usize> {
    loadavg.split_whitespace().nth(3)?.split_once('/')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::runnable_threads;

    #[test]
    fn the_runnable_count_is_read_from_loadavg_and_nothing_else() {
        assert_eq!(runnable_threads("9.48 5.02 2.52 2/78 20570\n"), Some(2));
        assert_eq!(runnable_threads("0.00 0.00 0.00 17/1024 1"), Some(17));
        for hostile in ["", "1 2 3", "1 2 3 x/4 5", "1 2 3 4 5", "1 2 3 -1/4 5"] {
            assert_eq!(runnable_threads(hostile), None, "{hostile:?}");
        }
    }
}
