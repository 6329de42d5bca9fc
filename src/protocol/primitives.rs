//! Wire primitives (spec 1.5): variable byte integers, big-endian integers, UTF-8
//! strings and binary data, read zero-copy from a frozen frame and written into a
//! caller's `BytesMut`.

use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Deref;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{DecodeError, EncodeError};

/// The largest value a variable byte integer can carry (four bytes).
pub const MAX_VAR_INT: u32 = 268_435_455;

/// Reads a variable byte integer from the start of `buf`.
///
/// `Ok(None)` means more bytes are needed; an over-long or non-minimal encoding
/// (spec 1.5.5, "MUST use the minimum number of bytes") is malformed.
#[inline]
pub fn read_var_int(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for i in 0..4 {
        let Some(&byte) = buf.get(i) else {
            return Ok(None);
        };
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(DecodeError::MalformedVarInt);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::MalformedVarInt)
}

/// How many bytes `value` takes as a variable byte integer.
#[inline]
pub fn var_int_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// `value` as a variable byte integer in the low bytes of a little-endian word, and
/// how many bytes it takes. The caller guarantees `value <= MAX_VAR_INT`.
#[inline(always)]
fn var_int_word(value: usize) -> (u32, usize) {
    debug_assert!(value <= MAX_VAR_INT as usize);
    let v = value as u32;
    // Seven bits to a byte, then the continuation bit on every byte but the last.
    let groups = (v & 0x7f) | (v << 1 & 0x7f00) | (v << 2 & 0x7f_0000) | (v << 3 & 0x7f00_0000);
    let n = 1
        + usize::from(value >= 0x80)
        + usize::from(value >= 0x4000)
        + usize::from(value >= 0x20_0000);
    const MORE: [u32; 4] = [0, 0x80, 0x8080, 0x80_8080];
    (groups | MORE[n - 1], n)
}

/// Writes `value` as a variable byte integer. The caller guarantees `value <= MAX_VAR_INT`.
#[inline]
pub fn put_var_int(out: &mut BytesMut, value: usize) {
    debug_assert!(value <= MAX_VAR_INT as usize);
    let mut v = value;
    loop {
        let mut byte = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if v == 0 {
            break;
        }
    }
}

/// Appends up to `len` bytes to `out`, written by `fill` through a `Writer` straight
/// into reserved capacity: one capacity check for the whole packet instead of one per
/// field. Only the bytes `fill` writes are appended, whatever `len` said.
#[inline(always)]
pub(crate) fn append(out: &mut BytesMut, len: usize, fill: impl FnOnce(&mut Writer<'_>)) {
    out.reserve(len + Writer::SLACK);
    let mut w = Writer {
        buf: out.spare_capacity_mut(),
        pos: 0,
    };
    fill(&mut w);
    let written = w.pos;
    // SAFETY: `Writer` only ever moves `pos` over bytes it has just initialised, so
    // the first `written` bytes of the spare capacity are initialised, and `written`
    // is within the spare capacity because every write is bounds-checked against it.
    unsafe { out.set_len(out.len() + written) };
}

/// Writes fields into a buffer's spare capacity; see `append`. Every write is
/// bounds-checked (a wrong length panics, it cannot write out of bounds), and the
/// fixed-size ones compile to single stores.
pub(crate) struct Writer<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    /// Bytes written so far; all of `buf[..pos]` is initialised.
    pos: usize,
}

