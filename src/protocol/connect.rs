//! CONNECT (spec 3.1): protocol name and level, flags, keep alive, properties, client
//! identifier, will, user name and password.

use bytes::{BufMut, Bytes, BytesMut};

use super::primitives::{check_field, put_binary, Reader};
use super::topic::validate_topic_name;
use super::{
    put_header, ByteStr, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion,
    QoS,
};

/// A will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: ByteStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will properties (v5): will delay, expiry, content type, response topic, ...
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1/3.1.1) or Clean Start (5.0).
    pub clean_start: bool,
    pub keep_alive: u16,
    pub properties: Properties,
    pub client_id: ByteStr,
    pub will: Option<Will>,
    pub username: Option<ByteStr>,
    pub password: Option<Bytes>,
}

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

impl Connect {
    /// A CONNECT with no will, credentials or properties.
    pub fn new(protocol: ProtocolVersion, client_id: impl Into<ByteStr>) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::new(),
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
        }
    }

    pub(crate) fn decode(mut r: Reader) -> Result<Connect, DecodeError> {
        let name = r.binary()?;
        let level = r.u8()?;
        let protocol = match (&name[..], level) {
            (b"MQTT", 4) => ProtocolVersion::V3_1_1,
            (b"MQTT", 5) => ProtocolVersion::V5,
            (b"MQIsdp", 3) => ProtocolVersion::V3_1,
            (b"MQTT", _) | (b"MQIsdp", _) => {
                return Err(DecodeError::UnsupportedProtocolLevel(level))
            }
            _ => return Err(DecodeError::InvalidProtocolName),
        };
        let flags = r.u8()?;
        if flags & FLAG_RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let will_qos = QoS::from_u8((flags >> 3) & 0x03)?;
        let has_will = flags & FLAG_WILL != 0;
        let will_retain = flags & FLAG_WILL_RETAIN != 0;
        if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let has_username = flags & FLAG_USERNAME != 0;
        let has_password = flags & FLAG_PASSWORD != 0;
        if has_password && !has_username && !protocol.is_v5() {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16()?;
        let properties = if protocol.is_v5() {
            Properties::decode(&mut r, PropertyContext::Connect)?
        } else {
            Properties::new()
        };
        let client_id = r.string()?;
        let will = if has_will {
            let properties = if protocol.is_v5() {
                Properties::decode(&mut r, PropertyContext::Will)?
            } else {
                Properties::new()
            };
            let topic = r.string()?;
            validate_topic_name(&topic).map_err(|_| DecodeError::InvalidTopicName)?;
            let payload = r.binary()?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.string()?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary()?)
        } else {
            None
        };
        r.finish()?;
        Ok(Connect {
            protocol,
            clean_start: flags & FLAG_CLEAN != 0,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    fn protocol_name(&self) -> &'static [u8] {
        match self.protocol {
            ProtocolVersion::V3_1 => b"MQIsdp",
            _ => b"MQTT",
        }
    }

    pub(crate) fn body_len(&self) -> usize {
        let v5 = self.protocol.is_v5();
        let mut len = 2 + self.protocol_name().len() + 1 + 1 + 2;
        if v5 {
            len += self.properties.encoded_len();
        }
        len += 2 + self.client_id.len();
        if let Some(w) = &self.will {
            if v5 {
                len += w.properties.encoded_len();
            }
            len += 2 + w.topic.len() + 2 + w.payload.len();
        }
        if let Some(u) = &self.username {
            len += 2 + u.len();
        }
        if let Some(p) = &self.password {
            len += 2 + p.len();
        }
        len
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let v5 = self.protocol.is_v5();
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::NotInVersion);
        }
        check_field(self.client_id.len())?;
        if let Some(w) = &self.will {
            check_field(w.topic.len())?;
            check_field(w.payload.len())?;
            w.properties.check()?;
        }
        if let Some(u) = &self.username {
            check_field(u.len())?;
        }
        if let Some(p) = &self.password {
            check_field(p.len())?;
        }
        self.properties.check()?;

        put_header(out, 0x10, self.body_len())?;
        put_binary(out, self.protocol_name());
        out.put_u8(self.protocol.level());
        let mut flags = 0u8;
        if self.clean_start {
            flags |= FLAG_CLEAN;
        }
        if let Some(w) = &self.will {
            flags |= FLAG_WILL | ((w.qos as u8) << 3);
            if w.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= FLAG_USERNAME;
        }
        if self.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        out.put_u8(flags);
        out.put_u16(self.keep_alive);
        if v5 {
            self.properties.encode(self.properties.body_len(), out);
        }
        put_binary(out, self.client_id.as_bytes());
        if let Some(w) = &self.will {
            if v5 {
                w.properties.encode(w.properties.body_len(), out);
            }
            put_binary(out, w.topic.as_bytes());
            put_binary(out, &w.payload);
        }
        if let Some(u) = &self.username {
            put_binary(out, u.as_bytes());
        }
        if let Some(p) = &self.password {
            put_binary(out, p);
        }
        Ok(())
    }
}
