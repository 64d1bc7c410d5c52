//! Serde for handles that are one segment.

/// Implements `Serialize`/`Deserialize` for `$ty { seg: Arc<Segment> }`,
/// whose segment is of kind `$kind` with a body of at least `$body` bytes.
macro_rules! segment_handle_serde {
    ($ty:ident, $kind:expr, $body:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                crate::shm::segment::serialize(&self.seg, serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let shape = crate::shm::segment::Shape::default();
                let seg =
                    crate::shm::segment::deserialize(deserializer, $kind, shape, |_| Some($body))?;
                Ok(Self { seg })
            }
        }
    };
}

pub(crate) use segment_handle_serde;
