//! MQTT 5 properties (spec 2.2.2): every property with its wire type, the packets it
//! may appear in, the values it may take, and the at-most-once rule.
//!
//! `Properties` keeps them in wire order in one vector, so a packet without
//! properties costs no allocation and a forwarded message keeps user properties in
//! the order its publisher sent them.

use bytes::{BufMut, Bytes, BytesMut};

use super::primitives::{check_field, put_binary, put_var_int, var_int_len, Reader, MAX_VAR_INT};
use super::{ByteStr, DecodeError, EncodeError};

/// Which packet (or the will inside CONNECT) a property list belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PropertyContext {
    Connect = 0,
    ConnAck = 1,
    Publish = 2,
    Will = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    Disconnect = 12,
    Auth = 13,
}

impl PropertyContext {
    const fn bit(self) -> u16 {
        1 << self as u8
    }
}

const CONNECT: u16 = PropertyContext::Connect.bit();
const CONNACK: u16 = PropertyContext::ConnAck.bit();
const PUBLISH: u16 = PropertyContext::Publish.bit();
const WILL: u16 = PropertyContext::Will.bit();
const PUBACK: u16 = PropertyContext::PubAck.bit();
const PUBREC: u16 = PropertyContext::PubRec.bit();
const PUBREL: u16 = PropertyContext::PubRel.bit();
const PUBCOMP: u16 = PropertyContext::PubComp.bit();
const SUBSCRIBE: u16 = PropertyContext::Subscribe.bit();
const SUBACK: u16 = PropertyContext::SubAck.bit();
const UNSUBSCRIBE: u16 = PropertyContext::Unsubscribe.bit();
const UNSUBACK: u16 = PropertyContext::UnsubAck.bit();
const DISCONNECT: u16 = PropertyContext::Disconnect.bit();
const AUTH: u16 = PropertyContext::Auth.bit();
const ALL: u16 = CONNECT
    | CONNACK
    | PUBLISH
    | WILL
    | PUBACK
    | PUBREC
    | PUBREL
    | PUBCOMP
    | SUBSCRIBE
    | SUBACK
    | UNSUBSCRIBE
    | UNSUBACK
    | DISCONNECT
    | AUTH;

/// Property identifiers (spec table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

impl PropertyId {
    /// Every property identifier, in numeric order.
    pub const ALL: [PropertyId; 27] = [
        PropertyId::PayloadFormatIndicator,
        PropertyId::MessageExpiryInterval,
        PropertyId::ContentType,
        PropertyId::ResponseTopic,
        PropertyId::CorrelationData,
        PropertyId::SubscriptionIdentifier,
        PropertyId::SessionExpiryInterval,
        PropertyId::AssignedClientIdentifier,
        PropertyId::ServerKeepAlive,
        PropertyId::AuthenticationMethod,
        PropertyId::AuthenticationData,
        PropertyId::RequestProblemInformation,
        PropertyId::WillDelayInterval,
        PropertyId::RequestResponseInformation,
        PropertyId::ResponseInformation,
        PropertyId::ServerReference,
        PropertyId::ReasonString,
        PropertyId::ReceiveMaximum,
        PropertyId::TopicAliasMaximum,
        PropertyId::TopicAlias,
        PropertyId::MaximumQoS,
        PropertyId::RetainAvailable,
        PropertyId::UserProperty,
        PropertyId::MaximumPacketSize,
        PropertyId::WildcardSubscriptionAvailable,
        PropertyId::SubscriptionIdentifierAvailable,
        PropertyId::SharedSubscriptionAvailable,
    ];

    pub fn from_u8(v: u8) -> Option<PropertyId> {
        PropertyId::ALL.iter().copied().find(|id| *id as u8 == v)
    }

