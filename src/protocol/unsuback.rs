//! UNSUBACK (spec 3.11): in v5 one reason code per filter; in v3 only the packet
//! identifier.

use bytes::{BufMut, BytesMut};

use super::primitives::Reader;
use super::{
    put_header, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion, ReasonCode,
    ReasonContext,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub pkid: u16,
    pub properties: Properties,
    /// v5 only; empty (and not sent) in v3.
    pub reasons: Vec<ReasonCode>,
}

impl UnsubAck {
    pub fn new(pkid: u16, reasons: Vec<ReasonCode>) -> UnsubAck {
        UnsubAck {
            pkid,
            properties: Properties::new(),
            reasons,
        }
    }

    pub(crate) fn decode(mut r: Reader, version: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
        let pkid = match r.u16()? {
            0 => return Err(DecodeError::ZeroPacketId),
            id => id,
        };
        let mut properties = Properties::new();
        let mut reasons = Vec::new();
        if version.is_v5() {
            properties = Properties::decode(&mut r, PropertyContext::UnsubAck)?;
            reasons.reserve(r.remaining());
            while !r.is_empty() {
                let code = r.u8()?;
                let reason = ReasonCode::from_u8(code)
                    .filter(|c| c.valid_in(ReasonContext::UnsubAck))
                    .ok_or(DecodeError::InvalidReasonCode(code))?;
                reasons.push(reason);
            }
            if reasons.is_empty() {
                return Err(DecodeError::NoReasonCodes);
            }
        }
        r.finish()?;
        Ok(UnsubAck {
            pkid,
            properties,
            reasons,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        if version.is_v5() {
            2 + self.properties.encoded_len() + self.reasons.len()
        } else {
            2
        }
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
        put_header(out, 0xB0, self.body_len(version))?;
        out.put_u16(self.pkid);
        if version.is_v5() {
            self.properties.encode(self.properties.body_len(), out);
            for r in &self.reasons {
                out.put_u8(r.value());
            }
        }
        Ok(())
    }
}
