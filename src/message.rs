//! The routed message: what a PUBLISH becomes inside the broker. One `Arc<Message>`
//! is shared by every subscriber, every queue and every shard it reaches; payload and
//! topic are the `Bytes` sliced from the publisher's read buffer, never copied.

use std::time::Instant;

use bytes::Bytes;

use crate::protocol::{ByteStr, Properties, PropertyId, Publish, QoS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: ByteStr,
    pub payload: Bytes,
    /// The QoS it was published with; each subscriber gets at most its granted QoS.
    pub qos: QoS,
    /// The publisher's retain flag.
    pub retain: bool,
    /// v5 properties to forward unchanged: payload format, content type, response
    /// topic, correlation data, user properties (in order). Topic alias, message
    /// expiry and subscription identifiers are not kept here: they are per hop.
    pub properties: Properties,
    /// When the message expires (v5 Message Expiry Interval), if ever.
    pub expires_at: Option<Instant>,
    /// Identifies the publishing client (hash of its client id), for no-local.
    pub publisher: u64,
}

impl Message {
    /// Turns a received PUBLISH (topic alias already resolved) into a message.
    pub fn from_publish(p: Publish, publisher: u64, now: Instant) -> Message {
        let mut properties = p.properties;
        let mut expires_at = None;
        if !properties.is_empty() {
            if let Some(secs) = properties.message_expiry_interval() {
                expires_at = Some(now + std::time::Duration::from_secs(u64::from(secs)));
            }
            properties.retain_ids(|id| {
                !matches!(
                    id,
                    PropertyId::TopicAlias
                        | PropertyId::MessageExpiryInterval
                        | PropertyId::SubscriptionIdentifier
                )
            });
        }
        Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_at,
            publisher,
        }
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Seconds left before expiry, rounded up, for the Message Expiry Interval sent
    /// onward (v5 3.3.2.3.3: the received value minus the time spent waiting).
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|t| {
            let left = t.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// Bytes this message accounts for in a queue.
    pub fn cost(&self) -> usize {
        self.payload.len() + self.topic.len()
    }
}
