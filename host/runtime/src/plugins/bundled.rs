//! The three drivers that ship inside the binary (built by host/runtime/build.rs).

/// (name, component bytes)
pub const BUNDLED: &[(&str, &[u8])] = &[
    (
        "flatdhcp",
        include_bytes!(concat!(env!("OUT_DIR"), "/flatdhcp.wasm")),
    ),
    (
        "ovs-hybrid",
        include_bytes!(concat!(env!("OUT_DIR"), "/ovs-hybrid.wasm")),
    ),
    (
        "linuxbridge",
        include_bytes!(concat!(env!("OUT_DIR"), "/linuxbridge.wasm")),
    ),
];

pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
