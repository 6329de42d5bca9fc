//! `Properties` as a user sees it: a list received on the wire reads, edits and
//! re-encodes exactly like the same list built from `Property` values, and a list
//! that cannot be encoded says why when its packet is written.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use ringmq::protocol::{
    ByteStr, EncodeError, Packet, Properties, Property, PropertyId, ProtocolVersion, Publish, QoS,
};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// Short strings, multi-byte characters included.
fn string() -> impl Strategy<Value = ByteStr> {
    "[a-zé€😀/]{0,6}".prop_map(ByteStr::from)
}

/// Any property a PUBLISH may carry.
fn property() -> impl Strategy<Value = Property> {
    use Property as P;
    prop_oneof![
        (0u8..=1).prop_map(P::PayloadFormatIndicator),
        any::<u32>().prop_map(P::MessageExpiryInterval),
        string().prop_map(P::ContentType),
        string().prop_map(P::ResponseTopic),
        vec(any::<u8>(), 0..6).prop_map(|b| P::CorrelationData(b.into())),
        (1..=ringmq::protocol::MAX_VAR_INT).prop_map(P::SubscriptionIdentifier),
        (1..=u16::MAX).prop_map(P::TopicAlias),
        (string(), string()).prop_map(|(k, v)| P::UserProperty(k, v)),
    ]
}

/// Whether a PUBLISH may carry the list: no property that may appear once repeats.
fn once_each(list: &[Property]) -> bool {
    list.iter().enumerate().all(|(i, p)| {
        matches!(
            p.id(),
            PropertyId::UserProperty | PropertyId::SubscriptionIdentifier
        ) || list[..i].iter().all(|q| q.id() != p.id())
    })
}

/// Edits applied to both the list and its model.
#[derive(Debug, Clone)]
enum Edit {
    Push(Property),
    Set(Property),
    Remove(PropertyId),
    RetainIds(PropertyId),
    RetainNotUserKey(ByteStr),
}

fn edit() -> impl Strategy<Value = Edit> {
    let id = prop::sample::select(vec![
        PropertyId::MessageExpiryInterval,
        PropertyId::SubscriptionIdentifier,
        PropertyId::TopicAlias,
        PropertyId::UserProperty,
        PropertyId::ContentType,
    ]);
    prop_oneof![
        property().prop_map(Edit::Push),
        property().prop_map(Edit::Set),
        id.clone().prop_map(Edit::Remove),
        id.prop_map(Edit::RetainIds),
        string().prop_map(Edit::RetainNotUserKey),
    ]
}

fn apply(list: &mut Properties, model: &mut Vec<Property>, edit: Edit) {
    match edit {
        Edit::Push(p) => {
            model.push(p.clone());
            list.push(p);
        }
        Edit::Set(p) => {
            match model.iter_mut().find(|q| q.id() == p.id()) {
                Some(slot) => *slot = p.clone(),
                None => model.push(p.clone()),
            }
            list.set(p);
        }
        Edit::Remove(id) => {
            model.retain(|p| p.id() != id);
            list.remove(id);
        }
        Edit::RetainIds(id) => {
            model.retain(|p| p.id() == id);
            list.retain_ids(|i| i == id);
        }
        Edit::RetainNotUserKey(key) => {
            let keep = |p: &Property| !matches!(p, Property::UserProperty(k, _) if *k == key);
            model.retain(keep);
            list.retain(keep);
        }
    }
}

/// The list as a v5 PUBLISH carries it, then decoded back.
fn received(props: Properties) -> Properties {
    let mut publish = Publish::new("t", QoS::AtMostOnce, Bytes::new());
    publish.properties = props;
    let mut buf = BytesMut::new();
    Packet::Publish(publish)
        .encode(V5, &mut buf)
        .expect("a valid list encodes");
    match Packet::decode(&mut buf, V5, u32::MAX) {
        Ok(Some(Packet::Publish(p))) => p.properties,
        other => panic!("decoded {other:?}"),
    }
}

