//! MQTT 5 properties (spec 2.2.2): every property with its wire type, the packets it
//! may appear in, the values it may take, and the at-most-once rule.
//!
//! `Properties` keeps a list as its bytes on the wire. A received list is checked
//! once, against every rule, and kept as the slice of the frame it came in: decoding
//! it builds nothing and allocates nothing, forwarding it is one copy, and the
//! accessors read the one property they are asked for. A list built from `Property`
//! values is encoded when it is built, so it too is written with one copy.
use bytes::{BufMut, Bytes, BytesMut};

use super::primitives::{
    append, check_field, check_utf8, put_var_int, read_var_int, var_int_len, Reader, Writer,
    MAX_VAR_INT,
};
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
        BY_BYTE.get(usize::from(v)).copied().flatten()
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

    /// How the value is laid out on the wire (spec table 2-4, "Type").
    const fn kind(self) -> Kind {
        use PropertyId::*;
        match self {
            PayloadFormatIndicator
            | RequestProblemInformation
            | RequestResponseInformation
            | MaximumQoS
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => Kind::Byte,
            ServerKeepAlive | ReceiveMaximum | TopicAliasMaximum | TopicAlias => Kind::TwoBytes,
            MessageExpiryInterval
            | SessionExpiryInterval
            | WillDelayInterval
            | MaximumPacketSize => Kind::FourBytes,
            SubscriptionIdentifier => Kind::VarInt,
            ContentType
            | ResponseTopic
            | AssignedClientIdentifier
            | AuthenticationMethod
            | ResponseInformation
            | ServerReference
            | ReasonString => Kind::String,
            CorrelationData | AuthenticationData => Kind::Binary,
            UserProperty => Kind::StringPair,
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

    /// Checks the value at the start of `v` against its type and value rules and
    /// returns its length on the wire. The errors and their order are those of
    /// reading the value field by field: a short field is `UnexpectedEof`, a bad
    /// string `InvalidUtf8`, a value the property may not take `InvalidPropertyValue`.
    #[inline]
    fn check_value(self, v: &[u8]) -> Result<usize, DecodeError> {
        let eof = DecodeError::UnexpectedEof;
        let bad = DecodeError::InvalidPropertyValue(self as u8);
        match self.kind() {
            // Every one-byte property is a 0/1 flag or a QoS of 0 or 1.
            Kind::Byte => match v.first() {
                None => Err(eof),
                Some(0 | 1) => Ok(1),
                Some(_) => Err(bad),
            },
            Kind::TwoBytes => match (be16(v, 0).ok_or(eof)?, self) {
                (0, PropertyId::TopicAlias) => Err(DecodeError::TopicAliasZero),
                (0, PropertyId::ReceiveMaximum) => Err(bad),
                _ => Ok(2),
            },
            Kind::FourBytes => match (be32(v).ok_or(eof)?, self) {
                (0, PropertyId::MaximumPacketSize) => Err(bad),
                _ => Ok(4),
            },
            Kind::VarInt => match read_var_int(v)?.ok_or(eof)? {
                (0, _) => Err(bad),
                (_, n) => Ok(n),
            },
            Kind::String => string_field(v),
            Kind::Binary => field(v),
            Kind::StringPair => {
                let key = string_field(v)?;
                Ok(key + string_field(&v[key..])?)
            }
        }
    }

    /// The length of the value at the start of `v`, already checked, or `None` if `v`
    /// is too short to hold it.
    #[inline]
    fn value_len(self, v: &[u8]) -> Option<usize> {
        let len = match self.kind() {
            Kind::Byte => 1,
            Kind::TwoBytes => 2,
            Kind::FourBytes => 4,
            Kind::VarInt => 1 + v.iter().take(4).position(|b| b & 0x80 == 0)?,
            Kind::String | Kind::Binary => 2 + usize::from(be16(v, 0)?),
            Kind::StringPair => {
                let key = 2 + usize::from(be16(v, 0)?);
                key + 2 + usize::from(be16(v, key)?)
            }
        };
        (len <= v.len()).then_some(len)
    }
}

/// Identifier byte to identifier.
const BY_BYTE: [Option<PropertyId>; 0x2B] = {
    let mut table = [None; 0x2B];
    let mut i = 0;
    while i < PropertyId::ALL.len() {
        let id = PropertyId::ALL[i];
        table[id as usize] = Some(id);
        i += 1;
    }
    table
};

/// The wire types of property values (spec 2.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Byte,
    TwoBytes,
    FourBytes,
    VarInt,
    String,
    Binary,
    StringPair,
}