    /// Packets this property may appear in, as a bit set of `PropertyContext`s.
    const fn contexts(self) -> u16 {
        use PropertyId::*;
        match self {
            PayloadFormatIndicator
            | MessageExpiryInterval
            | ContentType
            | ResponseTopic
            | CorrelationData => PUBLISH | WILL,
            SubscriptionIdentifier => PUBLISH | SUBSCRIBE,
            SessionExpiryInterval => CONNECT | CONNACK | DISCONNECT,
            AssignedClientIdentifier
            | ServerKeepAlive
            | ResponseInformation
            | MaximumQoS
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => CONNACK,
            AuthenticationMethod | AuthenticationData => CONNECT | CONNACK | AUTH,
            RequestProblemInformation | RequestResponseInformation => CONNECT,
            WillDelayInterval => WILL,
            ServerReference => CONNACK | DISCONNECT,
            ReasonString => {
                CONNACK | PUBACK | PUBREC | PUBREL | PUBCOMP | SUBACK | UNSUBACK | DISCONNECT | AUTH
            }
            ReceiveMaximum | TopicAliasMaximum | MaximumPacketSize => CONNECT | CONNACK,
            TopicAlias => PUBLISH,
            UserProperty => ALL,
        }
    }

    /// Whether the property may appear in the given packet.
    pub fn allowed_in(self, ctx: PropertyContext) -> bool {
        self.contexts() & ctx.bit() != 0
    }

    /// Whether the property may appear more than once in `ctx`. User Property always
    /// may; Subscription Identifier may in PUBLISH (one per matching subscription) but
    /// not in SUBSCRIBE.
    pub fn repeatable_in(self, ctx: PropertyContext) -> bool {
        match self {
            PropertyId::UserProperty => true,
            PropertyId::SubscriptionIdentifier => ctx == PropertyContext::Publish,
            _ => false,
        }
    }
}

/// One property with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Property {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(ByteStr),
    ResponseTopic(ByteStr),
    CorrelationData(Bytes),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(ByteStr),
    ServerKeepAlive(u16),
    AuthenticationMethod(ByteStr),
    AuthenticationData(Bytes),
    RequestProblemInformation(u8),
    WillDelayInterval(u32),
    RequestResponseInformation(u8),
    ResponseInformation(ByteStr),
    ServerReference(ByteStr),
    ReasonString(ByteStr),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQoS(u8),
    RetainAvailable(u8),
    UserProperty(ByteStr, ByteStr),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(u8),
    SubscriptionIdentifierAvailable(u8),
    SharedSubscriptionAvailable(u8),
}

impl Property {
    pub fn id(&self) -> PropertyId {
        use Property as P;
        use PropertyId as I;
        match self {
            P::PayloadFormatIndicator(_) => I::PayloadFormatIndicator,
            P::MessageExpiryInterval(_) => I::MessageExpiryInterval,
            P::ContentType(_) => I::ContentType,
            P::ResponseTopic(_) => I::ResponseTopic,
            P::CorrelationData(_) => I::CorrelationData,
            P::SubscriptionIdentifier(_) => I::SubscriptionIdentifier,
            P::SessionExpiryInterval(_) => I::SessionExpiryInterval,
            P::AssignedClientIdentifier(_) => I::AssignedClientIdentifier,
            P::ServerKeepAlive(_) => I::ServerKeepAlive,
            P::AuthenticationMethod(_) => I::AuthenticationMethod,
            P::AuthenticationData(_) => I::AuthenticationData,
            P::RequestProblemInformation(_) => I::RequestProblemInformation,
            P::WillDelayInterval(_) => I::WillDelayInterval,
            P::RequestResponseInformation(_) => I::RequestResponseInformation,
            P::ResponseInformation(_) => I::ResponseInformation,
            P::ServerReference(_) => I::ServerReference,
            P::ReasonString(_) => I::ReasonString,
            P::ReceiveMaximum(_) => I::ReceiveMaximum,
            P::TopicAliasMaximum(_) => I::TopicAliasMaximum,
            P::TopicAlias(_) => I::TopicAlias,
            P::MaximumQoS(_) => I::MaximumQoS,
            P::RetainAvailable(_) => I::RetainAvailable,
            P::UserProperty(..) => I::UserProperty,
            P::MaximumPacketSize(_) => I::MaximumPacketSize,
            P::WildcardSubscriptionAvailable(_) => I::WildcardSubscriptionAvailable,
            P::SubscriptionIdentifierAvailable(_) => I::SubscriptionIdentifierAvailable,
            P::SharedSubscriptionAvailable(_) => I::SharedSubscriptionAvailable,
        }
    }

