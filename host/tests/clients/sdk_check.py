"""Drives a running `neutrino serve` with the real openstacksdk, one section per run.

Usage: sdk_check.py SECTION  (networks, pagination, pagination_ports, extensions, subnets, ports,
agents)

The endpoint comes from the environment the way a user would set it (OS_AUTH_TYPE=none,
OS_ENDPOINT=http://host:port): the SDK's own discovery must find /v2.0/ from there. Each section
asserts on what the SDK returns and, on success, prints one JSON object with what it saw for
the Rust side (host/tests/real_clients.rs) to check as well. Any failure is a traceback and a
non-zero exit.
"""

import json
import sys

import openstack
from openstack import exceptions


def connect():
    # Everything from OS_* in the environment, as the CLI would have it.
    return openstack.connect()


class RequestLog:
    """Records the GETs the network proxy sends, to see how the SDK pages."""

    def __init__(self, proxy):
        self.urls = []
        original = proxy.get

        def get(url, *args, **kwargs):
            self.urls.append((url, dict(kwargs.get("params") or {})))
            return original(url, *args, **kwargs)

        # Resource.list calls session.get on the proxy instance; shadow it there.
        proxy.get = get


def networks(conn):
    net = conn.network.create_network(name="sdk-net", description="from the sdk")
    assert net.id and net.name == "sdk-net", net
    assert net.status == "ACTIVE", net.status
    assert net.is_admin_state_up is True
    assert net.description == "from the sdk"
    assert net.mtu == 1450, net.mtu
    assert net.provider_network_type == "vxlan", net.provider_network_type
    assert net.project_id == "clients-project", net.project_id

    got = conn.network.get_network(net.id)
    assert got.id == net.id and got.name == "sdk-net"
    found = conn.network.find_network("sdk-net")
    assert found is not None and found.id == net.id
    assert conn.network.find_network("no-such-network") is None

    updated = conn.network.update_network(net, name="sdk-net-2", is_admin_state_up=False, mtu=1400)
    assert updated.name == "sdk-net-2" and updated.is_admin_state_up is False
    assert updated.mtu == 1400
    assert updated.revision_number == 2, updated.revision_number
    assert conn.network.get_network(net.id).name == "sdk-net-2"

    vlan = conn.network.create_network(
        name="sdk-vlan",
        provider_network_type="vlan",
        provider_physical_network="physnet1",
        provider_segmentation_id=101,
    )
    assert (vlan.provider_network_type, vlan.provider_segmentation_id) == ("vlan", 101)
    try:
        conn.network.create_network(
            name="sdk-vlan-again",
            provider_network_type="vlan",
            provider_physical_network="physnet1",
            provider_segmentation_id=101,
        )
        raise AssertionError("a second network on VLAN 101 was accepted")
    except exceptions.ConflictException as e:
        assert "VLAN 101" in str(e), e

    names = sorted(n.name for n in conn.network.networks())
    assert names == ["sdk-net-2", "sdk-vlan"], names
    assert [n.name for n in conn.network.networks(name="sdk-vlan")] == ["sdk-vlan"]

    conn.network.delete_network(net)
    conn.network.delete_network(vlan)
    try:
        conn.network.get_network(net.id)
        raise AssertionError("a deleted network is still there")
    except exceptions.NotFoundException:
        pass
    # Deleting what is gone: 404, which the SDK ignores when asked to.
    conn.network.delete_network(net.id, ignore_missing=True)
    return {"networks_left": len(list(conn.network.networks()))}


