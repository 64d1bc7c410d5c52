//! `RawQueue`: the untyped queue under `Queue`, `SimpleQueue` and
//! `JoinableQueue`: a ring segment, and the encode/decode loops over it.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::PutError;
use crate::shm::ring::{self, Bytes, RawRing, Stop};
use crate::shm::segment::Shape;
use crate::shm::{Kind, Segment};
use crate::{Error, Result};

/// The default size of a queue's ring.
pub(crate) const DEFAULT_RING: usize = 1 << 20;

/// How a get or put may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// As long as it takes.
    Forever,
    /// Not at all (`try_` forms).
    Never,
    /// Until this instant.
    Until(Option<Instant>),
}

impl Wait {
    fn deadline(self) -> Option<Instant> {
        match self {
            Self::Forever => None,
            Self::Never => Some(Instant::now()),
            Self::Until(deadline) => deadline,
        }
    }
}

#[derive(Clone)]
pub(crate) struct RawQueue {
    seg: Arc<Segment>,
}

impl RawQueue {
    pub(crate) fn create(maxsize: usize, ring_bytes: usize) -> Result<Self> {
        let ring_bytes = ring_bytes.max(4096);
        let seg = Segment::create_ring(Kind::Queue, size_of::<RawRing>(), ring_bytes)?;
        seg.at::<RawRing>(0).init(maxsize as u64);
        Ok(Self { seg })
    }

    pub(crate) fn ring(&self) -> &RawRing {
        self.seg.at(0)
    }

    fn bytes(&self) -> Bytes {
        let (base, cap) = self.seg.ring();
        Bytes { base, cap }
    }

    /// Puts `item`, waiting as `wait` allows.
    pub(crate) fn put<T: Serialize>(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        let ring = self.ring();
        // Producers take turns; a `try_` put waits for its turn (short) but
        // not for room.
        let Some(mut producer) = ring.producer(self.bytes(), None) else {
            return Err(PutError::Full(item));
        };
        let stopped = |stop: Stop, item: T| match (stop, wait) {
            (Stop::Closed, _) => PutError::Closed(item),
            (_, Wait::Never) => PutError::Full(item),
            _ => PutError::Timeout(item),
        };
        let mut need = ring::HEADER + 8;
        loop {
            if let Err(stop) = producer.wait_for_room(need, true, wait.deadline()) {
                return Err(stopped(stop, item));
            }
            let max = producer.max_payload();
            let area = producer.payload_area();
            let area_len = area.len().min(max);
            match postcard::to_slice(&item, &mut area[..area_len]) {
                Ok(written) => {
                    let len = written.len();
                    producer.publish(len, ring::FIRST | ring::LAST);
                    return Ok(());
                }
                Err(postcard::Error::SerializeBufferFull) => {}
                Err(e) => return Err(PutError::Failed(item, Error::Encode { source: e.into() })),
            }
            let size = match postcard::experimental::serialized_size(&item) {
                Ok(size) => size,
                Err(e) => return Err(PutError::Failed(item, Error::Encode { source: e.into() })),
            };
            if size > max {
                return stream(&mut producer, item, wait, stopped);
            }
            need = ring::HEADER + size;
        }
    }

    /// Gets an item, waiting as `wait` allows.
    pub(crate) fn get<T: DeserializeOwned>(&self, wait: Wait) -> Result<T> {
        let ring = self.ring();
        let try_only = matches!(wait, Wait::Never);
        let Some(mut consumer) = ring.consumer(self.bytes(), wait.deadline(), try_only) else {
            return Err(if try_only { Error::Empty } else { Error::Timeout });
        };
        let mut partial: Option<Vec<u8>> = None;
        loop {
            match consumer.wait_for_record(wait.deadline(), partial.is_some()) {
                Ok(()) => {}
                Err(Stop::ProducerDied) => {
                    partial = None;
                    continue;
                }
                Err(Stop::Closed) => return Err(Error::Closed),
                Err(Stop::Timeout) => {
                    return Err(if try_only { Error::Empty } else { Error::Timeout });
                }
            }
            let Some(record) = consumer.peek() else {
                consumer.discard_all();
                return Err(Error::protocol("corrupted queue ring; its contents were dropped"));
            };
            let (flags, len) = (record.flags, record.payload.len());
            let first = flags & ring::FIRST != 0;
            let last = flags & ring::LAST != 0;
            match (partial.as_mut(), first) {
                (None, true) if last => {
                    let item = postcard::from_bytes(record.payload);
                    consumer.consume(len, true);
                    return item.map_err(|e| Error::Decode { source: e.into() });
                }
                (None, true) => {
                    partial = Some(record.payload.to_vec());
                    consumer.consume(len, false);
                }
                // The rest of a message whose consumer died: skip it.
                (None, false) => consumer.consume(len, last),
                // A new message while streaming: the streaming producer died.
                (Some(_), true) => partial = None,
                (Some(bytes), false) => {
                    bytes.extend_from_slice(record.payload);
                    consumer.consume(len, last);
                    if last {
                        let bytes = partial.take().unwrap_or_default();
                        return postcard::from_bytes(&bytes)
                            .map_err(|e| Error::Decode { source: e.into() });
                    }
                }
            }
        }
    }
}

/// Writes an item larger than the ring as a stream of records.
fn stream<T: Serialize>(
    producer: &mut crate::shm::ring::Producer<'_>,
    item: T,
    wait: Wait,
    stopped: impl Fn(Stop, T) -> PutError<T>,
) -> Result<(), PutError<T>> {
    let bytes = match postcard::to_allocvec(&item) {
        Ok(bytes) => bytes,
        Err(e) => return Err(PutError::Failed(item, Error::Encode { source: e.into() })),
    };
    let chunk_min = (producer.max_payload() / 4).max(8);
    let mut sent = 0;
    while sent < bytes.len() {
        let first = sent == 0;
        // Before the first piece the deadline applies; once a consumer may be
        // reading the stream, it is finished whatever the time.
        let deadline = if first { wait.deadline() } else { None };
        let want = ring::HEADER + chunk_min.min(bytes.len() - sent);
        if let Err(stop) = producer.wait_for_room(want, first, deadline) {
            return Err(stopped(stop, item));
        }
        let area = producer.payload_area();
        let n = area.len().min(bytes.len() - sent);
        area[..n].copy_from_slice(&bytes[sent..sent + n]);
        sent += n;
        let mut flags = 0;
        if first {
            flags |= ring::FIRST;
        }
        if sent == bytes.len() {
            flags |= ring::LAST;
        }
        producer.publish(n, flags);
    }
    Ok(())
}

impl RawQueue {
    /// Python's `qsize()`: messages in the queue now.
    pub(crate) fn len(&self) -> usize {
        usize::try_from(self.ring().len()).unwrap_or(usize::MAX)
    }
}

/// Serializes a queue as its segment.
impl Serialize for RawQueue {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        crate::shm::segment::serialize(&self.seg, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for RawQueue {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let seg =
            crate::shm::segment::deserialize(deserializer, Kind::Queue, Shape::default(), |_| {
                Some(size_of::<RawRing>())
            })?;
        Ok(Self { seg })
    }
}