#[inline]
fn be16(v: &[u8], at: usize) -> Option<u16> {
    let b = v.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[inline]
fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// The length of the Binary Data field at the start of `v`, prefix included.
#[inline]
fn field(v: &[u8]) -> Result<usize, DecodeError> {
    let len = 2 + usize::from(be16(v, 0).ok_or(DecodeError::UnexpectedEof)?);
    if len > v.len() {
        return Err(DecodeError::UnexpectedEof);
    }
    Ok(len)
}

/// Like `field`, for a UTF-8 Encoded String.
#[inline]
fn string_field(v: &[u8]) -> Result<usize, DecodeError> {
    let len = field(v)?;
    check_utf8(&v[2..len])?;
    Ok(len)
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

    /// The property `id` whose value is `wire[start..end]` in a checked list.
    /// Strings and binary data are slices of `wire`.
    fn from_wire(id: PropertyId, wire: &Bytes, start: usize, end: usize) -> Property {
        use Property as P;
        use PropertyId as I;
        let v = &wire[start..end];
        let byte = || v[0];
        let two = || u16::from_be_bytes([v[0], v[1]]);
        let four = || u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
        let string = |from: usize, to: usize| {
            // SAFETY: a list is only ever held after its strings were checked as
            // UTF-8 (`check_list`) or when they were copied from `ByteStr`s.
            unsafe { ByteStr::from_utf8_unchecked(wire.slice(start + from..start + to)) }
        };
        let text = || string(2, v.len());
        let binary = || wire.slice(start + 2..end);
        match id {
            I::PayloadFormatIndicator => P::PayloadFormatIndicator(byte()),
            I::MessageExpiryInterval => P::MessageExpiryInterval(four()),
            I::ContentType => P::ContentType(text()),
            I::ResponseTopic => P::ResponseTopic(text()),
            I::CorrelationData => P::CorrelationData(binary()),
            I::SubscriptionIdentifier => {
                P::SubscriptionIdentifier(read_var_int(v).ok().flatten().map_or(0, |(x, _)| x))
            }
            I::SessionExpiryInterval => P::SessionExpiryInterval(four()),
            I::AssignedClientIdentifier => P::AssignedClientIdentifier(text()),
            I::ServerKeepAlive => P::ServerKeepAlive(two()),
            I::AuthenticationMethod => P::AuthenticationMethod(text()),
            I::AuthenticationData => P::AuthenticationData(binary()),
            I::RequestProblemInformation => P::RequestProblemInformation(byte()),
            I::WillDelayInterval => P::WillDelayInterval(four()),
            I::RequestResponseInformation => P::RequestResponseInformation(byte()),
            I::ResponseInformation => P::ResponseInformation(text()),
            I::ServerReference => P::ServerReference(text()),
            I::ReasonString => P::ReasonString(text()),
            I::ReceiveMaximum => P::ReceiveMaximum(two()),
            I::TopicAliasMaximum => P::TopicAliasMaximum(two()),
            I::TopicAlias => P::TopicAlias(two()),
            I::MaximumQoS => P::MaximumQoS(byte()),
            I::RetainAvailable => P::RetainAvailable(byte()),
            I::UserProperty => {
                let key = 2 + usize::from(two());
                P::UserProperty(string(2, key), string(key + 2, v.len()))
            }
            I::MaximumPacketSize => P::MaximumPacketSize(four()),
            I::WildcardSubscriptionAvailable => P::WildcardSubscriptionAvailable(byte()),
            I::SubscriptionIdentifierAvailable => P::SubscriptionIdentifierAvailable(byte()),
            I::SharedSubscriptionAvailable => P::SharedSubscriptionAvailable(byte()),
        }
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
        append(out, self.encoded_len(), |w| self.write(w));
    }

    /// Writes the property; the caller has checked it (`check`).
    #[inline]
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
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
            | P::SharedSubscriptionAvailable(v) => w.array([id, *v]),
            P::ServerKeepAlive(v)
            | P::ReceiveMaximum(v)
            | P::TopicAliasMaximum(v)
            | P::TopicAlias(v) => {
                let [a, b] = v.to_be_bytes();
                w.array([id, a, b]);
            }
            P::MessageExpiryInterval(v)
            | P::SessionExpiryInterval(v)
            | P::WillDelayInterval(v)
            | P::MaximumPacketSize(v) => {
                let [a, b, c, d] = v.to_be_bytes();
                w.array([id, a, b, c, d]);
            }
            P::SubscriptionIdentifier(v) => {
                w.u8(id);
                w.var_int(*v as usize);
            }
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => write_tagged(w, id, s.as_bytes()),
            P::CorrelationData(b) | P::AuthenticationData(b) => write_tagged(w, id, b),
            P::UserProperty(k, v) => {
                write_tagged(w, id, k.as_bytes());
                w.field(v.as_bytes());
            }
        }
    }
}