def paged(conn, collection, list_call, count, limit, make):
    """Creates `count` items, lists them `limit` at a time, checks each comes back once."""
    created = {make(i).id for i in range(count)}
    log = RequestLog(conn.network)
    seen = [x.id for x in list_call(limit=limit, paginated=True)]
    assert len(seen) == len(set(seen)), f"{collection}: an item came back twice: {seen}"
    assert set(seen) == created, f"{collection}: got {set(seen)}, created {created}"
    # Every page was asked for with the limit (the first from our call, the next ones from
    # the server's `next` links, whose query the SDK parses into lists).
    limits = [p.get("limit") for (_, p) in log.urls]
    assert all(str(x) in (str(limit), str([str(limit)])) for x in limits), limits
    assert len(log.urls) >= -(-count // limit), f"{collection}: only {len(log.urls)} requests"
    markers = [str(p.get("marker")) for (_, p) in log.urls if p.get("marker")]
    assert len(markers) == len(set(markers)), f"{collection}: a marker was sent twice: {markers}"
    return {"items": len(seen), "requests": len(log.urls), "markers": len(markers)}


def pagination(conn):
    result = {
        "networks": paged(
            conn, "networks", conn.network.networks, 7, 3,
            lambda i: conn.network.create_network(name=f"page-{i}"),
        )
    }
    return result


def pagination_ports(conn):
    net = conn.network.create_network(name="page-ports")
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.50.0.0/24")
    return {
        "ports": paged(
            conn, "ports", lambda **kw: conn.network.ports(network_id=net.id, **kw), 5, 2,
            lambda i: conn.network.create_port(network_id=net.id, name=f"page-port-{i}"),
        )
    }


def extensions(conn):
    aliases = sorted(e.alias for e in conn.network.extensions())
    for alias in ("pagination", "sorting", "project-id"):
        assert alias in aliases, f"{alias} not in {aliases}"
    one = conn.network.find_extension("pagination")
    assert one is not None and one.alias == "pagination" and one.name, one
    assert conn.network.find_extension("no-such-extension") is None
    return {"aliases": aliases}


def subnets(conn):
    net = conn.network.create_network(name="sdk-subnets")
    sub = conn.network.create_subnet(
        network_id=net.id, ip_version=4, cidr="10.40.0.0/24", name="sdk-sub",
        dns_nameservers=["10.40.0.53"],
    )
    assert sub.cidr == "10.40.0.0/24", sub.cidr
    assert sub.gateway_ip == "10.40.0.1", sub.gateway_ip
    assert sub.allocation_pools == [{"start": "10.40.0.2", "end": "10.40.0.254"}], sub.allocation_pools
    assert sub.ip_version == 4 and sub.is_dhcp_enabled is True
    assert sub.dns_nameservers == ["10.40.0.53"], sub.dns_nameservers
    assert sub.network_id == net.id
    assert conn.network.get_subnet(sub.id).cidr == "10.40.0.0/24"
    assert conn.network.find_subnet("sdk-sub").id == sub.id
    assert sub.id in conn.network.get_network(net.id).subnet_ids
    assert [s.id for s in conn.network.subnets(network_id=net.id)] == [sub.id]
    updated = conn.network.update_subnet(sub, name="sdk-sub-2", is_dhcp_enabled=False)
    assert updated.name == "sdk-sub-2" and updated.is_dhcp_enabled is False
    conn.network.delete_subnet(sub)
    assert conn.network.find_subnet(sub.id) is None
    conn.network.delete_network(net)
    return {"subnet": sub.id}


def ports(conn):
    net = conn.network.create_network(name="sdk-ports")
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.60.0.0/24")
    port = conn.network.create_port(network_id=net.id, name="sdk-port")
    assert port.network_id == net.id
    assert port.mac_address.startswith("fa:16:3e:"), port.mac_address
    assert len(port.fixed_ips) == 1, port.fixed_ips
    assert port.fixed_ips[0]["subnet_id"] == sub.id
    assert port.fixed_ips[0]["ip_address"].startswith("10.60.0."), port.fixed_ips
    assert port.status == "DOWN", port.status
    assert port.binding_vif_type == "unbound", port.binding_vif_type
    assert port.binding_host_id in ("", None), port.binding_host_id
    assert port.binding_vnic_type == "normal", port.binding_vnic_type

    fixed = conn.network.create_port(
        network_id=net.id, fixed_ips=[{"subnet_id": sub.id, "ip_address": "10.60.0.77"}]
    )
    assert fixed.fixed_ips[0]["ip_address"] == "10.60.0.77", fixed.fixed_ips
    try:
        conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.60.0.77"}])
        raise AssertionError("a second port got 10.60.0.77")
    except exceptions.ConflictException as e:
        assert "10.60.0.77" in str(e), e

    # The test registered a live Open vSwitch agent on sdk-compute-1: ovs-hybrid binds there.
    bound = conn.network.update_port(port, binding_host_id="sdk-compute-1")
    assert bound.binding_host_id == "sdk-compute-1", bound.binding_host_id
    assert bound.binding_vif_type == "ovs", bound.binding_vif_type
    assert bound.binding_vif_details.get("ovs_hybrid_plug") is True, bound.binding_vif_details
    assert conn.network.get_port(port.id).binding_vif_type == "ovs"

    # No agent lives on this host, so the mechanism manager finds no driver to bind.
    failed = conn.network.update_port(port, binding_host_id="sdk-host-without-agent")
    assert failed.binding_host_id == "sdk-host-without-agent", failed.binding_host_id
    assert failed.binding_vif_type == "binding_failed", failed.binding_vif_type
    shown = conn.network.get_port(port.id)
    assert shown.binding_host_id == "sdk-host-without-agent"
    assert shown.binding_vif_type == "binding_failed"
    assert [p.id for p in conn.network.ports(binding_host_id="sdk-host-without-agent")] == [port.id]

    unbound = conn.network.update_port(port, binding_host_id=None)
    assert unbound.binding_host_id in ("", None), unbound.binding_host_id
    assert unbound.binding_vif_type == "unbound", unbound.binding_vif_type

    assert sorted(p.id for p in conn.network.ports(network_id=net.id)) == sorted([port.id, fixed.id])
    assert conn.network.find_port("sdk-port").id == port.id
    conn.network.delete_port(port)
    conn.network.delete_port(fixed)
    assert conn.network.find_port(port.id) is None
    conn.network.delete_network(net)
    return {"port": port.id, "mac": port.mac_address, "ip": port.fixed_ips[0]["ip_address"]}


def agents(conn):
    listed = list(conn.network.agents())
    for a in listed:
        assert a.id and a.agent_type and a.host and a.binary, a
        assert isinstance(a.is_alive, bool), a
        assert conn.network.get_agent(a.id).id == a.id
    assert len(listed) == 1, listed
    agent = conn.network.update_agent(listed[0], description="rack 7", is_admin_state_up=False)
    assert agent.description == "rack 7" and agent.is_admin_state_up is False, agent
    assert conn.network.get_agent(agent.id).is_admin_state_up is False
    assert [a.id for a in conn.network.agents(host=agent.host)] == [agent.id]
    none = list(conn.network.agents(host="no-such-host"))
    assert none == [], none
    return {"agents": [{"type": a.agent_type, "host": a.host, "alive": a.is_alive} for a in listed]}


SECTIONS = {
    "networks": networks,
    "pagination": pagination,
    "pagination_ports": pagination_ports,
    "extensions": extensions,
    "subnets": subnets,
    "ports": ports,
    "agents": agents,
}

if __name__ == "__main__":
    result = SECTIONS[sys.argv[1]](connect())
    print(json.dumps(result))
