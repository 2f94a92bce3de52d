//! The call contexts the driver tests share: a normal port on a VLAN network with one live
//! Open vSwitch agent, from the kit's fixtures.

use neutrino::conformance::{AgentFixture, fixtures};
use neutrino_model::{BindContext, NetworkType, PortContext, VnicType};

pub const OVS: &str = "Open vSwitch agent";

/// Binding a normal port on a VLAN network with a live OVS agent.
pub fn bind_ctx() -> BindContext {
    let fx = AgentFixture::default();
    fixtures::bind_context(
        fixtures::port(VnicType::Normal),
        fx.network(NetworkType::Vlan),
        fx.live(OVS),
    )
}

/// Plugging (or unplugging) that port, bound `ovs` on the network's segment.
pub fn port_ctx() -> PortContext {
    let fx = AgentFixture::default();
    let network = fx.network(NetworkType::Vlan);
    let agent = fx.live(OVS).remove(0);
    fixtures::port_context(
        &fixtures::port(VnicType::Normal),
        &network,
        &network.segments[0],
        &agent,
        "ovs",
        &[],
    )
}