    /// Decodes one property of a `ctx` packet. Whether the property may appear there is
    /// checked before its value, so a misplaced property is malformed (spec 2.2.2.2)
    /// whatever value it carries.
    fn decode(r: &mut Reader, ctx: PropertyContext) -> Result<Property, DecodeError> {
        use Property as P;
        let raw = r.var_int()?;
        let id = u8::try_from(raw)
            .ok()
            .and_then(PropertyId::from_u8)
            .ok_or(DecodeError::UnknownProperty(raw.min(0xff) as u8))?;
        if !id.allowed_in(ctx) {
            return Err(DecodeError::PropertyNotAllowed(id as u8));
        }
        let bad = DecodeError::InvalidPropertyValue(id as u8);
        let flag = |v: u8| if v <= 1 { Ok(v) } else { Err(bad) };
        Ok(match id {
            PropertyId::PayloadFormatIndicator => P::PayloadFormatIndicator(flag(r.u8()?)?),
            PropertyId::MessageExpiryInterval => P::MessageExpiryInterval(r.u32()?),
            PropertyId::ContentType => P::ContentType(r.string()?),
            PropertyId::ResponseTopic => P::ResponseTopic(r.string()?),
            PropertyId::CorrelationData => P::CorrelationData(r.binary()?),
            PropertyId::SubscriptionIdentifier => match r.var_int()? {
                0 => return Err(bad),
                v => P::SubscriptionIdentifier(v),
            },
            PropertyId::SessionExpiryInterval => P::SessionExpiryInterval(r.u32()?),
            PropertyId::AssignedClientIdentifier => P::AssignedClientIdentifier(r.string()?),
            PropertyId::ServerKeepAlive => P::ServerKeepAlive(r.u16()?),
            PropertyId::AuthenticationMethod => P::AuthenticationMethod(r.string()?),
            PropertyId::AuthenticationData => P::AuthenticationData(r.binary()?),
            PropertyId::RequestProblemInformation => P::RequestProblemInformation(flag(r.u8()?)?),
            PropertyId::WillDelayInterval => P::WillDelayInterval(r.u32()?),
            PropertyId::RequestResponseInformation => P::RequestResponseInformation(flag(r.u8()?)?),
            PropertyId::ResponseInformation => P::ResponseInformation(r.string()?),
            PropertyId::ServerReference => P::ServerReference(r.string()?),
            PropertyId::ReasonString => P::ReasonString(r.string()?),
            PropertyId::ReceiveMaximum => match r.u16()? {
                0 => return Err(bad),
                v => P::ReceiveMaximum(v),
            },
            PropertyId::TopicAliasMaximum => P::TopicAliasMaximum(r.u16()?),
            PropertyId::TopicAlias => match r.u16()? {
                0 => return Err(DecodeError::TopicAliasZero),
                v => P::TopicAlias(v),
            },
            PropertyId::MaximumQoS => P::MaximumQoS(flag(r.u8()?)?),
            PropertyId::RetainAvailable => P::RetainAvailable(flag(r.u8()?)?),
            PropertyId::UserProperty => P::UserProperty(r.string()?, r.string()?),
            PropertyId::MaximumPacketSize => match r.u32()? {
                0 => return Err(bad),
                v => P::MaximumPacketSize(v),
            },
            PropertyId::WildcardSubscriptionAvailable => {
                P::WildcardSubscriptionAvailable(flag(r.u8()?)?)
            }
            PropertyId::SubscriptionIdentifierAvailable => {
                P::SubscriptionIdentifierAvailable(flag(r.u8()?)?)
            }
            PropertyId::SharedSubscriptionAvailable => {
                P::SharedSubscriptionAvailable(flag(r.u8()?)?)
            }
        })
    }