/// An identifier and a length-prefixed field, the three header bytes in one store.
#[inline]
fn write_tagged(w: &mut Writer<'_>, id: u8, data: &[u8]) {
    let [a, b] = (data.len() as u16).to_be_bytes();
    w.array([id, a, b]);
    w.slice(data);
}

/// Checks a received property list against every rule of spec 2.2.2: known
/// identifiers, allowed in `ctx`, values of the right type and range, strings valid
/// UTF-8, and non-repeatable properties at most once. Errors come in the order a
/// reader meets them, property by property.
fn check_list(wire: &[u8], ctx: PropertyContext) -> Result<(), DecodeError> {
    let mut seen: u64 = 0;
    let mut rest = wire;
    while let Some(&first) = rest.first() {
        // The identifier is a variable byte integer; every known one fits in its
        // first byte.
        let (raw, n) = if first < 0x80 {
            (u32::from(first), 1)
        } else {
            read_var_int(rest)?.ok_or(DecodeError::UnexpectedEof)?
        };
        let id = u8::try_from(raw)
            .ok()
            .and_then(PropertyId::from_u8)
            .ok_or(DecodeError::UnknownProperty(raw.min(0xff) as u8))?;
        if !id.allowed_in(ctx) {
            return Err(DecodeError::PropertyNotAllowed(id as u8));
        }
        let len = id.check_value(&rest[n..])?;
        let bit = 1u64 << (id as u8);
        if seen & bit != 0 && !id.repeatable_in(ctx) {
            return Err(DecodeError::DuplicateProperty(id as u8));
        }
        seen |= bit;
        rest = &rest[n + len..];
    }
    Ok(())
}

/// The properties of a checked list: identifier, where the property starts, and
/// where its value starts and ends.
struct Raw<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl<'a> Raw<'a> {
    fn new(wire: &'a [u8]) -> Raw<'a> {
        Raw { wire, pos: 0 }
    }
}

impl Iterator for Raw<'_> {
    type Item = (PropertyId, usize, usize, usize);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // A checked list holds only known, one-byte identifiers and whole values;
        // anything else ends the walk rather than panicking.
        let at = self.pos;
        let id = PropertyId::from_u8(*self.wire.get(at)?)?;
        let start = at + 1;
        let end = start + id.value_len(&self.wire[start..])?;
        self.pos = end;
        Some((id, at, start, end))
    }
}

/// Keeps the properties of a wire list that `keep` accepts, given their identifier
/// and value bounds. The list is copied only when something is dropped.
fn retain_wire(wire: &mut Bytes, mut keep: impl FnMut(PropertyId, &Bytes, usize, usize) -> bool) {
    let mut kept: Option<BytesMut> = None;
    for (id, at, start, end) in Raw::new(wire) {
        match (&mut kept, keep(id, wire, start, end)) {
            (Some(out), true) => out.put_slice(&wire[at..end]),
            (None, false) => {
                let mut out = BytesMut::with_capacity(wire.len());
                out.put_slice(&wire[..at]);
                kept = Some(out);
            }
            _ => {}
        }
    }
    if let Some(out) = kept {
        *wire = if out.is_empty() {
            Bytes::new()
        } else {
            out.freeze()
        };
    }
}

