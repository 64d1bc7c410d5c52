//! `Event`: a flag processes can wait for (Python's `Event`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::Result;
use crate::shm::event::RawEvent;
use crate::shm::handle::segment_handle_serde;
use crate::shm::park::deadline_after;
use crate::shm::segment::Shape;
use crate::shm::{Kind, Segment};

/// A flag shared between processes: [`set`](Event::set) releases everyone
/// who [`wait`](Event::wait)s, until it is [`clear`](Event::clear)ed.
///
/// A waiter that saw the flag set, even briefly (set then at once cleared),
/// returns: no pulse is missed.
///
/// # Examples
///
/// ```
/// use multiproc::{Event, Process};
///
/// fn signal(ready: Event) {
///     ready.set();
/// }
///
/// let ready = Event::new()?;
/// let child = Process::spawn(signal, ready.clone())?;
/// ready.wait();
/// assert!(ready.is_set());
/// child.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    seg: Arc<Segment>,
}

segment_handle_serde!(Event, Kind::Event, size_of::<RawEvent>());

impl Event {
    /// A new event, not set.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiproc::Event::new()?.is_set());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Self { seg: Segment::create(Kind::Event, size_of::<RawEvent>(), Shape::default())? })
    }

    fn raw(&self) -> &RawEvent {
        self.seg.at(0)
    }

    /// Sets the flag and wakes every waiter.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = multiproc::Event::new()?;
    /// event.set();
    /// assert!(event.is_set());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set(&self) {
        self.raw().set();
    }

    /// Resets the flag.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = multiproc::Event::new()?;
    /// event.set();
    /// event.clear();
    /// assert!(!event.is_set());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiproc::Event::new()?.is_set());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Waits until the flag is set.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = multiproc::Event::new()?;
    /// event.set();
    /// event.wait();
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait(&self) {
        self.raw().wait(None);
    }

    /// Waits at most `timeout`; returns whether the flag was set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let event = multiproc::Event::new()?;
    /// assert!(!event.wait_timeout(Duration::from_millis(5)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw().wait(deadline_after(timeout))
    }

    /// Awaits the flag: [`wait`](Event::wait) without holding a thread.
    /// Returns once the flag is set, or was set since the call began.
    /// **Cancel-safe**: it only looks.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ready = multiproc::Event::new()?;
    /// ready.set();
    /// ready.wait_async().await;
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn wait_async(&self) {
        use crate::aio::{Arm, Keep, Source, Waiting, Wake};
        use std::sync::atomic::Ordering;
        let (state, waiters) = self.raw().words();
        let start = state.load(Ordering::Acquire);
        let fired = |now: u32| now & 1 == 1 || now >> 1 != start >> 1;
        let mut waiting = Waiting::new(state);
        std::future::poll_fn(|cx| {
            waiting.poll(
                cx,
                || fired(state.load(Ordering::Acquire)).then_some(()),
                |waiting| {
                    let keep = Arc::clone(&self.seg) as Keep;
                    waiting.count(waiters, &keep);
                    let now = state.load(Ordering::SeqCst);
                    Some(Arm::on(Source::word(state, now, keep, Wake::All)))
                },
            )
        })
        .await;
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish()
    }
}
