//! Authentication hooks: the [`Authenticator`] trait that drives MQTT 5 enhanced
//! authentication (spec 4.12), and [`Hooks`], the set of trait objects a broker is
//! started with. Configuration stays plain data; behaviour a user plugs in lives here.
//!
//! # How an exchange runs
//!
//! A v5 CONNECT that carries an Authentication Method opens an exchange. The broker
//! calls [`Authenticator::authenticate`] with the method and the CONNECT's
//! Authentication Data; each [`AuthStep::Continue`] is sent to the client as AUTH
//! 0x18 and the client's AUTH 0x18 answer is passed to the next call, until the
//! authenticator returns [`AuthStep::Success`] (CONNACK 0x00 with the method and any
//! final data) or [`AuthStep::Fail`] (CONNACK with that reason, then close). The whole
//! exchange, like reading CONNECT, must end within the connect timeout.
//!
//! The CONNECT-time exchange runs on the shard that accepted the socket, before the
//! connection is handed to the shard that owns its client id: a client that fails
//! costs no hand-off and never touches the session it names (an unauthenticated
//! client cannot take over a connected one). Re-authentication (AUTH 0x19 after
//! CONNACK) runs on the owner shard inside the connection task, while the client goes
//! on publishing; success is answered with AUTH 0x00, failure with DISCONNECT.
//!
//! Without an authenticator, a CONNECT with an Authentication Method is refused with
//! 0x8C (bad authentication method).

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::ReasonCode;

/// What the authenticator decided after one step of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// More is needed: the broker sends AUTH 0x18 with this Authentication Data and
    /// waits for the client's answer.
    Continue(Bytes),
    /// Authenticated: CONNACK 0x00 (AUTH 0x00 on re-authentication), carrying this
    /// Authentication Data if any.
    Success(Option<Bytes>),
    /// Refused: CONNACK (DISCONNECT on re-authentication) with this reason code,
    /// then the connection is closed. Typical codes are 0x87 (not authorized) and
    /// 0x8C (bad authentication method); a code the packet cannot carry is sent as
    /// 0x87.
    Fail(ReasonCode),
}

/// One call of an exchange: who asks, with which method, and what they sent.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The client id (the broker-assigned one if the client sent none).
    pub client_id: &'a str,
    /// The User Name from CONNECT, if any.
    pub username: Option<&'a str>,
    /// The Authentication Method, the same in every step of the exchange.
    pub method: &'a str,
    /// The Authentication Data of the packet being answered.
    pub data: Option<&'a [u8]>,
    /// False at CONNECT, true for a re-authentication (AUTH 0x19) after CONNACK.
    pub reauthentication: bool,
    /// 0 for the packet that opens the exchange (CONNECT or AUTH 0x19), then 1, 2,
    /// ... for each AUTH 0x18 answering a `Continue`.
    pub round: u32,
}

/// Decides enhanced authentication exchanges.
///
/// One instance serves every shard, so it is `Send + Sync`. It is called on a shard's
/// executor thread, between handling other clients' packets: it must return
/// promptly (well under a millisecond) and never block on I/O. An authenticator that
/// needs a slow check should do it elsewhere and answer from a cache.
pub trait Authenticator: Send + Sync {
    /// One step of an exchange. `state` is kept by the broker for the length of
    /// this exchange only (empty at round 0) and given back at the next round: the
    /// place for a challenge or nonce the answer must match.
    fn authenticate(&self, request: &AuthRequest<'_>, state: &mut Bytes) -> AuthStep;
}

/// The behaviour a broker is started with beside its `Config`.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Runs enhanced authentication; `None` refuses every Authentication Method.
    pub authenticator: Option<Arc<dyn Authenticator>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("authenticator", &self.authenticator.is_some())
            .finish()
    }
}

/// A client that completed enhanced authentication at CONNECT: what its CONNACK
/// carries, and the method its re-authentications must use.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub method: crate::protocol::ByteStr,
    /// Authentication Data for the CONNACK.
    pub data: Option<Bytes>,
}

/// The reason code a refused step is sent with in a packet of `context`.
pub(crate) fn refusal_reason(
    reason: ReasonCode,
    context: crate::protocol::ReasonContext,
) -> ReasonCode {
    if reason.is_error() && reason.valid_in(context) {
        reason
    } else {
        ReasonCode::NotAuthorized
    }
}
