//! Requests and responses between proxies and the manager's server.
//!
//! The envelope is postcard (like every other message of the library); the
//! values inside are CBOR [`Blob`]s the server keeps as they are.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::dynval::Blob;
use crate::Error;
use crate::connection::Connection;
use crate::queue::Queue;
use crate::shm::liveness::Liveness;

/// What kind of object a proxy points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    List,
    Dict,
    Namespace,
    Value,
    Array,
    Lock,
    RLock,
    Semaphore,
    Condition,
    Event,
    Barrier,
    Queue,
    /// A user's type registered with the manager.
    Custom,
}

/// The initial contents of a new object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Create {
    List(Vec<Blob>),
    Dict(Vec<(Blob, Blob)>),
    Namespace,
    Value(Blob),
    Array(Vec<Blob>),
    Lock,
    RLock,
    /// A semaphore's value and, for a bounded one, its bound.
    Semaphore(u64, Option<u64>),
    Condition,
    Event,
    Barrier(u64),
    /// A queue's maximum size (0: unbounded).
    Queue(u64),
    /// A registered type, by name, and its initial value.
    Custom(String, Blob),
}

/// How long a blocking operation may wait.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum Wait {
    /// Do not wait at all.
    Never,
    /// Wait at most this many milliseconds.
    Millis(u64),
    /// Wait as long as it takes.
    Forever,
}

/// How an acquisition went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome {
    Acquired,
    /// Acquired, but the previous holder's process died holding it.
    OwnerDied,
    WouldBlock,
    Timeout,
}

/// Which part of an object an optimistic update reads and writes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Part {
    /// The whole value (a `Value`) or all elements (a list).
    Whole,
    /// One attribute of a namespace.
    Attr(String),
    /// One entry of a dict.
    Key(Blob),
}

/// An operation on one object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Append(Blob),
    Extend(Vec<Blob>),
    Get(i64),
    Set(i64, Blob),
    Insert(i64, Blob),
    Pop(Option<i64>),
    Remove(Blob),
    Len,
    Contains(Blob),
    Index(Blob),
    Count(Blob),
    Clear,
    Slice(Option<i64>, Option<i64>),
    Sort {
        reverse: bool,
    },
    All,
    DictInsert(Blob, Blob),
    DictGet(Blob),
    DictRemove(Blob),
    Keys,
    Values,
    Items,
    DictExtend(Vec<(Blob, Blob)>),
    SetDefault(Blob, Blob),
    SetAttr(String, Blob),
    GetAttr(String),
    DelAttr(String),
    Load,
    Store(Blob),
    Repr,
    Acquire(Wait),
    Release,
    /// Releases `n` units of a semaphore.
    ReleaseN(u64),
    IsSet,
    SetFlag,
    ClearFlag,
    WaitFlag(Wait),
    /// A condition's wait: releases its lock, waits for a notification,
    /// takes the lock back.
    CondWait(Wait),
    Notify(u64),
    BarrierWait(Wait),
    Abort,
    Reset,
    /// A barrier's parties, waiting count and broken flag.
    BarrierState,
    Put(Blob, Wait),
    Take(Wait),
    TaskDone,
    Join(Wait),
    /// Calls a method of a registered type's object.
    Invoke(Blob),
    /// Reads `Part` with the object's version.
    Fetch(Part),
    /// Writes `Part` (`None` deletes it) if the object is still at `version`.
    CompareStore(Part, u64, Option<Vec<Blob>>),
    /// A list's append log (local clients only: it travels as descriptors).
    AppendLog,
}

/// A request from a proxy.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Checks that the server answers.
    Ping,
    /// Moves this session onto a shared-memory pipe (local clients).
    Upgrade,
    /// A new object, and the type of the proxy that made it (see
    /// [`proxy_type`](super::proxy::proxy_type)), which a `Lookup` checks.
    Create(Create, String),
    Call(u64, Kind, Op),
    /// Gives object `id` a name that other programs can look up.
    Publish(String, u64),
    Lookup(String),
    Shutdown,
    /// How many objects the server keeps (a diagnostic).
    ObjectCount,
    /// One-way (no answer): this session's process holds a proxy of `id`.
    /// Sent on a process's keeper session (see `client`), which lives as
    /// long as the process: when it ends, its holds end with it.
    Hold(u64),
    /// One-way: this session's process dropped its last proxy of `id`.
    Unhold(u64),
    /// One-way: a proxy of `id` was serialized to travel, under `token`;
    /// it keeps the object until the proxy is deserialized and held.
    Lend(u64, u64),
    /// One-way: the proxy lent under `token` arrived and is held.
    Repay(u64),
    /// One-way: a proxy of `id` was stored inside another object: `id`
    /// lives until the server stops.
    Pin(u64),
    /// A client asks a standalone server (`ManagerServer::serve`) to stop;
    /// a server a manager started refuses (its owner sends `Shutdown`).
    Stop,
}

impl Request {
    /// Whether the server answers this request.
    pub(crate) fn answered(&self) -> bool {
        !matches!(
            self,
            Self::Hold(_) | Self::Unhold(_) | Self::Lend(..) | Self::Repay(_) | Self::Pin(_)
        )
    }
}

/// The server's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Done,
    Upgraded(Connection<Request, Response>),
    Created(u64),
    /// A named object: its id, kind and the type of its creator's proxy.
    Found(u64, Kind, String),
    Value(Blob),
    Maybe(Option<Blob>),
    Many(Vec<Blob>),
    Pairs(Vec<(Blob, Blob)>),
    Count(u64),
    Bool(bool),
    Text(String),
    Versioned(u64, Option<Vec<Blob>>),
    Outcome(Outcome),
    /// A barrier's parties, waiting count and broken flag.
    Barrier(u64, u64, bool),
    /// A list's append log: local clients append there without a request;
    /// the server folds it into the list before anything else touches it.
    /// With it, the word that tells whether the server still lives.
    Log(Queue<Blob>, Liveness),
    Failed(Failure),
}

/// Why a request failed, as it travels back.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Failure {
    IndexOutOfRange { index: i64, len: u64 },
    KeyNotFound,
    NoAttribute(String),
    ValueNotFound,
    NotOwner,
    TooManyReleases,
    BrokenBarrier,
    Timeout,
    Empty,
    Full,
    TaskDoneTooOften,
    Other(String),
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::IndexOutOfRange { index, len } => Error::IndexOutOfRange { index, len },
            Failure::KeyNotFound => Error::KeyNotFound,
            Failure::NoAttribute(name) => Error::NoAttribute { name },
            Failure::ValueNotFound => Error::ValueNotFound,
            Failure::NotOwner => Error::NotOwner,
            Failure::TooManyReleases => Error::TooManyReleases,
            Failure::BrokenBarrier => Error::BrokenBarrier,
            Failure::Timeout => Error::Timeout,
            Failure::Empty => Error::Empty,
            Failure::Full => Error::Full,
            Failure::TaskDoneTooOften => Error::TaskDoneTooOften,
            Failure::Other(message) => Error::Manager { message },
        }
    }
}

impl Wait {
    /// The wait for an optional timeout.
    pub(crate) fn from_timeout(timeout: Option<Duration>) -> Self {
        match timeout {
            None => Self::Forever,
            Some(t) => Self::Millis(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// When waiting ends (`None`: never), counted from now.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Self::Never => Some(Instant::now()),
            Self::Millis(ms) => Instant::now().checked_add(Duration::from_millis(ms)),
            Self::Forever => None,
        }
    }
}
