//! PUBLISH (spec 3.3): flags, topic name, packet identifier, properties, payload.
//! The hot path: topic and payload are slices of the received frame.

use bytes::{BufMut, Bytes, BytesMut};

use super::primitives::{check_field, put_binary, Reader};
use super::topic::check_name_chars;
use super::{
    put_header, ByteStr, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion,
    QoS,
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
        let topic = r.string()?;
        check_name_chars(topic.as_bytes()).map_err(|_| DecodeError::InvalidTopicName)?;
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

    /// The fixed header's first byte. DUP is written only for QoS 1 and 2: a QoS 0
    /// PUBLISH must not carry it (spec 3.3.1.1), just as it carries no packet identifier.
    #[inline]
    pub fn byte1(&self) -> u8 {
        let dup = self.dup && self.qos != QoS::AtMostOnce;
        0x30 | (u8::from(dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    #[inline]
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut len = 2 + self.topic.len() + self.payload.len();
        if self.qos != QoS::AtMostOnce {
            len += 2;
        }
        if version.is_v5() {
            len += self.properties.encoded_len();
        }
        len
    }

    /// Bytes on the wire for `version`, fixed header included.
    #[inline]
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let body = self.body_len(version);
        1 + super::var_int_len(body) + body
    }

    #[inline]
    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        check_field(self.topic.len())?;
        if self.qos != QoS::AtMostOnce && self.pkid == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        let v5 = version.is_v5();
        let props_len = if v5 {
            self.properties.check()?;
            self.properties.body_len()
        } else {
            0
        };
        let mut body = 2 + self.topic.len() + self.payload.len();
        if self.qos != QoS::AtMostOnce {
            body += 2;
        }
        if v5 {
            body += super::var_int_len(props_len) + props_len;
        }
        put_header(out, self.byte1(), body)?;
        put_binary(out, self.topic.as_bytes());
        if self.qos != QoS::AtMostOnce {
            out.put_u16(self.pkid);
        }
        if v5 {
            self.properties.encode(props_len, out);
        }
        out.put_slice(&self.payload);
        Ok(())
    }
}
