//! PUBACK, PUBREC, PUBREL and PUBCOMP (spec 3.4-3.7): one shape, four packets, each
//! with its own fixed header and its own set of v5 reason codes. They share this
//! file because they differ only in those two constants.

use bytes::{BufMut, BytesMut};

use super::primitives::Reader;
use super::{
    put_header, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion, ReasonCode,
    ReasonContext,
};

macro_rules! ack_packet {
    ($(#[$doc:meta])* $name:ident, $byte1:expr, $prop_ctx:expr, $reason_ctx:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            pub pkid: u16,
            /// Always `Success` in v3, which has no reason code.
            pub reason: ReasonCode,
            pub properties: Properties,
        }

        impl $name {
            pub fn new(pkid: u16) -> $name {
                $name {
                    pkid,
                    reason: ReasonCode::Success,
                    properties: Properties::new(),
                }
            }

            pub fn with_reason(pkid: u16, reason: ReasonCode) -> $name {
                $name {
                    pkid,
                    reason,
                    properties: Properties::new(),
                }
            }

            pub(crate) fn decode(r: Reader, version: ProtocolVersion) -> Result<$name, DecodeError> {
                let (pkid, reason, properties) = decode_ack(r, version, $prop_ctx, $reason_ctx)?;
                Ok($name { pkid, reason, properties })
            }

            pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
                ack_body_len(version, self.reason, &self.properties)
            }

            pub(crate) fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
                encode_ack(out, $byte1, self.pkid, version, self.reason, &self.properties)
            }
        }
    };
}

ack_packet!(
    /// PUBACK: the answer to a QoS 1 PUBLISH.
    PubAck, 0x40, PropertyContext::PubAck, ReasonContext::PubAck
);
ack_packet!(
    /// PUBREC: the first answer to a QoS 2 PUBLISH.
    PubRec, 0x50, PropertyContext::PubRec, ReasonContext::PubRec
);
ack_packet!(
    /// PUBREL: releases a QoS 2 message after PUBREC.
    PubRel, 0x62, PropertyContext::PubRel, ReasonContext::PubRel
);
ack_packet!(
    /// PUBCOMP: completes the QoS 2 exchange.
    PubComp, 0x70, PropertyContext::PubComp, ReasonContext::PubComp
);

#[inline]
fn decode_ack(
    mut r: Reader,
    version: ProtocolVersion,
    prop_ctx: PropertyContext,
    reason_ctx: ReasonContext,
) -> Result<(u16, ReasonCode, Properties), DecodeError> {
    let pkid = match r.u16()? {
        0 => return Err(DecodeError::ZeroPacketId),
        id => id,
    };
    let mut reason = ReasonCode::Success;
    let mut properties = Properties::new();
    // v5 3.4.2.1: the reason code and the property length may be omitted.
    if version.is_v5() && !r.is_empty() {
        let code = r.u8()?;
        reason = ReasonCode::from_u8(code)
            .filter(|c| c.valid_in(reason_ctx))
            .ok_or(DecodeError::InvalidReasonCode(code))?;
        if !r.is_empty() {
            properties = Properties::decode(&mut r, prop_ctx)?;
        }
    }
    r.finish()?;
    Ok((pkid, reason, properties))
}

#[inline]
fn ack_body_len(version: ProtocolVersion, reason: ReasonCode, properties: &Properties) -> usize {
    if !version.is_v5() || (reason == ReasonCode::Success && properties.is_empty()) {
        2
    } else if properties.is_empty() {
        3
    } else {
        3 + properties.encoded_len()
    }
}

#[inline]
fn encode_ack(
    out: &mut BytesMut,
    byte1: u8,
    pkid: u16,
    version: ProtocolVersion,
    reason: ReasonCode,
    properties: &Properties,
) -> Result<(), EncodeError> {
    if pkid == 0 {
        return Err(EncodeError::ZeroPacketId);
    }
    if version.is_v5() {
        properties.check()?;
    }
    let body = ack_body_len(version, reason, properties);
    put_header(out, byte1, body)?;
    out.put_u16(pkid);
    if body > 2 {
        out.put_u8(reason.value());
    }
    if body > 3 {
        properties.encode(properties.body_len(), out);
    }
    Ok(())
}