/// A property list in wire order.
#[derive(Clone, PartialEq, Eq)]
pub struct Properties(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    /// The list as it goes on the wire, without its length prefix. Its properties are
    /// whole and its strings valid UTF-8: it was either received and checked by
    /// `check_list`, or encoded from `Property` values. Encodings are canonical, so
    /// equal lists have equal bytes.
    Wire(Bytes),
    /// A list holding a property that cannot be encoded (a field over 65535 bytes,
    /// a subscription identifier over the variable byte integer range), kept so that
    /// encoding the packet reports it. Only ever built by `from_vec`.
    Unencodable(Vec<Property>),
}

impl Default for Properties {
    fn default() -> Properties {
        Properties::new()
    }
}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

macro_rules! accessors {
    ($($(#[$doc:meta])* $name:ident -> $ty:ty = $variant:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Option<$ty> {
                match self.get(PropertyId::$variant)? {
                    Property::$variant(v) => Some(v),
                    _ => None,
                }
            }
        )*
    };
}

impl Properties {
    pub const fn new() -> Properties {
        Properties(Repr::Wire(Bytes::new()))
    }

    /// The list of these properties, in this order.
    pub fn from_vec(props: Vec<Property>) -> Properties {
        if props.iter().any(|p| p.check().is_err()) {
            return Properties(Repr::Unencodable(props));
        }
        if props.is_empty() {
            return Properties::new();
        }
        let mut out = BytesMut::with_capacity(props.iter().map(Property::encoded_len).sum());
        for p in &props {
            p.encode(&mut out);
        }
        Properties(Repr::Wire(out.freeze()))
    }

    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Wire(wire) => wire.is_empty(),
            Repr::Unencodable(list) => list.is_empty(),
        }
    }

    /// How many properties the list holds.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Wire(wire) => Raw::new(wire).count(),
            Repr::Unencodable(list) => list.len(),
        }
    }

    /// The properties in order. Strings and binary values share the list's buffer.
    pub fn iter(&self) -> Iter<'_> {
        self.matching(None)
    }

    fn matching(&self, only: Option<PropertyId>) -> Iter<'_> {
        Iter {
            inner: match &self.0 {
                Repr::Wire(wire) => Inner::Wire(wire, Raw::new(wire)),
                Repr::Unencodable(list) => Inner::List(list.iter()),
            },
            only,
        }
    }

    /// The properties in order, as a vector.
    pub fn to_vec(&self) -> Vec<Property> {
        self.iter().collect()
    }

    /// Appends a property (repeatable ones accumulate).
    pub fn push(&mut self, p: Property) {
        if let (Repr::Wire(wire), Ok(())) = (&self.0, p.check()) {
            let mut out = BytesMut::with_capacity(wire.len() + p.encoded_len());
            out.put_slice(wire);
            p.encode(&mut out);
            self.0 = Repr::Wire(out.freeze());
            return;
        }
        let mut list = self.to_vec();
        list.push(p);
        *self = Properties::from_vec(list);
    }

    /// Replaces any property with the same identifier, or appends it.
    pub fn set(&mut self, p: Property) {
        let id = p.id();
        let mut list = self.to_vec();
        match list.iter_mut().find(|q| q.id() == id) {
            Some(slot) => *slot = p,
            None => list.push(p),
        }
        *self = Properties::from_vec(list);
    }

    /// Removes every property with this identifier.
    pub fn remove(&mut self, id: PropertyId) {
        self.retain_ids(|i| i != id);
    }

    /// Keeps the properties whose identifier `keep` accepts. Cheaper than `retain`:
    /// it reads no values, and leaves the list untouched when it keeps them all.
    pub fn retain_ids(&mut self, mut keep: impl FnMut(PropertyId) -> bool) {
        match &mut self.0 {
            Repr::Wire(wire) => retain_wire(wire, |id, _, _, _| keep(id)),
            Repr::Unencodable(_) => self.retain(|p| keep(p.id())),
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Property) -> bool) {
        if let Repr::Wire(wire) = &mut self.0 {
            return retain_wire(wire, |id, wire, start, end| {
                keep(&Property::from_wire(id, wire, start, end))
            });
        }
        let mut list = self.to_vec();
        list.retain(keep);
        *self = Properties::from_vec(list);
    }

    /// The first property with this identifier.
    pub fn get(&self, id: PropertyId) -> Option<Property> {
        self.matching(Some(id)).next()
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
        self.matching(Some(PropertyId::SubscriptionIdentifier))
            .filter_map(|p| match p {
                Property::SubscriptionIdentifier(v) => Some(v),
                _ => None,
            })
    }

    /// User properties in order, duplicates kept (spec 3.3.2.3.7), borrowed from the
    /// list.
    pub fn user_properties(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        // One of the two is empty.
        let (wire, list): (&[u8], &[Property]) = match &self.0 {
            Repr::Wire(wire) => (wire, &[]),
            Repr::Unencodable(list) => (&[], list),
        };
        let text = move |from: usize, to: usize| {
            // SAFETY: the strings of a wire list are valid UTF-8 (see `Repr::Wire`).
            unsafe { std::str::from_utf8_unchecked(&wire[from..to]) }
        };
        let from_wire = Raw::new(wire)
            .filter(|&(id, ..)| id == PropertyId::UserProperty)
            .map(move |(_, _, start, end)| {
                let key_end = start + 2 + usize::from(be16(wire, start).unwrap_or(0));
                (text(start + 2, key_end), text(key_end + 2, end))
            });
        let from_list = list.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        });
        from_wire.chain(from_list)
    }

    /// Decodes a property length and list, enforcing which properties `ctx` allows,
    /// the value rules and that non-repeatable properties appear once. The list is
    /// kept as a slice of the frame.
    #[inline]
    pub(crate) fn decode(r: &mut Reader, ctx: PropertyContext) -> Result<Properties, DecodeError> {
        let len = r.var_int()? as usize;
        if len == 0 {
            return Ok(Properties::new());
        }
        let wire = r.take(len)?;
        check_list(&wire, ctx)?;
        Ok(Properties(Repr::Wire(wire)))
    }

    /// `check` and `body_len` in one step.
    #[inline]
    pub(crate) fn checked_body_len(&self) -> Result<usize, EncodeError> {
        match &self.0 {
            Repr::Wire(wire) => Ok(wire.len()),
            Repr::Unencodable(list) => {
                list.iter().try_for_each(Property::check)?;
                Ok(list.iter().map(Property::encoded_len).sum())
            }
        }
    }

    /// Length of the property list itself, without its length prefix.
    #[inline]
    pub fn body_len(&self) -> usize {
        match &self.0 {
            Repr::Wire(wire) => wire.len(),
            Repr::Unencodable(list) => list.iter().map(Property::encoded_len).sum(),
        }
    }

    /// Length on the wire including the variable-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        var_int_len(body) + body
    }

    pub(crate) fn check(&self) -> Result<(), EncodeError> {
        self.checked_body_len().map(drop)
    }

    /// Writes the list without its length prefix; the caller has checked it.
    #[inline]
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        match &self.0 {
            Repr::Wire(wire) => w.slice(wire),
            Repr::Unencodable(list) => list.iter().for_each(|p| p.write(w)),
        }
    }

    /// Writes the length prefix and the list. `body_len` is `self.body_len()`.
    #[inline]
    pub(crate) fn encode(&self, body_len: usize, out: &mut BytesMut) {
        put_var_int(out, body_len);
        match &self.0 {
            Repr::Wire(wire) => out.put_slice(wire),
            Repr::Unencodable(list) => list.iter().for_each(|p| p.encode(out)),
        }
    }
}

impl From<Vec<Property>> for Properties {
    fn from(v: Vec<Property>) -> Properties {
        Properties::from_vec(v)
    }
}

impl<'a> IntoIterator for &'a Properties {
    type Item = Property;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The properties of a list in order, each read from the wire when it is reached.
pub struct Iter<'a> {
    inner: Inner<'a>,
    /// Only the properties with this identifier; the others are skipped unread.
    only: Option<PropertyId>,
}

enum Inner<'a> {
    Wire(&'a Bytes, Raw<'a>),
    List(std::slice::Iter<'a, Property>),
}

impl Iterator for Iter<'_> {
    type Item = Property;

    #[inline]
    fn next(&mut self) -> Option<Property> {
        let wanted = |id: PropertyId| self.only.map_or(true, |only| only == id);
        match &mut self.inner {
            Inner::Wire(wire, raw) => raw
                .find(|&(id, ..)| wanted(id))
                .map(|(id, _, start, end)| Property::from_wire(id, wire, start, end)),
            Inner::List(list) => list.find(|p| wanted(p.id())).cloned(),
        }
    }
}
