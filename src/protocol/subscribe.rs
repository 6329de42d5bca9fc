//! SUBSCRIBE (spec 3.8): packet identifier, properties (one subscription identifier
//! at most) and a list of topic filters with their subscription options.

use bytes::{BufMut, BytesMut};

use super::primitives::{check_field, put_binary, Reader};
use super::topic::{parse_shared, validate_topic_filter};
use super::{
    put_header, ByteStr, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion,
    QoS,
};

/// When retained messages are sent for a new subscription (v5 3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    #[default]
    SendAtSubscribe = 0,
    SendAtSubscribeIfNew = 1,
    DoNotSend = 2,
}

/// Subscription options; in v3 only `qos` exists and the rest keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    fn decode(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
        if !version.is_v5() {
            if byte & 0xfc != 0 {
                return Err(DecodeError::InvalidSubscriptionOptions);
            }
            return Ok(SubscriptionOptions {
                qos: QoS::from_u8(byte)?,
                ..SubscriptionOptions::default()
            });
        }
        if byte & 0xc0 != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions);
        }
        let retain_handling = match (byte >> 4) & 0x03 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        // v5 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3"
        // (in 3.1.1 it is malformed, as above).
        let qos = QoS::from_u8(byte & 0x03).map_err(|_| DecodeError::InvalidSubscriptionQoS)?;
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & 0x04 != 0,
            retain_as_published: byte & 0x08 != 0,
            retain_handling,
        })
    }

    fn encode(&self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos as u8;
        if version.is_v5() {
            byte |= u8::from(self.no_local) << 2;
            byte |= u8::from(self.retain_as_published) << 3;
            byte |= (self.retain_handling as u8) << 4;
        }
        byte
    }
}

/// One topic filter with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    pub filter: ByteStr,
    pub options: SubscriptionOptions,
}

impl SubscribeFilter {
    pub fn new(filter: impl Into<ByteStr>, qos: QoS) -> SubscribeFilter {
        SubscribeFilter {
            filter: filter.into(),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: u16,
    pub properties: Properties,
    pub filters: Vec<SubscribeFilter>,
}

impl Subscribe {
    pub fn new(pkid: u16, filters: Vec<SubscribeFilter>) -> Subscribe {
        Subscribe {
            pkid,
            properties: Properties::new(),
            filters,
        }
    }

    pub(crate) fn decode(
        mut r: Reader,
        version: ProtocolVersion,
    ) -> Result<Subscribe, DecodeError> {
        let pkid = match r.u16()? {
            0 => return Err(DecodeError::ZeroPacketId),
            id => id,
        };
        let properties = if version.is_v5() {
            Properties::decode(&mut r, PropertyContext::Subscribe)?
        } else {
            Properties::new()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            validate_topic_filter(&filter).map_err(|_| DecodeError::InvalidTopicFilter)?;
            let options = SubscriptionOptions::decode(r.u8()?, version)?;
            if options.no_local && parse_shared(&filter).is_some() {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            filters.push(SubscribeFilter { filter, options });
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Subscribe {
            pkid,
            properties,
            filters,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut len = 2 + self
            .filters
            .iter()
            .map(|f| 3 + f.filter.len())
            .sum::<usize>();
        if version.is_v5() {
            len += self.properties.encoded_len();
        }
        len
    }

    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if self.pkid == 0 {
            return Err(EncodeError::ZeroPacketId);
        }
        for f in &self.filters {
            check_field(f.filter.len())?;
        }
        if version.is_v5() {
            self.properties.check()?;
        }
        put_header(out, 0x82, self.body_len(version))?;
        out.put_u16(self.pkid);
        if version.is_v5() {
            self.properties.encode(self.properties.body_len(), out);
        }
        for f in &self.filters {
            put_binary(out, f.filter.as_bytes());
            out.put_u8(f.options.encode(version));
        }
        Ok(())
    }
}
