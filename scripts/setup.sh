#!/usr/bin/env bash
# Installs what building and testing Neutrino needs, when it is missing. Safe to run again.
set -euo pipefail

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is missing: install Rust 1.95 with rustup first (https://rustup.rs)" >&2
    exit 1
fi

# Drivers are WebAssembly components built for wasm32-wasip2.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

# A C toolchain for crates that build C code.
if ! command -v cc >/dev/null 2>&1; then
    echo "setup: installing a C compiler"
    $(need_root) apt-get update -q
    DEBIAN_FRONTEND=noninteractive $(need_root) apt-get install -y -q build-essential
fi

# Python with venv, for the real OpenStack clients that the tests drive (scripts/clients-venv.sh).
# Debian splits `venv`'s pip bootstrap (ensurepip) into python3-venv.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "setup: installing python3-venv"
    $(need_root) apt-get update -q
    DEBIAN_FRONTEND=noninteractive $(need_root) apt-get install -y -q python3 python3-venv
fi

# The dataplane: namespaces, bridges and veths (iproute2), Open vSwitch (userspace datapath),
# dnsmasq for DHCP (dnsmasq-utils: dhcp_release frees a removed port's lease), udhcpc as the instances' DHCP client, ping and ethtool for the tests, iptables, ipset and conntrack for security groups and routers' NAT, arping for routers' gratuitous ARPs.
missing=()
for tool in ip:iproute2 ping:iputils-ping ethtool:ethtool iptables:iptables dnsmasq:dnsmasq-base dhcp_release:dnsmasq-utils \
    udhcpc:udhcpc ovs-vsctl:openvswitch-switch ipset:ipset conntrack:conntrack arping:iputils-arping; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $(need_root) apt-get update -q
    DEBIAN_FRONTEND=noninteractive $(need_root) apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
