//! CONNACK (spec 3.2): session present and the connect reason code (a v3 return
//! code on 3.1/3.1.1), plus the server's properties in v5.

use bytes::{BufMut, BytesMut};

use super::primitives::Reader;
use super::{
    put_header, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion, ReasonCode,
    ReasonContext,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// In v3 this is carried as the nearest return code (`ReasonCode::to_v3_connack`).
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl ConnAck {
    pub fn new(reason: ReasonCode, session_present: bool) -> ConnAck {
        ConnAck {
            session_present,
            reason,
            properties: Properties::new(),
        }
    }

    pub(crate) fn decode(mut r: Reader, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
        let mut flags = r.u8()?;
        if version == ProtocolVersion::V3_1 {
            // MQTT 3.1 has no acknowledge flags: the whole byte is reserved.
            flags = 0;
        } else if flags & 0xfe != 0 {
            return Err(DecodeError::InvalidConnAckFlags);
        }
        let code = r.u8()?;
        let (reason, properties) = if version.is_v5() {
            let reason = ReasonCode::from_u8(code)
                .filter(|c| c.valid_in(ReasonContext::ConnAck))
                .ok_or(DecodeError::InvalidReasonCode(code))?;
            (
                reason,
                Properties::decode(&mut r, PropertyContext::ConnAck)?,
            )
        } else {
            let reason =
                ReasonCode::from_v3_connack(code).ok_or(DecodeError::InvalidReasonCode(code))?;
            (reason, Properties::new())
        };
        r.finish()?;
        Ok(ConnAck {
            session_present: flags & 1 != 0,
            reason,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        if version.is_v5() {
            2 + self.properties.encoded_len()
        } else {
            2
        }
    }

    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        // MQTT 3.1 has no session present flag: the byte is reserved.
        let flags = u8::from(self.session_present && version != ProtocolVersion::V3_1);
        if version.is_v5() {
            self.properties.check()?;
            put_header(out, 0x20, self.body_len(version))?;
            out.put_u8(flags);
            out.put_u8(self.reason.value());
            self.properties.encode(self.properties.body_len(), out);
        } else {
            put_header(out, 0x20, 2)?;
            out.put_u8(flags);
            out.put_u8(self.reason.to_v3_connack());
        }
        Ok(())
    }
}
