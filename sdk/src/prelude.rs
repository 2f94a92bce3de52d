//! `use neutrino_sdk::prelude::*;` brings in what a driver usually needs.

pub use crate::Driver;
pub use crate::names;
pub use crate::plan::PlanBuilder;
pub use crate::types::*;
pub use crate::{
    agents_of_type, bind_with_agents, check_port_binding, check_segment_type, checked_ifname,
    config, json_bool, json_parse_bool, json_parse_str, json_str, log, network_type_name, pair,
    pairs_get, port_mac, segment_mtu, valid_mac, valid_mtu, vnic_type_name,
};