impl Writer<'_> {
    /// Room reserved past the packet: a variable byte integer or a fixed header is
    /// stored as a whole word and then cut to its length.
    const SLACK: usize = 8;

    #[inline(always)]
    pub fn array<const N: usize>(&mut self, bytes: [u8; N]) {
        let dst: &mut [MaybeUninit<u8>; N] = (&mut self.buf[self.pos..self.pos + N])
            .try_into()
            .expect("a slice of N bytes");
        // One N-byte store; writing byte by byte is not always merged.
        *dst = bytes.map(MaybeUninit::new);
        self.pos += N;
    }

    #[inline(always)]
    pub fn slice(&mut self, data: &[u8]) {
        let dst = &mut self.buf[self.pos..self.pos + data.len()];
        // SAFETY: `dst` and `data` have the same length, `MaybeUninit<u8>` has the
        // layout of `u8`, and `dst` is borrowed mutably so it cannot overlap `data`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst.as_mut_ptr().cast::<u8>(), data.len())
        };
        self.pos += data.len();
    }

    #[inline(always)]
    pub fn u8(&mut self, v: u8) {
        self.array([v]);
    }

    #[inline(always)]
    pub fn u16(&mut self, v: u16) {
        self.array(v.to_be_bytes());
    }

    /// A variable byte integer; the caller guarantees `value <= MAX_VAR_INT`.
    #[inline(always)]
    pub fn var_int(&mut self, value: usize) {
        let (word, n) = var_int_word(value);
        self.array(word.to_le_bytes());
        // Cut back to the `n` bytes the value takes; the rest is overwritten next
        // or left outside the buffer's length.
        self.pos -= 4 - n;
    }

    /// A fixed header and the two-byte length that starts every PUBLISH body (the
    /// topic's): one store for bodies under 16 KiB.
    #[inline(always)]
    pub fn header_and_len(&mut self, byte1: u8, body_len: usize, len: u16) {
        let [hi, lo] = len.to_be_bytes();
        let low7 = body_len as u8 & 0x7f;
        if body_len < 0x80 {
            self.array([byte1, low7, hi, lo]);
        } else if body_len < 0x4000 {
            self.array([byte1, low7 | 0x80, (body_len >> 7) as u8, hi, lo]);
        } else {
            self.u8(byte1);
            self.var_int(body_len);
            self.array([hi, lo]);
        }
    }

    /// A two-byte length prefix and `data`; the caller guarantees it fits.
    #[inline(always)]
    pub fn field(&mut self, data: &[u8]) {
        self.u16(data.len() as u16);
        self.slice(data);
    }
}

/// Writes a two-byte length prefix and `data`.
#[inline]
pub fn put_binary(out: &mut BytesMut, data: &[u8]) {
    out.put_u16(data.len() as u16);
    out.put_slice(data);
}

/// Checks that a string or binary field fits its two-byte length prefix.
#[inline]
pub fn check_field(len: usize) -> Result<(), EncodeError> {
    if len > u16::MAX as usize {
        Err(EncodeError::FieldTooLong(len))
    } else {
        Ok(())
    }
}

/// Checks MQTT's rules for a UTF-8 Encoded String (spec 1.5.4): well-formed UTF-8
/// (which already excludes surrogates) and no U+0000.
#[inline]
pub fn check_utf8(data: &[u8]) -> Result<(), DecodeError> {
    if is_plain_ascii(data) {
        return Ok(());
    }
    if data.contains(&0) || std::str::from_utf8(data).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    Ok(())
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// High bit set in some byte iff `w` holds a zero byte or a non-ASCII byte.
#[inline(always)]
fn nul_or_high(w: u64) -> u64 {
    (w | (w.wrapping_sub(ONES) & !w)) & HIGH
}

/// Like `nul_or_high`, also flagging '+' and '#'.
#[inline(always)]
fn nul_high_or_wildcard(w: u64) -> u64 {
    let plus = w ^ u64::from_ne_bytes([b'+'; 8]);
    let hash = w ^ u64::from_ne_bytes([b'#'; 8]);
    nul_or_high(w)
        | (plus.wrapping_sub(ONES) & !plus & HIGH)
        | (hash.wrapping_sub(ONES) & !hash & HIGH)
}

/// Runs `bad` over `data` eight bytes at a time. A tail shorter than eight bytes is
/// read as the last eight bytes of `data`, overlapping bytes already checked, or,
/// when `data` itself is shorter, assembled in a register padded with 0x01. Neither
/// goes through memory: copying the tail into a stack buffer and reading it back as
/// one word stalls on store forwarding, which cost more than the scan itself.
#[inline(always)]
fn scan(data: &[u8], bad: impl Fn(u64) -> u64) -> bool {
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap());
    let mut chunks = data.chunks_exact(8);
    let mut acc = 0;
    for c in &mut chunks {
        acc |= bad(word(c));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        acc |= bad(match data.len().checked_sub(8) {
            Some(last) => word(&data[last..]),
            None => short_word(rest),
        });
    }
    acc == 0
}

/// Up to seven bytes in a word, read as two overlapping halves where they fill it
/// and padded with 0x01 where they do not. Byte order and repeats do not matter: the
/// scans only ask whether some byte of the word is bad.
#[inline(always)]
fn short_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    let u32_at = |i: usize| u64::from(u32::from_ne_bytes(rest[i..i + 4].try_into().unwrap()));
    let u16_at = |i: usize| u64::from(u16::from_ne_bytes(rest[i..i + 2].try_into().unwrap()));
    match n {
        4.. => u32_at(0) | u32_at(n - 4) << 32,
        2 | 3 => (ONES & !0xffff_ffff) | u16_at(0) | u16_at(n - 2) << 16,
        1 => (ONES & !0xff) | u64::from(rest[0]),
        0 => ONES,
    }
}