/// Every reading of `list` agrees with the model.
fn reads_as(list: &Properties, model: &[Property]) -> Result<(), TestCaseError> {
    prop_assert_eq!(&list.to_vec(), model);
    prop_assert_eq!(list.len(), model.len());
    prop_assert_eq!(list.is_empty(), model.is_empty());
    prop_assert_eq!(list, &Properties::from_vec(model.to_vec()));
    for id in PropertyId::ALL {
        prop_assert_eq!(list.get(id), model.iter().find(|p| p.id() == id).cloned());
    }
    let first = |id| model.iter().find(|p| p.id() == id);
    prop_assert_eq!(
        list.topic_alias(),
        first(PropertyId::TopicAlias).and_then(|p| match p {
            Property::TopicAlias(v) => Some(*v),
            _ => None,
        })
    );
    prop_assert_eq!(
        list.content_type(),
        first(PropertyId::ContentType).and_then(|p| match p {
            Property::ContentType(v) => Some(v.clone()),
            _ => None,
        })
    );
    let ids: Vec<u32> = model
        .iter()
        .filter_map(|p| match p {
            Property::SubscriptionIdentifier(v) => Some(*v),
            _ => None,
        })
        .collect();
    prop_assert_eq!(list.subscription_identifiers().collect::<Vec<_>>(), ids);
    let users: Vec<(&str, &str)> = model
        .iter()
        .filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
        .collect();
    prop_assert_eq!(list.user_properties().collect::<Vec<_>>(), users);
    prop_assert_eq!(format!("{list:?}"), format!("{model:?}"));
    Ok(())
}

proptest! {
    #[test]
    fn received_list_reads_and_edits_like_its_model(
        start in vec(property(), 0..8).prop_filter("a PUBLISH may carry it", |l| once_each(l)),
        edits in vec(edit(), 0..6),
    ) {
        let mut model = start.clone();
        let mut list = received(Properties::from_vec(start));
        reads_as(&list, &model)?;
        for e in edits {
            apply(&mut list, &mut model, e);
            reads_as(&list, &model)?;
        }
        // Edited, the list still goes out and comes back as itself.
        if once_each(&model) {
            prop_assert_eq!(received(list.clone()), list);
        }
    }
}

/// The PUBLISH of these properties, encoded at v5.
fn encode_with(props: Properties) -> Result<(), EncodeError> {
    let mut publish = Publish::new("t", QoS::AtMostOnce, Bytes::new());
    publish.properties = props;
    Packet::Publish(publish).encode(V5, &mut BytesMut::new())
}

#[test]
fn a_field_too_long_for_the_wire_fails_at_encode_however_it_got_in() {
    let long = ByteStr::from("x".repeat(70_000));
    let too_long = Property::ContentType(long.clone());
    let err = Err(EncodeError::FieldTooLong(70_000));
    assert_eq!(
        encode_with(Properties::from_vec(vec![too_long.clone()])),
        err
    );

    // Pushed onto a received list: still readable, still refused on the wire.
    let mut list = received(Properties::from_vec(vec![Property::TopicAlias(3)]));
    list.push(too_long.clone());
    assert_eq!(list.content_type(), Some(long));
    assert_eq!(list.topic_alias(), Some(3));
    assert_eq!(list.len(), 2);
    assert_eq!(encode_with(list.clone()), err);

    // Removing it makes the list encodable again.
    list.remove(PropertyId::ContentType);
    assert_eq!(list.to_vec(), [Property::TopicAlias(3)]);
    assert_eq!(encode_with(list), Ok(()));

    let huge_id = Property::SubscriptionIdentifier(ringmq::protocol::MAX_VAR_INT + 1);
    assert_eq!(
        encode_with(Properties::from_vec(vec![huge_id.clone()])),
        Err(EncodeError::VarIntTooLarge(
            ringmq::protocol::MAX_VAR_INT + 1
        ))
    );
    let mut set = Properties::new();
    set.set(huge_id);
    assert!(encode_with(set).is_err());
}

#[test]
fn removing_every_property_leaves_an_empty_list() {
    let mut list = received(Properties::from_vec(vec![
        Property::TopicAlias(1),
        Property::MessageExpiryInterval(5),
    ]));
    list.retain_ids(|_| false);
    assert!(list.is_empty());
    assert_eq!(list, Properties::new());
}
