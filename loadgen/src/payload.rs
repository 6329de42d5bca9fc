//! The 20-byte header every generated payload starts with: publisher id (u32),
//! sequence number (u64) and send time (u64, ns on the process clock), little
//! endian. The rest of the payload is padding up to the configured size.

/// Bytes the header takes; the smallest payload the generator sends.
pub const HEADER_LEN: usize = 20;

/// What a subscriber learns from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub publisher: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

impl Header {
    /// Writes the header over the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`HEADER_LEN`]; templates are sized by the caller.
    #[inline]
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&self.publisher.to_le_bytes());
        buf[4..12].copy_from_slice(&self.seq.to_le_bytes());
        buf[12..20].copy_from_slice(&self.sent_ns.to_le_bytes());
    }

    /// Reads the header from the front of a payload; `None` if it is too short.
    #[inline]
    pub fn read(payload: &[u8]) -> Option<Header> {
        let h = payload.get(..HEADER_LEN)?;
        Some(Header {
            publisher: u32::from_le_bytes(h[0..4].try_into().ok()?),
            seq: u64::from_le_bytes(h[4..12].try_into().ok()?),
            sent_ns: u64::from_le_bytes(h[12..20].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_short_payloads() {
        let h = Header {
            publisher: 7,
            seq: u64::MAX - 1,
            sent_ns: 123_456_789,
        };
        let mut buf = [0u8; 32];
        h.write(&mut buf);
        assert_eq!(Header::read(&buf), Some(h));
        assert_eq!(Header::read(&buf[..19]), None);
    }
}
