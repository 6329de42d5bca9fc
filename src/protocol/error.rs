//! Decode and encode errors: small `Copy` values, each mapped to the reason code the
//! specification prescribes, so the broker can answer with the right CONNACK/DISCONNECT.

use super::ReasonCode;

/// Why a byte stream is not a valid MQTT packet. A partial packet is never an error:
/// decoding returns `Ok(None)` for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {size} bytes exceeds the maximum packet size of {max}")]
    PacketTooLarge { size: usize, max: u32 },
    #[error("reserved or unknown packet type {0}")]
    InvalidPacketType(u8),
    #[error("invalid fixed header flags {flags:#06b} for packet type {packet_type}")]
    InvalidHeaderFlags { packet_type: u8, flags: u8 },
    #[error("variable byte integer longer than 4 bytes or not minimally encoded")]
    MalformedVarInt,
    #[error("packet ended before its content")]
    UnexpectedEof,
    #[error("{0} bytes left over after the packet's content")]
    TrailingBytes(usize),
    #[error("string is not well-formed UTF-8 or contains U+0000")]
    InvalidUtf8,
    #[error("protocol name is neither \"MQTT\" nor \"MQIsdp\"")]
    InvalidProtocolName,
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    #[error("CONNECT reserved flag is set")]
    ConnectReservedFlag,
    #[error("will QoS or will retain set without the will flag")]
    WillFlagsWithoutWill,
    #[error("password flag set without the user name flag")]
    PasswordWithoutUsername,
    #[error("QoS 3 is not a valid QoS")]
    InvalidQoS,
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupOnQoS0,
    #[error("packet identifier 0 where a non-zero identifier is required")]
    ZeroPacketId,
    #[error("invalid topic name")]
    InvalidTopicName,
    #[error("invalid topic filter")]
    InvalidTopicFilter,
    #[error("empty topic name without a topic alias")]
    EmptyTopicWithoutAlias,
    #[error("topic alias 0")]
    TopicAliasZero,
    #[error("no-local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    #[error("SUBSCRIBE or UNSUBSCRIBE without a topic filter")]
    NoTopicFilters,
    #[error("SUBACK or UNSUBACK without a reason code")]
    NoReasonCodes,
    #[error("reserved bits set in subscription options")]
    InvalidSubscriptionOptions,
    #[error("retain handling 3 is reserved")]
    InvalidRetainHandling,
    #[error("subscription options ask for maximum QoS 3")]
    InvalidSubscriptionQoS,
    #[error("reserved bits set in CONNACK acknowledge flags")]
    InvalidConnAckFlags,
    #[error("reason code {0:#04x} is not valid in this packet")]
    InvalidReasonCode(u8),
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u8),
    #[error("property {0:#04x} is not allowed in this packet")]
    PropertyNotAllowed(u8),
    #[error("property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    #[error("property {0:#04x} has a forbidden value")]
    InvalidPropertyValue(u8),
    #[error("AUTH packet is not part of MQTT 3.x")]
    AuthInV3,
}

impl DecodeError {
    /// The reason code a v5 CONNACK or DISCONNECT should carry for this error.
    pub fn reason_code(self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            InvalidProtocolName | UnsupportedProtocolLevel(_) => {
                ReasonCode::UnsupportedProtocolVersion
            }
            InvalidTopicName => ReasonCode::TopicNameInvalid,
            InvalidTopicFilter => ReasonCode::TopicFilterInvalid,
            TopicAliasZero => ReasonCode::TopicAliasInvalid,
            ZeroPacketId
            | EmptyTopicWithoutAlias
            | NoLocalOnSharedSubscription
            | NoTopicFilters
            | NoReasonCodes
            | InvalidRetainHandling
            | InvalidSubscriptionQoS
            | DuplicateProperty(_)
            | InvalidPropertyValue(_) => ReasonCode::ProtocolError,
            InvalidPacketType(_)
            | InvalidHeaderFlags { .. }
            | MalformedVarInt
            | UnexpectedEof
            | TrailingBytes(_)
            | InvalidUtf8
            | ConnectReservedFlag
            | WillFlagsWithoutWill
            | PasswordWithoutUsername
            | InvalidQoS
            | DupOnQoS0
            | InvalidSubscriptionOptions
            | InvalidConnAckFlags
            | InvalidReasonCode(_)
            | UnknownProperty(_)
            | PropertyNotAllowed(_)
            | AuthInV3 => ReasonCode::MalformedPacket,
        }
    }
}

/// Why a packet value cannot be written to the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("packet body of {0} bytes exceeds the 268435455-byte limit")]
    PacketTooLarge(usize),
    #[error("string or binary field of {0} bytes exceeds 65535 bytes")]
    FieldTooLong(usize),
    #[error("packet identifier 0 where a non-zero identifier is required")]
    ZeroPacketId,
    #[error("variable byte integer {0} exceeds 268435455")]
    VarIntTooLarge(u32),
    #[error("this packet or field does not exist in the negotiated protocol version")]
    NotInVersion,
}
