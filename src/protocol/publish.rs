//! PUBLISH (spec 3.3): flags, topic name, packet identifier, properties, payload.
//! The hot path: topic and payload are slices of the received frame.

use bytes::{Bytes, BytesMut};

use super::primitives::{append, check_field, Reader};
use super::{
    var_int_len, ByteStr, DecodeError, EncodeError, Properties, Property, PropertyContext,
    ProtocolVersion, QoS, MAX_VAR_INT,
};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in v5 when a Topic Alias property names the topic.
    pub topic: ByteStr,
    /// 0 for QoS 0, non-zero otherwise.
    pub pkid: u16,
    pub properties: Properties,
    pub payload: Bytes,
}

impl Publish {
    pub fn new(topic: impl Into<ByteStr>, qos: QoS, payload: impl Into<Bytes>) -> Publish {
        Publish {
            topic: topic.into(),
            qos,
            payload: payload.into(),
            ..Publish::default()
        }
    }

    #[inline]
    pub(crate) fn decode(
        flags: u8,
        mut r: Reader,
        version: ProtocolVersion,
    ) -> Result<Publish, DecodeError> {
        let qos = QoS::from_u8((flags >> 1) & 0x03)?;
        let dup = flags & 0x08 != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQoS0);
        }
        let topic = r.topic_name()?;
        let pkid = if qos == QoS::AtMostOnce {
            0
        } else {
            match r.u16()? {
                0 => return Err(DecodeError::ZeroPacketId),
                id => id,
            }
        };
        let properties = if version.is_v5() {
            Properties::decode(&mut r, PropertyContext::Publish)?
        } else {
            Properties::new()
        };
        if topic.is_empty() {
            if !version.is_v5() {
                return Err(DecodeError::InvalidTopicName);
            }
            if properties.topic_alias().is_none() {
                return Err(DecodeError::EmptyTopicWithoutAlias);
            }
        }
        Ok(Publish {
            dup,
            qos,
            retain: flags & 0x01 != 0,
            topic,
            pkid,
            properties,
            payload: r.rest(),
        })
    }

    /// The wire form of this packet, borrowing its fields.
    #[inline]
    pub fn parts(&self) -> OutgoingPublish<'_> {
        OutgoingPublish {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            pkid: self.pkid,
            topic: self.topic.as_bytes(),
            properties: &self.properties,
            extra: &[],
            payload: &self.payload,
        }
    }

    /// The fixed header's first byte.
    #[inline]
    pub fn byte1(&self) -> u8 {
        self.parts().byte1()
    }

    #[inline]
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        self.parts().body_len(version)
    }

    /// Bytes on the wire for `version`, fixed header included.
    #[inline]
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        self.parts().encoded_len(version)
    }

    /// Out of line, with `OutgoingPublish::encode` inlined into it: the parts are
    /// then read from `self` where they are rather than gathered into a struct first.
    #[inline(never)]
    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.parts().encode(version, out)
    }
}

/// A PUBLISH as borrowed parts: what the broker writes when it delivers one shared
/// message to many subscribers, each with its own packet id, flags and extra
/// properties (remaining expiry, subscription identifiers), without building a
/// `Publish` or touching the shared buffers' reference counts.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingPublish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub pkid: u16,
    pub topic: &'a [u8],
    /// Properties as received (v5 only; ignored for v3).
    pub properties: &'a Properties,
    /// Properties appended after `properties` (v5 only).
    pub extra: &'a [Property],
    pub payload: &'a [u8],
}

impl OutgoingPublish<'_> {
    /// The fixed header's first byte. DUP is written only for QoS 1 and 2: a QoS 0
    /// PUBLISH must not carry it (spec 3.3.1.1), just as it carries no packet identifier.
    #[inline]
    pub fn byte1(&self) -> u8 {
        let dup = self.dup && self.qos != QoS::AtMostOnce;
        0x30 | (u8::from(dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    #[inline]
    fn props_len(&self) -> usize {
        self.properties.body_len() + self.extra.iter().map(Property::encoded_len).sum::<usize>()
    }

    #[inline]
    fn body_len_with(&self, version: ProtocolVersion, props_len: usize) -> usize {
        let mut len = 2 + self.topic.len() + self.payload.len();
        if self.qos != QoS::AtMostOnce {
            len += 2;
        }
        if version.is_v5() {
            len += var_int_len(props_len) + props_len;
        }
        len
    }

    #[inline]
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let props = if version.is_v5() { self.props_len() } else { 0 };
        self.body_len_with(version, props)
    }

    /// Bytes on the wire for `version`, fixed header included.
    #[inline]
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let body = self.body_len(version);
        1 + var_int_len(body) + body
    }

    /// Appends the packet to `out`. Inlined into its two callers, `Publish::encode`
    /// and the broker's delivery.
    #[inline(always)]
    pub fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        check_field(self.topic.len())?;
        let with_pkid = self.qos != QoS::AtMostOnce;
        if with_pkid && self.pkid == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        let v5 = version.is_v5();
        let props_len = if v5 {
            let mut len = self.properties.checked_body_len()?;
            for p in self.extra {
                p.check()?;
                len += p.encoded_len();
            }
            len
        } else {
            0
        };
        let body = self.body_len_with(version, props_len);
        if body > MAX_VAR_INT as usize {
            return Err(EncodeError::PacketTooLarge(body));
        }
        append(out, 1 + var_int_len(body) + body, |w| {
            w.header_and_len(self.byte1(), body, self.topic.len() as u16);
            w.slice(self.topic);
            if with_pkid {
                w.u16(self.pkid);
            }
            if v5 {
                w.var_int(props_len);
                self.properties.write(w);
                for p in self.extra {
                    p.write(w);
                }
            }
            w.slice(self.payload);
        });
        Ok(())
    }
}
