//! `/v2.0/subnets` and `/v2.0/ports` (IPAM, MACs, delete rules, binding) against the statuses,
//! error types and texts a real Neutron gave (shared/reference/neutron-transcript), on SQLite
//! and PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Db, Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

async fn post(api: &TestApi, collection: &str, resource: &str, body: Value) -> Reply {
    api.call(
        Method::POST,
        &format!("/v2.0/{collection}"),
        Some(json!({ resource: body })),
    )
    .await
}

async fn created(api: &TestApi, collection: &str, resource: &str, body: Value) -> Value {
    let r = post(api, collection, resource, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body[resource].clone()
}

async fn network(api: &TestApi) -> String {
    created(api, "networks", "network", json!({"name": "n"})).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn subnet(api: &TestApi, net: &str, cidr: &str) -> Value {
    created(
        api,
        "subnets",
        "subnet",
        json!({"network_id": net, "ip_version": 4, "cidr": cidr}),
    )
    .await
}

async fn port(api: &TestApi, body: Value) -> Reply {
    post(api, "ports", "port", body).await
}

fn ip_of(port: &Value) -> &str {
    port["fixed_ips"][0]["ip_address"].as_str().unwrap()
}

on_both_databases!(subnet_defaults_and_checks, |api: TestApi| async move {
    let net = network(&api).await;
    let s = subnet(&api, &net, "10.0.0.7/24").await;
    assert_eq!(s["cidr"], "10.0.0.0/24", "host bits dropped");
    assert_eq!(s["gateway_ip"], "10.0.0.1");
    assert_eq!(
        s["allocation_pools"],
        json!([{"start": "10.0.0.2", "end": "10.0.0.254"}])
    );
    assert_eq!(
        (&s["enable_dhcp"], &s["revision_number"]),
        (&json!(true), &json!(0))
    );
    assert_eq!(s["tenant_id"], s["project_id"]);
    let n = api
        .call(Method::GET, &format!("/v2.0/networks/{net}"), None)
        .await;
    assert_eq!(n.body["network"]["subnets"], json!([s["id"]]));

    let cases = [
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/33"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid input for operation: 10.0.0.0/33 is not in a CIDR format.",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "not-a-cidr"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid input for operation: not-a-cidr is not in a CIDR format.",
        ),
        (
            json!({"network_id": net, "ip_version": 6, "cidr": "10.0.0.0/24"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid input for operation: cidr '10.0.0.0/24' does not match the ip_version '6'",
        ),
        (
            json!({"network_id": "893c8295-1c43-4d8c-b808-c0ec0fbd0285", "ip_version": 4, "cidr": "10.1.0.0/24"}),
            StatusCode::NOT_FOUND,
            "NetworkNotFound",
            "Network 893c8295-1c43-4d8c-b808-c0ec0fbd0285 could not be found.",
        ),
        (
            json!({"network_id": net, "ip_version": 4}),
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/25"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "gateway_ip": "10.2.0.255"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid input for operation: Gateway is not valid on subnet",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "allocation_pools": [{"start": "10.2.0.10", "end": "10.2.1.10"}]}),
            StatusCode::BAD_REQUEST,
            "OutOfBoundsAllocationPool",
            "The allocation pool 10.2.0.10-10.2.1.10 spans beyond the subnet cidr 10.2.0.0/24.",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "allocation_pools": [{"start": "10.2.0.10", "end": "10.2.0.20", "x": 1}]}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
            "Invalid input for allocation_pools. Reason: Unrecognized attribute(s) 'x'",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "224.0.0.0/24"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid input for operation: Multicast IP subnet is not supported if enable_dhcp is True",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "127.0.0.0/8"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid input for operation: Loopback IP subnet is not supported if enable_dhcp is True",
        ),
        (
            json!({"network_id": net, "ip_version": 6, "cidr": "ff00::/8"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid input for operation: Multicast IP subnet is not supported if enable_dhcp is True",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "allocation_pools": [{"start": "10.2.0.10", "end": "10.2.0.20"}, {"start": "10.2.0.15", "end": "10.2.0.30"}]}),
            StatusCode::CONFLICT,
            "OverlappingAllocationPools",
            "",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "allocation_pools": [{"start": "10.2.0.1", "end": "10.2.0.20"}]}),
            StatusCode::CONFLICT,
            "GatewayConflictWithAllocationPools",
            "",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "dns_nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6"]}),
            StatusCode::BAD_REQUEST,
            "DNSNameServersExhausted",
            "",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "dns_nameservers": ["nope"]}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
            "",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "host_routes": [{"destination": "x"}]}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
            "",
        ),
        (
            json!({"network_id": net, "ip_version": 4, "cidr": "10.2.0.0/24", "ipv6_ra_mode": "slaac"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "",
        ),
        (
            json!({"network_id": net, "ip_version": 6, "cidr": "fd00:9::/80", "ipv6_address_mode": "slaac"}),
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "",
        ),
        (
            json!({"network_id": net, "cidr": "10.2.0.0/24"}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'ip_version' not specified",
        ),
    ];
    for (body, status, kind, message) in cases {
        let r = post(&api, "subnets", "subnet", body.clone()).await;
        assert_eq!(
            (r.status, r.error_type()),
            (status, kind),
            "{body}: {}",
            r.body
        );
        if !message.is_empty() {
            assert_eq!(r.error_message(), message, "{body}");
        }
    }
    let overlap = post(
        &api,
        "subnets",
        "subnet",
        json!({"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/25"}),
    )
    .await;
    assert_eq!(
        overlap.error_message(),
        format!(
            "Invalid input for operation: Requested subnet with cidr: 10.0.0.0/25 for network: {net} overlaps with another subnet."
        )
    );

    // A gateway outside the CIDR leaves the whole CIDR to the pool (as upstream does).
    let s = created(&api, "subnets", "subnet", json!({"network_id": net, "ip_version": 4, "cidr": "10.0.5.0/24", "gateway_ip": "10.9.9.1",
        "dns_nameservers": ["8.8.8.8"], "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.5.254"}]})).await;
    assert_eq!(
        s["allocation_pools"],
        json!([{"start": "10.0.5.1", "end": "10.0.5.254"}])
    );
    assert_eq!(s["dns_nameservers"], json!(["8.8.8.8"]));
    assert_eq!(
        s["host_routes"],
        json!([{"destination": "192.168.0.0/16", "nexthop": "10.0.5.254"}])
    );
    let v6 = created(
        &api,
        "subnets",
        "subnet",
        json!({"network_id": net, "ip_version": 6, "cidr": "fd00:1::/64",
        "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
    )
    .await;
    assert_eq!(v6["gateway_ip"], "fd00:1::");
    assert_eq!(
        v6["allocation_pools"],
        json!([{"start": "fd00:1::1", "end": "fd00:1::ffff:ffff:ffff:ffff"}])
    );

    // Update: name, DNS, pools (the free ranges follow), and a gateway that hits a pool.
    let id = s["id"].as_str().unwrap();
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/subnets/{id}"),
            Some(json!({"subnet": {"name": "renamed", "dns_nameservers": [],
        "allocation_pools": [{"start": "10.0.5.100", "end": "10.0.5.101"}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["subnet"]["revision_number"], 1);
    assert_eq!(r.body["subnet"]["dns_nameservers"], json!([]));
    let p = port(
        &api,
        json!({"network_id": net, "fixed_ips": [{"subnet_id": id}]}),
    )
    .await;
    assert_eq!(ip_of(&p.body["port"]), "10.0.5.100");
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/subnets/{id}"),
            Some(json!({"subnet": {"gateway_ip": "10.0.5.101"}})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::CONFLICT, "GatewayConflictWithAllocationPools")
    );
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/subnets/{id}"),
            Some(json!({"subnet": {"cidr": "10.0.6.0/24"}})),
        )
        .await;
    assert_eq!(r.error_message(), "Cannot update read-only attribute cidr");

    let r = api
        .call(
            Method::GET,
            "/v2.0/subnets?ip_version=6&fields=id&fields=cidr",
            None,
        )
        .await;
    assert_eq!(
        r.body["subnets"],
        json!([{"id": v6["id"], "cidr": "fd00:1::/64"}])
    );
    let r = api
        .call(
            Method::DELETE,
            &format!("/v2.0/subnets/{}", v6["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(
            Method::GET,
            "/v2.0/subnets/123cfb79-9cee-4e28-a7e5-f672056b7d92",
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error_message()),
        (
            StatusCode::NOT_FOUND,
            "Subnet 123cfb79-9cee-4e28-a7e5-f672056b7d92 could not be found."
        )
    );
});

on_both_databases!(port_addresses_and_errors, |api: TestApi| async move {
    let net = network(&api).await;
    let s = subnet(&api, &net, "10.0.0.0/24").await;
    let sid = s["id"].as_str().unwrap();
    let p1 = port(&api, json!({"network_id": net, "name": "p1"})).await;
    assert_eq!(p1.status, StatusCode::CREATED, "{}", p1.body);
    let p1 = &p1.body["port"];
    assert_eq!(
        p1["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "10.0.0.2"}]),
        "lowest free address"
    );
    assert!(p1["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    assert_eq!(
        (&p1["status"], &p1["revision_number"]),
        (&json!("DOWN"), &json!(1))
    );
    assert_eq!(p1["binding:vif_type"], "unbound");
    assert_eq!(
        (&p1["binding:vnic_type"], &p1["binding:profile"]),
        (&json!("normal"), &json!({}))
    );
    assert_eq!(
        p1["security_groups"].as_array().unwrap().len(),
        1,
        "the default group"
    );
    let p2 = port(
        &api,
        json!({"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.50"}]}),
    )
    .await;
    assert_eq!(ip_of(&p2.body["port"]), "10.0.0.50");
    assert_eq!(
        p2.body["port"]["security_groups"], p1["security_groups"],
        "one default group per project"
    );
    let p3 = port(&api, json!({"network_id": net})).await;
    assert_eq!(ip_of(&p3.body["port"]), "10.0.0.3");

    let other = network(&api).await;
    let cases = [
        (json!({"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.50"}]}), StatusCode::CONFLICT, "IpAddressAlreadyAllocated", format!("IP address 10.0.0.50 already allocated in subnet {sid}")),
        (json!({"network_id": net, "fixed_ips": [{"subnet_id": sid, "ip_address": "10.0.1.5"}]}), StatusCode::BAD_REQUEST, "InvalidIpForSubnet", "IP address 10.0.1.5 is not a valid IP for the specified subnet.".into()),
        (json!({"network_id": net, "fixed_ips": [{"ip_address": "192.168.5.5"}]}), StatusCode::BAD_REQUEST, "InvalidIpForNetwork", "IP address 192.168.5.5 is not a valid IP for any of the subnets on the specified network.".into()),
        (json!({"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.999"}]}), StatusCode::BAD_REQUEST, "HTTPBadRequest", "Invalid input for fixed_ips. Reason: '10.0.0.999' is not a valid IP address.".into()),
        (json!({"network_id": other, "fixed_ips": [{"subnet_id": sid}]}), StatusCode::BAD_REQUEST, "InvalidInput", format!("Invalid input for operation: Failed to create port on network {other}, because fixed_ips included invalid subnet {sid}.")),
        (json!({"network_id": "1aa2f903-e8b8-4c9a-9506-bd7842e25b85"}), StatusCode::NOT_FOUND, "NetworkNotFound", "Network 1aa2f903-e8b8-4c9a-9506-bd7842e25b85 could not be found.".into()),
        (json!({"name": "x"}), StatusCode::BAD_REQUEST, "HTTPBadRequest", "Failed to parse request. Required attribute 'network_id' not specified".into()),
        (json!({"network_id": net, "mac_address": p1["mac_address"]}), StatusCode::CONFLICT, "MacAddressInUse", format!("Unable to complete operation for network {net}. The mac address {} is in use.", p1["mac_address"].as_str().unwrap())),
        (json!({"network_id": net, "mac_address": "zz:zz"}), StatusCode::BAD_REQUEST, "HTTPBadRequest", "Invalid input for mac_address. Reason: 'zz:zz' is not a valid MAC address.".into()),
        (json!({"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.0"}]}), StatusCode::BAD_REQUEST, "InvalidIpForNetwork", String::new()),
        (json!({"network_id": net, "status": "ACTIVE"}), StatusCode::BAD_REQUEST, "HTTPBadRequest", "Attribute 'status' not allowed in POST".into()),
        (json!({"network_id": net, "binding:vnic_type": "weird"}), StatusCode::BAD_REQUEST, "HTTPBadRequest", String::new()),
        (json!({"network_id": net, "security_groups": ["51a6b772-7be4-4265-b22e-a5a966aa5d3c"]}), StatusCode::NOT_FOUND, "SecurityGroupNotFound", "Security group 51a6b772-7be4-4265-b22e-a5a966aa5d3c does not exist".into()),
        (json!({"network_id": net, "port_security_enabled": false, "allowed_address_pairs": [{"ip_address": "10.9.9.9"}]}), StatusCode::CONFLICT, "AddressPairAndPortSecurityRequired", String::new()),
    ];
    for (body, status, kind, message) in cases {
        let r = port(&api, body.clone()).await;
        assert_eq!(
            (r.status, r.error_type()),
            (status, kind),
            "{body}: {}",
            r.body
        );
        if !message.is_empty() {
            assert_eq!(r.error_message(), message, "{body}");
        }
    }
    // Nothing was half-written by the failures: the next address is still the lowest free one.
    let p4 = port(
        &api,
        json!({"network_id": net, "mac_address": "FA-16-3E-AA-BB-CC"}),
    )
    .await;
    assert_eq!(ip_of(&p4.body["port"]), "10.0.0.4");
    assert_eq!(p4.body["port"]["mac_address"], "fa:16:3e:aa:bb:cc");

    // Released addresses come back, lowest first.
    let p1_id = p1["id"].as_str().unwrap();
    assert_eq!(
        api.call(Method::DELETE, &format!("/v2.0/ports/{p1_id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = api
        .call(Method::GET, &format!("/v2.0/ports/{p1_id}"), None)
        .await;
    assert_eq!(
        (r.status, r.error_message()),
        (
            StatusCode::NOT_FOUND,
            format!("Port {p1_id} could not be found.").as_str()
        )
    );
    let again = port(&api, json!({"network_id": net})).await;
    assert_eq!(ip_of(&again.body["port"]), "10.0.0.2");

    // Update: swap an address, keep one by subnet, add attributes.
    let p2_id = p2.body["port"]["id"].as_str().unwrap();
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/ports/{p2_id}"),
            Some(json!({"port": {
        "fixed_ips": [{"subnet_id": sid}, {"ip_address": "10.0.0.60"}],
        "extra_dhcp_opts": [{"opt_name": "mtu", "opt_value": "1400"}],
        "allowed_address_pairs": [{"ip_address": "10.0.0.200/30"}],
        "dns_name": "vm-2", "name": "renamed"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let p = &r.body["port"];
    assert_eq!(
        p["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "10.0.0.50"}, {"subnet_id": sid, "ip_address": "10.0.0.60"}])
    );
    assert_eq!(
        p["extra_dhcp_opts"],
        json!([{"opt_name": "mtu", "opt_value": "1400", "ip_version": 4}])
    );
    assert_eq!(
        p["allowed_address_pairs"],
        json!([{"ip_address": "10.0.0.200/30", "mac_address": p["mac_address"]}])
    );
    assert_eq!(
        p["dns_assignment"][0],
        json!({"hostname": "vm-2", "ip_address": "10.0.0.50", "fqdn": "vm-2.openstacklocal."})
    );
    assert_eq!(p["revision_number"], 2);
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/ports/{p2_id}"),
            Some(json!({"port": {"fixed_ips": [{"ip_address": "10.0.0.61"}]}})),
        )
        .await;
    assert_eq!(
        r.body["port"]["fixed_ips"],
        json!([{"subnet_id": sid, "ip_address": "10.0.0.61"}])
    );
    let taken = port(
        &api,
        json!({"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.50"}]}),
    )
    .await;
    assert_eq!(
        taken.status,
        StatusCode::CREATED,
        "10.0.0.50 was released by the update: {}",
        taken.body
    );

    // Filters, in SQL and in memory.
    let r = api
        .call(
            Method::GET,
            "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.61",
            None,
        )
        .await;
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["ports"][0]["id"], p2_id);
    let r = api
        .call(
            Method::GET,
            &format!("/v2.0/ports?network_id={net}&fields=id&fields=fixed_ips"),
            None,
        )
        .await;
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 5);
    assert_eq!(r.body["ports"][0].as_object().unwrap().len(), 2);
    let r = api
        .call(Method::GET, "/v2.0/ports?name=renamed", None)
        .await;
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 1);
});