    /// Bytes on the wire, identifier included.
    pub(crate) fn encoded_len(&self) -> usize {
        use Property as P;
        1 + match self {
            P::PayloadFormatIndicator(_)
            | P::RequestProblemInformation(_)
            | P::RequestResponseInformation(_)
            | P::MaximumQoS(_)
            | P::RetainAvailable(_)
            | P::WildcardSubscriptionAvailable(_)
            | P::SubscriptionIdentifierAvailable(_)
            | P::SharedSubscriptionAvailable(_) => 1,
            P::ServerKeepAlive(_)
            | P::ReceiveMaximum(_)
            | P::TopicAliasMaximum(_)
            | P::TopicAlias(_) => 2,
            P::MessageExpiryInterval(_)
            | P::SessionExpiryInterval(_)
            | P::WillDelayInterval(_)
            | P::MaximumPacketSize(_) => 4,
            P::SubscriptionIdentifier(v) => var_int_len(*v as usize),
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => 2 + s.len(),
            P::CorrelationData(b) | P::AuthenticationData(b) => 2 + b.len(),
            P::UserProperty(k, v) => 4 + k.len() + v.len(),
        }
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        use Property as P;
        match self {
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => check_field(s.len()),
            P::CorrelationData(b) | P::AuthenticationData(b) => check_field(b.len()),
            P::UserProperty(k, v) => check_field(k.len()).and(check_field(v.len())),
            P::SubscriptionIdentifier(v) if *v > MAX_VAR_INT => {
                Err(EncodeError::VarIntTooLarge(*v))
            }
            _ => Ok(()),
        }
    }

    #[inline]
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        use Property as P;
        let id = self.id() as u8;
        match self {
            P::PayloadFormatIndicator(v)
            | P::RequestProblemInformation(v)
            | P::RequestResponseInformation(v)
            | P::MaximumQoS(v)
            | P::RetainAvailable(v)
            | P::WildcardSubscriptionAvailable(v)
            | P::SubscriptionIdentifierAvailable(v)
            | P::SharedSubscriptionAvailable(v) => out.put_slice(&[id, *v]),
            P::ServerKeepAlive(v)
            | P::ReceiveMaximum(v)
            | P::TopicAliasMaximum(v)
            | P::TopicAlias(v) => {
                let [a, b] = v.to_be_bytes();
                out.put_slice(&[id, a, b]);
            }
            P::MessageExpiryInterval(v)
            | P::SessionExpiryInterval(v)
            | P::WillDelayInterval(v)
            | P::MaximumPacketSize(v) => {
                let [a, b, c, d] = v.to_be_bytes();
                out.put_slice(&[id, a, b, c, d]);
            }
            P::SubscriptionIdentifier(v) => {
                out.put_u8(id);
                put_var_int(out, *v as usize);
            }
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => put_tagged(out, id, s.as_bytes()),
            P::CorrelationData(b) | P::AuthenticationData(b) => put_tagged(out, id, b),
            P::UserProperty(k, v) => {
                put_tagged(out, id, k.as_bytes());
                put_binary(out, v.as_bytes());
            }
        }
    }
}

/// An identifier and a length-prefixed field, the three header bytes in one write.
#[inline]
fn put_tagged(out: &mut BytesMut, id: u8, data: &[u8]) {
    let [a, b] = (data.len() as u16).to_be_bytes();
    out.put_slice(&[id, a, b]);
    out.put_slice(data);
}

/// A property list in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties(Vec<Property>);

macro_rules! accessors {
    ($($(#[$doc:meta])* $name:ident -> $ty:ty = $variant:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Option<$ty> {
                self.0.iter().find_map(|p| match p {
                    Property::$variant(v) => Some(v.clone()),
                    _ => None,
                })
            }
        )*
    };
}

impl Properties {
    pub const fn new() -> Properties {
        Properties(Vec::new())
    }