/// Every byte in 0x01..=0x7f: valid MQTT UTF-8 with nothing more to check.
#[inline]
fn is_plain_ascii(data: &[u8]) -> bool {
    scan(data, nul_or_high)
}

/// A plain-ASCII topic name without wildcards.
#[inline]
fn is_plain_topic_name(data: &[u8]) -> bool {
    scan(data, nul_high_or_wildcard)
}

/// A UTF-8 Encoded String held as shared bytes: validated once, sliced from the
/// received frame without copying, cloned by reference count.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteStr(Bytes);

// Hashes as the `str` it holds, so maps keyed by `ByteStr` can be looked up by `&str`.
impl std::hash::Hash for ByteStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::borrow::Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl ByteStr {
    /// A string from a static literal.
    pub const fn from_static(s: &'static str) -> ByteStr {
        ByteStr(Bytes::from_static(s.as_bytes()))
    }

    /// Validates `bytes` as an MQTT UTF-8 string.
    pub fn from_utf8(bytes: Bytes) -> Result<ByteStr, DecodeError> {
        check_utf8(&bytes)?;
        Ok(ByteStr(bytes))
    }

    /// Wraps bytes already known to be UTF-8, without checking them again.
    ///
    /// # Safety
    ///
    /// `bytes` must be valid UTF-8: `as_str` hands them out as a `str`.
    pub(crate) unsafe fn from_utf8_unchecked(bytes: Bytes) -> ByteStr {
        ByteStr(bytes)
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either validates the bytes as UTF-8
        // (`from_utf8`) or takes them from a `&str`/`String`.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying shared bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ByteStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> ByteStr {
        ByteStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> ByteStr {
        ByteStr(Bytes::from(s))
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cursor over one packet's body. Slices it hands out share the frame's buffer.
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::UnexpectedEof);
        }
        Ok(self.buf.get_u8())
    }

    #[inline]
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(DecodeError::UnexpectedEof);
        }
        Ok(self.buf.get_u16())
    }

    /// A variable byte integer; running out of bytes inside one is malformed here,
    /// because the whole packet is already buffered.
    #[inline]
    pub fn var_int(&mut self) -> Result<u32, DecodeError> {
        match read_var_int(&self.buf)? {
            Some((value, len)) => {
                self.buf.advance(len);
                Ok(value)
            }
            None => Err(DecodeError::UnexpectedEof),
        }
    }

    #[inline]
    pub fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < len {
            return Err(DecodeError::UnexpectedEof);
        }
        Ok(self.buf.split_to(len))
    }

    /// Binary Data: a two-byte length and that many bytes.
    #[inline]
    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// A UTF-8 Encoded String.
    #[inline]
    pub fn string(&mut self) -> Result<ByteStr, DecodeError> {
        ByteStr::from_utf8(self.binary()?)
    }

    /// A topic name: a UTF-8 string without wildcards, checked in one pass when it is
    /// plain ASCII.
    #[inline]
    pub fn topic_name(&mut self) -> Result<ByteStr, DecodeError> {
        let raw = self.binary()?;
        if is_plain_topic_name(&raw) {
            return Ok(ByteStr(raw));
        }
        let s = ByteStr::from_utf8(raw)?;
        super::topic::check_name_chars(s.as_bytes()).map_err(|_| DecodeError::InvalidTopicName)?;
        Ok(s)
    }

    /// Everything that is left.
    #[inline]
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails unless every byte was consumed.
    #[inline]
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    fn slow_ascii(d: &[u8]) -> bool {
        d.iter().all(|&b| (1..=0x7f).contains(&b))
    }

    #[test]
    fn fast_paths_agree() {
        let alphabet = [
            0u8, 1, b'+', b'#', b'a', b'/', 0x7f, 0x80, 0xc3, 0xff, b'*', b'$',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let mut s = seed;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if s >> 60 < 12 {
                        b'a'
                    } else {
                        alphabet[((s >> 33) % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            assert_eq!(is_plain_ascii(&data), slow_ascii(&data), "{data:?}");
            assert_eq!(
                is_plain_topic_name(&data),
                slow_ascii(&data) && !data.iter().any(|&b| b == b'+' || b == b'#'),
                "{data:?}"
            );
        }
    }
}