on_both_databases!(
    exhaustion_bulk_and_delete_rules,
    |api: TestApi| async move {
        let net = network(&api).await;
        let s = subnet(&api, &net, "10.0.0.0/30").await;
        let sid = s["id"].as_str().unwrap();
        let only = port(&api, json!({"network_id": net})).await;
        assert_eq!(ip_of(&only.body["port"]), "10.0.0.2");
        let r = port(&api, json!({"network_id": net})).await;
        assert_eq!(
            (r.status, r.error_type(), r.error_message()),
            (
                StatusCode::CONFLICT,
                "IpAddressGenerationFailure",
                format!("No more IP addresses available on network {net}.").as_str()
            )
        );

        // Bulk is all or nothing: the valid first port is not kept when the second fails.
        let big = network(&api).await;
        subnet(&api, &big, "10.1.0.0/24").await;
        let r = api
            .call(
                Method::POST,
                "/v2.0/ports",
                Some(json!({"ports": [
        {"network_id": big, "name": "ok"}, {"network_id": big, "mac_address": "bad"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = api
            .call(Method::GET, &format!("/v2.0/ports?network_id={big}"), None)
            .await;
        assert_eq!(r.body["ports"], json!([]));
        let r = api
            .call(
                Method::POST,
                "/v2.0/ports",
                Some(json!({"ports": [{"network_id": big}, {"network_id": big}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let ips: Vec<&str> = r.body["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(ip_of)
            .collect();
        assert_eq!(ips, ["10.1.0.2", "10.1.0.3"]);

        // Delete rules: a DHCP port goes with its subnet and network; any other port blocks them.
        let dhcp = port(
            &api,
            json!({"network_id": big, "device_owner": "network:dhcp"}),
        )
        .await;
        assert_eq!(
            dhcp.body["port"]["security_groups"],
            json!([]),
            "network: ports get no default group"
        );
        let r = api
            .call(Method::DELETE, &format!("/v2.0/networks/{net}"), None)
            .await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::CONFLICT, "NetworkInUse")
        );
        assert_eq!(
            r.error_message(),
            format!(
                "Unable to complete operation on network {net}. There are one or more ports still in use on the network, id for these ports is: {}.",
                only.body["port"]["id"].as_str().unwrap()
            )
        );
        let r = api
            .call(Method::DELETE, &format!("/v2.0/subnets/{sid}"), None)
            .await;
        assert_eq!((r.status, r.error_message()), (StatusCode::CONFLICT,
        format!("Unable to complete operation on subnet {sid}: One or more ports have an IP allocation from this subnet.").as_str()));
        let only_id = only.body["port"]["id"].as_str().unwrap();
        api.call(Method::DELETE, &format!("/v2.0/ports/{only_id}"), None)
            .await;
        assert_eq!(
            api.call(Method::DELETE, &format!("/v2.0/networks/{net}"), None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        for p in r_ports(&api, &big).await {
            if p["device_owner"] != "network:dhcp" {
                api.call(
                    Method::DELETE,
                    &format!("/v2.0/ports/{}", p["id"].as_str().unwrap()),
                    None,
                )
                .await;
            }
        }
        assert_eq!(
            api.call(Method::DELETE, &format!("/v2.0/networks/{big}"), None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/ports/{}", dhcp.body["port"]["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "the DHCP port went with its network"
        );
    }
);

async fn r_ports(api: &TestApi, net: &str) -> Vec<Value> {
    let r = api
        .call(Method::GET, &format!("/v2.0/ports?network_id={net}"), None)
        .await;
    r.body["ports"].as_array().unwrap().clone()
}

on_both_databases!(ipv6_addresses, |api: TestApi| async move {
    let net = network(&api).await;
    let v4 = subnet(&api, &net, "10.0.0.0/24").await;
    let slaac = created(
        &api,
        "subnets",
        "subnet",
        json!({"network_id": net, "ip_version": 6, "cidr": "fd00:1::/64",
        "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
    )
    .await;
    let stateful = created(
        &api,
        "subnets",
        "subnet",
        json!({"network_id": net, "ip_version": 6, "cidr": "fd00:2::/64"}),
    )
    .await;
    let p = port(
        &api,
        json!({"network_id": net, "mac_address": "fa:16:3e:00:00:01"}),
    )
    .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    assert_eq!(
        p.body["port"]["fixed_ips"],
        json!([
            {"subnet_id": v4["id"], "ip_address": "10.0.0.2"},
            {"subnet_id": stateful["id"], "ip_address": "fd00:2::1"},
            {"subnet_id": slaac["id"], "ip_address": "fd00:1::f816:3eff:fe00:1"},
        ])
    );
    // Issue 14: the SLAAC address comes whatever fixed_ips names (another subnet, or
    // nothing), as in Neutron; a router's port takes none; an update cannot drop it.
    for (mac, fixed_ips, want) in [
        (
            "fa:16:3e:00:00:02",
            json!([{"subnet_id": v4["id"]}]),
            json!([
                {"subnet_id": v4["id"], "ip_address": "10.0.0.3"},
                {"subnet_id": slaac["id"], "ip_address": "fd00:1::f816:3eff:fe00:2"},
            ]),
        ),
        (
            "fa:16:3e:00:00:03",
            json!([]),
            json!([{"subnet_id": slaac["id"], "ip_address": "fd00:1::f816:3eff:fe00:3"}]),
        ),
    ] {
        let p = port(
            &api,
            json!({"network_id": net, "mac_address": mac, "fixed_ips": fixed_ips}),
        )
        .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
        assert_eq!(p.body["port"]["fixed_ips"], want, "{fixed_ips}");
    }
    let router = port(
        &api,
        json!({"network_id": net, "device_owner": "network:router_interface",
            "fixed_ips": [{"subnet_id": v4["id"]}]}),
    )
    .await;
    assert_eq!(
        router.body["port"]["fixed_ips"].as_array().unwrap().len(),
        1
    );
    let id = p.body["port"]["id"].as_str().unwrap();
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/ports/{id}"),
            Some(json!({"port": {"fixed_ips": [{"subnet_id": v4["id"]}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let kept: Vec<&Value> = r.body["port"]["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subnet_id"] == slaac["id"])
        .collect();
    assert_eq!(kept.len(), 1, "{}", r.body);
    // The SLAAC subnet can go while ports (not a router's) hold its addresses: they go too.
    let r = api
        .call(
            Method::DELETE,
            &format!("/v2.0/subnets/{}", slaac["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = api
        .call(Method::GET, &format!("/v2.0/ports/{id}"), None)
        .await;
    assert!(
        !r.body["port"]["fixed_ips"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["subnet_id"] == slaac["id"]),
        "{}",
        r.body
    );
});

on_both_databases!(policy_and_binding, |api: TestApi| async move {
    let alice = Some(("project-a", "member,reader"));
    let bob = Some(("project-b", "member,reader"));
    let r = api
        .call_as(
            alice,
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "a"}})),
        )
        .await;
    let net = r.body["network"]["id"].as_str().unwrap().to_string();
    let r = api
        .call_as(
            alice,
            Method::POST,
            "/v2.0/subnets",
            Some(
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "192.168.10.0/24"}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .call_as(
            bob,
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"network_id": net}})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::NOT_FOUND, "NetworkNotFound")
    );
    let r = api
        .call_as(
            bob,
            Method::POST,
            "/v2.0/subnets",
            Some(
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "192.168.11.0/24"}}),
            ),
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::NOT_FOUND, "NetworkNotFound")
    );
    let r = api
        .call_as(
            alice,
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"network_id": net, "binding:host_id": "h"}})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_message()),
        (
            StatusCode::FORBIDDEN,
            "(rule:create_port and rule:create_port:binding:host_id) is disallowed by policy"
        )
    );
    let r = api
        .call_as(
            alice,
            Method::POST,
            "/v2.0/ports",
            Some(json!({"port": {"network_id": net}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let member_view = r.body["port"].as_object().unwrap().clone();
    assert!(
        !member_view.contains_key("binding:host_id")
            && !member_view.contains_key("binding:vif_type")
    );
    assert_eq!(member_view["binding:vnic_type"], "normal");
    let pid = member_view["id"].as_str().unwrap().to_string();
    let path = format!("/v2.0/ports/{pid}");
    for (body, message) in [
        (
            json!({"binding:host_id": "h"}),
            "(rule:update_port and rule:update_port:binding:host_id) is disallowed by policy",
        ),
        (
            json!({"mac_address": "fa:16:3e:00:00:09"}),
            "(rule:update_port and rule:update_port:mac_address) is disallowed by policy",
        ),
    ] {
        let r = api
            .call_as(alice, Method::PUT, &path, Some(json!({"port": body})))
            .await;
        assert_eq!(
            (r.status, r.error_message()),
            (StatusCode::FORBIDDEN, message)
        );
    }
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"port": {"name": "x"}}))),
        (Method::DELETE, None),
    ] {
        let r = api.call_as(bob, method.clone(), &path, body).await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::NOT_FOUND, "PortNotFound"),
            "bob {method}"
        );
    }
    let r = api
        .call_as(
            Some(("project-a", "reader")),
            Method::PUT,
            &path,
            Some(json!({"port": {"name": "x"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api.call_as(bob, Method::GET, "/v2.0/ports", None).await;
    assert_eq!(r.body["ports"], json!([]));

    // Binding to a host without any agent fails, and says why, driver by driver.
    let r = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"port": {"binding:host_id": "compute-without-agent"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (
            &r.body["port"]["binding:vif_type"],
            &r.body["port"]["binding:host_id"]
        ),
        (&json!("binding_failed"), &json!("compute-without-agent"))
    );
    assert_eq!(r.body["port"]["binding:vif_details"], json!({}));
    let b = api
        .call(Method::GET, &format!("{path}/binding"), None)
        .await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    let decisions = b.body["binding"]["decisions"].as_array().unwrap();
    assert_eq!(
        decisions.len(),
        3,
        "each of the three drivers was asked: {}",
        b.body
    );
    assert!(decisions.iter().all(|d| d["decision"] == "pass" && d["reason"].as_str().is_some_and(|r| !r.is_empty())), "{}", b.body);
    let r = api
        .call_as(alice, Method::GET, &format!("{path}/binding"), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Clearing the host unbinds; `null` (what `openstack port unset --host` sends) clears it too.
    let r = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"port": {"binding:host_id": null}})),
        )
        .await;
    assert_eq!(r.body["port"]["binding:vif_type"], "unbound");
});

/// Many port creates at once, spread over two servers sharing one database: no address or MAC
/// is ever given twice, and exactly the pool's size succeed.
async fn concurrent_ports(db: Db) {
    let (a, b) = TestApi::two(db).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let net = network(&a).await;
    subnet(&a, &net, "10.0.0.0/26").await; // 61 addresses in the pool
    let mut tasks = Vec::new();
    for i in 0..80 {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        let net = net.clone();
        tasks.push(tokio::spawn(async move {
            port(&api, json!({"network_id": net})).await
        }));
    }
    let (mut ips, mut macs, mut exhausted) = (HashSet::new(), HashSet::new(), 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                assert!(
                    ips.insert(ip_of(&r.body["port"]).to_string()),
                    "duplicate IP"
                );
                assert!(
                    macs.insert(r.body["port"]["mac_address"].as_str().unwrap().to_string()),
                    "duplicate MAC"
                );
            }
            _ => {
                assert_eq!(r.error_type(), "IpAddressGenerationFailure", "{}", r.body);
                exhausted += 1;
            }
        }
    }
    assert_eq!((ips.len(), exhausted), (61, 19));
}

/// Creates at once spread over several networks, so that a batch of the port writer reads and
/// writes many networks' MACs, DHCP hosts and free ranges in shared statements: each network's
/// pool is handed out lowest first, each address once, and nothing beyond the pool.
async fn concurrent_ports_over_networks(db: Db) {
    let (a, b) = TestApi::two(db).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut nets = Vec::new();
    for i in 0..4 {
        let net = network(&a).await;
        // A used-up subnet first: defaults come from the next one.
        subnet(&a, &net, &format!("10.{i}.0.0/30")).await;
        assert_eq!(
            port(&a, json!({"network_id": net})).await.status,
            StatusCode::CREATED
        );
        subnet(&a, &net, &format!("10.{i}.1.0/28")).await; // 13 addresses in the pool
        nets.push(net);
    }
    let mut tasks = Vec::new();
    for i in 0..64 {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        let net = nets[i % nets.len()].clone();
        tasks.push(tokio::spawn(async move {
            (net.clone(), port(&api, json!({"network_id": net})).await)
        }));
    }
    let mut ips: HashMap<String, Vec<String>> = HashMap::new();
    let mut macs = HashSet::new();
    for t in tasks {
        let (net, r) = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                assert!(macs.insert(r.body["port"]["mac_address"].as_str().unwrap().to_string()));
                ips.entry(net)
                    .or_default()
                    .push(ip_of(&r.body["port"]).to_string());
            }
            _ => assert_eq!(r.error_type(), "IpAddressGenerationFailure", "{}", r.body),
        }
    }
    for (i, net) in nets.iter().enumerate() {
        let mut got = ips.remove(net).unwrap_or_default();
        got.sort_by_key(|ip| ip.parse::<std::net::Ipv4Addr>().unwrap());
        let pool: Vec<String> = (2..=14).map(|h| format!("10.{i}.1.{h}")).collect();
        assert_eq!(got, pool, "network {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ports_over_networks_sqlite() {
    concurrent_ports_over_networks(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ports_over_networks_postgres() {
    concurrent_ports_over_networks(Db::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ports_sqlite() {
    concurrent_ports(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ports_postgres() {
    concurrent_ports(Db::Postgres).await
}

on_both_databases!(binding_with_a_live_agent, |api: TestApi| async move {
    let net = network(&api).await;
    subnet(&api, &net, "10.0.0.0/24").await;
    let r = api
        .report(json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent",
            "host": "compute1", "topic": "N/A", "start_flag": true,
            "configurations": {"bridge_mappings": {"physnet1": "br-ex"}, "tunnel_types": ["vxlan"],
                "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int", "datapath_type": "netdev",
                "ovs_hybrid_plug": true}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Bound at create, through the OVS driver; a failed port rebinds when its host changes.
    let p = port(
        &api,
        json!({"network_id": net, "binding:host_id": "compute1"}),
    )
    .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    assert_eq!(p.body["port"]["binding:vif_type"], "ovs", "{}", p.body);
    assert_eq!(
        p.body["port"]["binding:vif_details"]["bridge_name"],
        "br-int"
    );
    let failed = port(
        &api,
        json!({"network_id": net, "binding:host_id": "elsewhere"}),
    )
    .await;
    assert_eq!(failed.body["port"]["binding:vif_type"], "binding_failed");
    let path = format!(
        "/v2.0/ports/{}",
        failed.body["port"]["id"].as_str().unwrap()
    );
    let r = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"port": {"binding:host_id": "compute1"}})),
        )
        .await;
    assert_eq!(r.body["port"]["binding:vif_type"], "ovs", "{}", r.body);
    let b = api
        .call(Method::GET, &format!("{path}/binding"), None)
        .await;
    assert_eq!(b.body["binding"]["status"], "bound", "{}", b.body);
    assert_eq!(
        b.body["binding"]["decisions"][0]["decision"], "bound",
        "{}",
        b.body
    );
});
