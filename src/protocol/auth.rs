//! AUTH (spec 3.15, v5 only): one step of an enhanced authentication exchange.

use bytes::{BufMut, BytesMut};

use super::primitives::Reader;
use super::{
    put_header, DecodeError, EncodeError, Properties, PropertyContext, ReasonCode, ReasonContext,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// `Success`, `ContinueAuthentication` or `ReAuthenticate`.
    pub reason: ReasonCode,
    /// Authentication method and data, reason string, user properties.
    pub properties: Properties,
}

impl Auth {
    pub fn new(reason: ReasonCode, properties: Properties) -> Auth {
        Auth { reason, properties }
    }

    pub(crate) fn decode(mut r: Reader) -> Result<Auth, DecodeError> {
        let mut reason = ReasonCode::Success;
        let mut properties = Properties::new();
        if !r.is_empty() {
            let code = r.u8()?;
            reason = ReasonCode::from_u8(code)
                .filter(|c| c.valid_in(ReasonContext::Auth))
                .ok_or(DecodeError::InvalidReasonCode(code))?;
            if !r.is_empty() {
                properties = Properties::decode(&mut r, PropertyContext::Auth)?;
            }
        }
        r.finish()?;
        Ok(Auth { reason, properties })
    }

    pub(crate) fn body_len(&self) -> usize {
        if self.reason == ReasonCode::Success && self.properties.is_empty() {
            0
        } else {
            1 + self.properties.encoded_len()
        }
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.properties.check()?;
        let body = self.body_len();
        put_header(out, 0xF0, body)?;
        if body > 0 {
            out.put_u8(self.reason.value());
            self.properties.encode(self.properties.body_len(), out);
        }
        Ok(())
    }
}
