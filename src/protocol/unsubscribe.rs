//! UNSUBSCRIBE (spec 3.10): packet identifier, properties and topic filters.

use bytes::{BufMut, BytesMut};

use super::primitives::{check_field, put_binary, Reader};
use super::topic::validate_topic_filter;
use super::{
    put_header, ByteStr, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub properties: Properties,
    pub filters: Vec<ByteStr>,
}

impl Unsubscribe {
    pub fn new(pkid: u16, filters: Vec<ByteStr>) -> Unsubscribe {
        Unsubscribe {
            pkid,
            properties: Properties::new(),
            filters,
        }
    }

    pub(crate) fn decode(
        mut r: Reader,
        version: ProtocolVersion,
    ) -> Result<Unsubscribe, DecodeError> {
        let pkid = match r.u16()? {
            0 => return Err(DecodeError::ZeroPacketId),
            id => id,
        };
        let properties = if version.is_v5() {
            Properties::decode(&mut r, PropertyContext::Unsubscribe)?
        } else {
            Properties::new()
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            validate_topic_filter(&filter).map_err(|_| DecodeError::InvalidTopicFilter)?;
            filters.push(filter);
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Unsubscribe {
            pkid,
            properties,
            filters,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut len = 2 + self.filters.iter().map(|f| 2 + f.len()).sum::<usize>();
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
            check_field(f.len())?;
        }
        if version.is_v5() {
            self.properties.check()?;
        }
        put_header(out, 0xA2, self.body_len(version))?;
        out.put_u16(self.pkid);
        if version.is_v5() {
            self.properties.encode(self.properties.body_len(), out);
        }
        for f in &self.filters {
            put_binary(out, f.as_bytes());
        }
        Ok(())
    }
}