    pub fn from_vec(props: Vec<Property>) -> Properties {
        Properties(props)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Property> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[Property] {
        &self.0
    }

    /// Appends a property (repeatable ones accumulate).
    pub fn push(&mut self, p: Property) {
        self.0.push(p);
    }

    /// Replaces any property with the same identifier, or appends it.
    pub fn set(&mut self, p: Property) {
        let id = p.id();
        match self.0.iter_mut().find(|q| q.id() == id) {
            Some(slot) => *slot = p,
            None => self.0.push(p),
        }
    }

    /// Removes every property with this identifier.
    pub fn remove(&mut self, id: PropertyId) {
        self.0.retain(|p| p.id() != id);
    }

    pub fn retain(&mut self, f: impl FnMut(&Property) -> bool) {
        self.0.retain(f);
    }

    pub fn get(&self, id: PropertyId) -> Option<&Property> {
        self.0.iter().find(|p| p.id() == id)
    }

    accessors! {
        payload_format_indicator -> u8 = PayloadFormatIndicator;
        message_expiry_interval -> u32 = MessageExpiryInterval;
        content_type -> ByteStr = ContentType;
        response_topic -> ByteStr = ResponseTopic;
        correlation_data -> Bytes = CorrelationData;
        session_expiry_interval -> u32 = SessionExpiryInterval;
        assigned_client_identifier -> ByteStr = AssignedClientIdentifier;
        server_keep_alive -> u16 = ServerKeepAlive;
        authentication_method -> ByteStr = AuthenticationMethod;
        authentication_data -> Bytes = AuthenticationData;
        request_problem_information -> u8 = RequestProblemInformation;
        will_delay_interval -> u32 = WillDelayInterval;
        request_response_information -> u8 = RequestResponseInformation;
        response_information -> ByteStr = ResponseInformation;
        server_reference -> ByteStr = ServerReference;
        reason_string -> ByteStr = ReasonString;
        receive_maximum -> u16 = ReceiveMaximum;
        topic_alias_maximum -> u16 = TopicAliasMaximum;
        topic_alias -> u16 = TopicAlias;
        maximum_qos -> u8 = MaximumQoS;
        retain_available -> u8 = RetainAvailable;
        maximum_packet_size -> u32 = MaximumPacketSize;
        wildcard_subscription_available -> u8 = WildcardSubscriptionAvailable;
        subscription_identifier_available -> u8 = SubscriptionIdentifierAvailable;
        shared_subscription_available -> u8 = SharedSubscriptionAvailable;
    }

    /// Subscription identifiers in order (several in a PUBLISH, at most one in SUBSCRIBE).
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().filter_map(|p| match p {
            Property::SubscriptionIdentifier(v) => Some(*v),
            _ => None,
        })
    }

    /// User properties in order, duplicates kept (spec 3.3.2.3.7).
    pub fn user_properties(&self) -> impl Iterator<Item = (&ByteStr, &ByteStr)> + '_ {
        self.0.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k, v)),
            _ => None,
        })
    }

    /// Decodes a property length and list, enforcing which properties `ctx` allows
    /// and that non-repeatable ones appear once.
    pub(crate) fn decode(r: &mut Reader, ctx: PropertyContext) -> Result<Properties, DecodeError> {
        let len = r.var_int()? as usize;
        if len == 0 {
            return Ok(Properties::new());
        }
        let mut r = r.sub(len)?;
        // Sized for the list at once: growing 0 -> 4 -> 8 would cost a realloc for a
        // typical PUBLISH. A property takes at least two bytes; most take more.
        let mut props = Vec::with_capacity((len / 8).clamp(1, 8));
        let mut seen: u64 = 0;
        while !r.is_empty() {
            let p = Property::decode(&mut r, ctx)?;
            let id = p.id();
            let bit = 1u64 << (id as u8);
            if seen & bit != 0 && !id.repeatable_in(ctx) {
                return Err(DecodeError::DuplicateProperty(id as u8));
            }
            seen |= bit;
            props.push(p);
        }
        Ok(Properties(props))
    }

    /// `check` and `body_len` in one pass over the list.
    pub(crate) fn checked_body_len(&self) -> Result<usize, EncodeError> {
        let mut len = 0;
        for p in &self.0 {
            p.check()?;
            len += p.encoded_len();
        }
        Ok(len)
    }

    /// Length of the property list itself, without its length prefix.
    pub fn body_len(&self) -> usize {
        self.0.iter().map(Property::encoded_len).sum()
    }

    /// Length on the wire including the variable-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        var_int_len(body) + body
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        self.0.iter().try_for_each(Property::check)
    }

    /// Writes the length prefix and the list. `body_len` is `self.body_len()`.
    pub(crate) fn encode(&self, body_len: usize, out: &mut BytesMut) {
        put_var_int(out, body_len);
        for p in &self.0 {
            p.encode(out);
        }
    }
}

impl From<Vec<Property>> for Properties {
    fn from(v: Vec<Property>) -> Properties {
        Properties(v)
    }
}

impl<'a> IntoIterator for &'a Properties {
    type Item = &'a Property;
    type IntoIter = std::slice::Iter<'a, Property>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
