//! Agents and what they report about their host.

use serde::{Deserialize, Serialize};

use crate::Pairs;

/// What an agent reported about its host (Neutron's agent `configurations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfigurations {
    /// physical network -> bridge
    pub bridge_mappings: Pairs,
    /// physical network -> interface
    pub interface_mappings: Pairs,
    pub tunnel_types: Vec<String>,
    pub tunneling_ip: Option<String>,
    pub integration_bridge: Option<String>,
    pub datapath_type: Option<String>,
    pub ovs_hybrid_plug: Option<bool>,
    /// Any other reported key, JSON-encoded values.
    pub extra: Pairs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub agent_type: String,
    pub binary: String,
    pub host: String,
    /// Computed by the host: heartbeat newer than `agent_down_time`.
    pub alive: bool,
    pub admin_state_up: bool,
    pub configurations: AgentConfigurations,
}

impl AgentConfigurations {
    /// The typed view of an agent's reported `configurations` dict. Keys the contract names
    /// are typed when they have the expected shape; every other key (and a named key of an
    /// unexpected shape, so that nothing reported is lost) goes to `extra` with its value
    /// JSON-encoded.
    pub fn from_reported(reported: &serde_json::Map<String, serde_json::Value>) -> Self {
        use serde_json::Value;
        let mut c = AgentConfigurations {
            bridge_mappings: vec![],
            interface_mappings: vec![],
            tunnel_types: vec![],
            tunneling_ip: None,
            integration_bridge: None,
            datapath_type: None,
            ovs_hybrid_plug: None,
            extra: vec![],
        };
        fn mappings(v: &Value) -> Option<Vec<(String, String)>> {
            v.as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        }
        fn strings(v: &Value) -> Option<Vec<String>> {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        }
        fn text(v: &Value) -> Option<Option<String>> {
            match v {
                Value::Null => Some(None),
                Value::String(s) => Some(Some(s.clone())),
                _ => None,
            }
        }
        for (key, value) in reported {
            let typed = match key.as_str() {
                "bridge_mappings" => mappings(value).map(|m| c.bridge_mappings = m),
                "interface_mappings" => mappings(value).map(|m| c.interface_mappings = m),
                "tunnel_types" => strings(value).map(|t| c.tunnel_types = t),
                "tunneling_ip" => text(value).map(|t| c.tunneling_ip = t),
                "integration_bridge" => text(value).map(|t| c.integration_bridge = t),
                "datapath_type" => text(value).map(|t| c.datapath_type = t),
                "ovs_hybrid_plug" => match value {
                    Value::Null => Some(()),
                    Value::Bool(b) => {
                        c.ovs_hybrid_plug = Some(*b);
                        Some(())
                    }
                    _ => None,
                },
                _ => None,
            };
            if typed.is_none() {
                c.extra.push((key.clone(), value.to_string()));
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reported_configurations_are_typed_and_the_rest_kept() {
        let reported = json!({
            "bridge_mappings": {"physnet1": "br-ex", "physnet2": "br-2"},
            "interface_mappings": {"physnet1": 7},
            "tunnel_types": ["vxlan", "gre"],
            "tunneling_ip": null,
            "integration_bridge": "br-int",
            "ovs_hybrid_plug": true,
            "datapath_type": 3,
            "devices": 12,
        });
        let c = AgentConfigurations::from_reported(reported.as_object().unwrap());
        assert_eq!(
            c.bridge_mappings,
            [
                ("physnet1".into(), "br-ex".into()),
                ("physnet2".into(), "br-2".into())
            ]
        );
        assert_eq!(c.tunnel_types, ["vxlan", "gre"]);
        assert_eq!(c.tunneling_ip, None);
        assert_eq!(c.integration_bridge.as_deref(), Some("br-int"));
        assert_eq!(c.ovs_hybrid_plug, Some(true));
        assert_eq!(c.datapath_type, None);
        assert!(c.interface_mappings.is_empty());
        // Malformed named keys are not dropped: drivers can still see what was reported.
        let mut extra = c.extra.clone();
        extra.sort();
        assert_eq!(
            extra,
            [
                ("datapath_type".into(), "3".into()),
                ("devices".into(), "12".into()),
                ("interface_mappings".into(), r#"{"physnet1":7}"#.into()),
            ]
        );
    }
}
