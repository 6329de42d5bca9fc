//! SUBACK (spec 3.9): one reason code per requested filter, in order.

use bytes::{BufMut, BytesMut};

use super::primitives::Reader;
use super::{
    put_header, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion, ReasonCode,
    ReasonContext,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub pkid: u16,
    pub properties: Properties,
    /// Granted QoS (`Success`, `GrantedQoS1`, `GrantedQoS2`) or a failure. In v3 every
    /// failure is sent as 0x80.
    pub reasons: Vec<ReasonCode>,
}

impl SubAck {
    pub fn new(pkid: u16, reasons: Vec<ReasonCode>) -> SubAck {
        SubAck {
            pkid,
            properties: Properties::new(),
            reasons,
        }
    }

    pub(crate) fn decode(mut r: Reader, version: ProtocolVersion) -> Result<SubAck, DecodeError> {
        let pkid = match r.u16()? {
            0 => return Err(DecodeError::ZeroPacketId),
            id => id,
        };
        let properties = if version.is_v5() {
            Properties::decode(&mut r, PropertyContext::SubAck)?
        } else {
            Properties::new()
        };
        let mut reasons = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            let code = r.u8()?;
            let reason = if version.is_v5() {
                ReasonCode::from_u8(code).filter(|c| c.valid_in(ReasonContext::SubAck))
            } else {
                ReasonCode::from_v3_suback(code)
            };
            reasons.push(reason.ok_or(DecodeError::InvalidReasonCode(code))?);
        }
        if reasons.is_empty() {
            return Err(DecodeError::NoReasonCodes);
        }
        Ok(SubAck {
            pkid,
            properties,
            reasons,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut len = 2 + self.reasons.len();
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
        if version.is_v5() {
            self.properties.check()?;
        }
        put_header(out, 0x90, self.body_len(version))?;
        out.put_u16(self.pkid);
        if version.is_v5() {
            self.properties.encode(self.properties.body_len(), out);
            for r in &self.reasons {
                out.put_u8(r.value());
            }
        } else {
            for r in &self.reasons {
                out.put_u8(r.to_v3_suback());
            }
        }
        Ok(())
    }
}
