//! What a CSP operation or process can end with.

use serde::{Deserialize, Serialize};

/// Why a channel operation did not complete (PyCSP's `ChannelRetireException`
/// and `ChannelPoisonException`, and the failures of the timed and `try_`
/// forms). It is a serde type, so an OS process's `csp::Result` comes back
/// whole.
///
/// # Examples
///
/// ```
/// use multiproc::csp::{Channel, Error};
///
/// let ch = Channel::<u8>::buffered(1)?;
/// let (r, w) = (ch.reader(), ch.writer());
/// w.retire();
/// assert!(r.read().unwrap_err().is_retired());
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every end of the other side retired (for readers: after what was
    /// buffered was read).
    #[error("the channel is retired")]
    Retired,
    /// An end poisoned the channel.
    #[error("the channel is poisoned")]
    Poisoned,
    /// A `_timeout` form ran out of time; nothing was read or written.
    #[error("timed out")]
    Timeout,
    /// A `try_` form found no partner (or no value, or no room) now.
    #[error("no partner is ready")]
    WouldBlock,
    /// Anything else (the channel's shared memory, a value that did not
    /// encode or decode), as a message.
    #[error("{message}")]
    Failed {
        /// What happened.
        message: String,
    },
}

impl Error {
    /// Whether this is [`Error::Retired`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiproc::csp::Error::Retired.is_retired());
    /// ```
    pub fn is_retired(&self) -> bool {
        matches!(self, Self::Retired)
    }

    /// Whether this is [`Error::Poisoned`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiproc::csp::Error::Poisoned.is_poisoned());
    /// ```
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Self::Poisoned)
    }
}

impl From<crate::Error> for Error {
    fn from(error: crate::Error) -> Self {
        match error {
            crate::Error::Timeout => Self::Timeout,
            crate::Error::WouldBlock => Self::WouldBlock,
            crate::Error::Retired => Self::Retired,
            crate::Error::Poisoned => Self::Poisoned,
            other => Self::Failed { message: other.to_string() },
        }
    }
}

impl From<Error> for crate::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Retired => Self::Retired,
            Error::Poisoned => Self::Poisoned,
            Error::Timeout => Self::Timeout,
            Error::WouldBlock => Self::WouldBlock,
            Error::Failed { message } => Self::Csp { message },
        }
    }
}

/// The result of a channel operation or of a CSP process.
pub type Result<T, E = Error> = std::result::Result<T, E>;
