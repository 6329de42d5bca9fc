//! The fixed header (spec 2.1): packet type, flags and remaining length.

use super::primitives::read_var_int;
use super::DecodeError;

/// MQTT control packet types (spec 2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    pub fn from_u8(v: u8) -> Result<PacketType, DecodeError> {
        use PacketType::*;
        Ok(match v {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 => Auth,
            other => return Err(DecodeError::InvalidPacketType(other)),
        })
    }

    /// Checks the four flag bits (spec 2.1.3): PUBREL, SUBSCRIBE and UNSUBSCRIBE
    /// carry 0b0010, PUBLISH its own flags (checked by PUBLISH), all others 0.
    pub fn check_flags(self, flags: u8) -> Result<(), DecodeError> {
        let expected = match self {
            PacketType::Publish => return Ok(()),
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
            _ => 0,
        };
        if flags == expected {
            Ok(())
        } else {
            Err(DecodeError::InvalidHeaderFlags {
                packet_type: self as u8,
                flags,
            })
        }
    }
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// Packet type (high nibble) and flags (low nibble).
    pub byte1: u8,
    /// The Remaining Length field.
    pub remaining_len: usize,
    /// Bytes taken by the fixed header itself (2 to 5).
    pub header_len: usize,
}

impl FixedHeader {
    /// Parses the fixed header at the start of `buf`; `Ok(None)` if it is incomplete.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
        let Some(&byte1) = buf.first() else {
            return Ok(None);
        };
        if byte1 >> 4 == 0 {
            return Err(DecodeError::InvalidPacketType(0));
        }
        Ok(read_var_int(&buf[1..])?.map(|(len, n)| FixedHeader {
            byte1,
            remaining_len: len as usize,
            header_len: 1 + n,
        }))
    }

    /// The whole packet's length: header plus remaining length.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}
