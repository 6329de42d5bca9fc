//! DISCONNECT (spec 3.14): empty in v3; in v5 an optional reason code and properties
//! (session expiry, reason string, server reference).

use bytes::{BufMut, BytesMut};

use super::primitives::Reader;
use super::{
    put_header, DecodeError, EncodeError, Properties, PropertyContext, ProtocolVersion, ReasonCode,
    ReasonContext,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Disconnect {
    pub fn new(reason: ReasonCode) -> Disconnect {
        Disconnect {
            reason,
            properties: Properties::new(),
        }
    }

    pub(crate) fn decode(
        mut r: Reader,
        version: ProtocolVersion,
    ) -> Result<Disconnect, DecodeError> {
        let mut reason = ReasonCode::NORMAL_DISCONNECTION;
        let mut properties = Properties::new();
        if version.is_v5() && !r.is_empty() {
            let code = r.u8()?;
            reason = ReasonCode::from_u8(code)
                .filter(|c| c.valid_in(ReasonContext::Disconnect))
                .ok_or(DecodeError::InvalidReasonCode(code))?;
            if !r.is_empty() {
                properties = Properties::decode(&mut r, PropertyContext::Disconnect)?;
            }
        }
        r.finish()?;
        Ok(Disconnect { reason, properties })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        if !version.is_v5() {
            0
        } else if !self.properties.is_empty() {
            1 + self.properties.encoded_len()
        } else if self.reason != ReasonCode::NORMAL_DISCONNECTION {
            1
        } else {
            0
        }
    }

    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if version.is_v5() {
            self.properties.check()?;
        }
        let body = self.body_len(version);
        put_header(out, 0xE0, body)?;
        if body > 0 {
            out.put_u8(self.reason.value());
        }
        if body > 1 {
            self.properties.encode(self.properties.body_len(), out);
        }
        Ok(())
    }
}
