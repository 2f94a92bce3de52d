//! The serde representation is a stored format (`binding_result`, `vif_details`, attachments)
//! and the agent wire format: these tests pin it.

use serde_json::{Value, json};

use crate::*;

fn roundtrip<T>(value: &T, expected: Value)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(serde_json::to_value(value).unwrap(), expected);
    let back: T = serde_json::from_value(expected).unwrap();
    assert_eq!(&back, value);
}

#[test]
fn wire_format_is_stable() {
    let segment = Segment {
        id: "s1".into(),
        network_type: NetworkType::Vlan,
        physical_network: Some("physnet1".into()),
        segmentation_id: Some(100),
        mtu: 1500,
    };
    roundtrip(
        &segment,
        json!({"id": "s1", "network_type": "Vlan", "physical_network": "physnet1",
               "segmentation_id": 100, "mtu": 1500}),
    );
    roundtrip(
        &BindDecision::Bound(Bound {
            segment_id: "s1".into(),
            vif_type: "ovs".into(),
            vif_details: vec![("port_filter".into(), "true".into())],
        }),
        json!({"Bound": {"segment_id": "s1", "vif_type": "ovs",
                         "vif_details": [["port_filter", "true"]]}}),
    );
    roundtrip(
        &BindDecision::ContinueWith(ContinueWith {
            segment_id: "s1".into(),
            next_segments: vec![segment],
        }),
        json!({"ContinueWith": {"segment_id": "s1", "next_segments": [
            {"id": "s1", "network_type": "Vlan", "physical_network": "physnet1",
             "segmentation_id": 100, "mtu": 1500}]}}),
    );
    roundtrip(
        &BindDecision::Pass("no agent".into()),
        json!({"Pass": "no agent"}),
    );
    roundtrip(
        &DriverError::RetryLater("busy".into()),
        json!({"RetryLater": "busy"}),
    );
    roundtrip(
        &Attachment {
            kind: AttachmentKind::Dhcp,
            namespace: "qdhcp-n".into(),
            interface_name: "ns-1".into(),
        },
        json!({"kind": "Dhcp", "namespace": "qdhcp-n", "interface_name": "ns-1"}),
    );
    roundtrip(&VnicType::DirectPhysical, json!("DirectPhysical"));
    let plan: Plan = vec![
        Op::EnsureNamespace("qdhcp-n".into()),
        Op::EnsureOvsPort(OvsPortSpec {
            bridge: "br-int".into(),
            name: "qvo1".into(),
            port_type: OvsPortType::Patch("peer".into()),
            tag: Some(1),
            external_ids: vec![("iface-id".into(), "p".into())],
        }),
        Op::EnsureMacvlan(MacvlanSpec {
            name: "mv0".into(),
            parent: "eth1".into(),
            mode: MacvlanMode::Bridge,
            namespace: None,
            mac: None,
            mtu: Some(1500),
        }),
        Op::RemoveOvsPort(OvsPortRef {
            bridge: "br-int".into(),
            name: "qvo2".into(),
        }),
    ];
    roundtrip(
        &plan,
        json!([
            {"EnsureNamespace": "qdhcp-n"},
            {"EnsureOvsPort": {"bridge": "br-int", "name": "qvo1", "port_type": {"Patch": "peer"},
                               "tag": 1, "external_ids": [["iface-id", "p"]]}},
            {"EnsureMacvlan": {"name": "mv0", "parent": "eth1", "mode": "Bridge",
                               "namespace": null, "mac": null, "mtu": 1500}},
            {"RemoveOvsPort": {"bridge": "br-int", "name": "qvo2"}},
        ]),
    );
    roundtrip(&OvsPortType::Internal, json!("Internal"));
}

#[test]
fn neutron_spellings_round_trip() {
    for name in ["normal", "direct-physical", "remote-managed", "smart-nic"] {
        assert_eq!(vnic_type_named(name).map(vnic_type_name), Some(name));
    }
    for name in ["flat", "vlan", "vxlan", "gre", "geneve", "local"] {
        assert_eq!(network_type_named(name).map(network_type_name), Some(name));
    }
    assert_eq!(vnic_type_named("direct_physical"), None);
    assert_eq!(network_type_named("VLAN"), None);
}
