//! The request bodies the workers keep for retries, counted in
//! [`KEPT_BODY_BYTES`](crate::memory_bursts::KEPT_BODY_BYTES) so that the memory a burst of
//! them took goes back to the kernel once they are gone.

use bytes::Bytes;

use crate::memory_bursts::KEPT_BODY_BYTES;

/// A body kept for retries, counted while it lives.
pub(crate) struct KeptBody(Bytes);

impl KeptBody {
    pub(crate) fn new(bytes: Bytes) -> Self {
        KEPT_BODY_BYTES.add(bytes.len() as u64);
        KeptBody(bytes)
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl Drop for KeptBody {
    fn drop(&mut self) {
        KEPT_BODY_BYTES.sub(self.0.len() as u64);
    }
}
