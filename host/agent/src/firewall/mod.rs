//! Security groups on this host, as Neutron's iptables hybrid firewall enforces them: bridged
//! traffic is filtered per bridge port (`-m physdev` on the port's host-side device, the tap of
//! every driver here: on the network's bridge for linuxbridge and flatdhcp, on the port's own
//! `qbr` for ovs-hybrid), with per-port chains ([`rules`]), conntrack zones per bridge, and one
//! ipset per remote group and family, so that a member joining a group changes a set and not
//! every peer's rules.
//!
//! Every change is one `iptables-restore --noflush` per family (atomic): only the chains of
//! ports whose rules changed are rewritten (declaring a chain in a `--noflush` restore flushes
//! it), and the dispatch chains only when the set of ports changed; a set is rewritten by
//! `ipset restore` into a new set swapped in. Nothing outside the `nq-` names is touched.

pub mod frames;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use neutrino_proto::{HostPort, PortFilter, RemoteGroupChange};
use rules::{DISPATCH, FALLBACK, Family, FilteredPort, PORTS, PortChains, ZONES, chain, set_name};

/// The first conntrack zone given to a bridge (Neutron's hybrid driver starts there too).
const FIRST_ZONE: u16 = 4097;

/// A port as the firewall must treat it: where its traffic crosses a bridge, and its filter
/// (None: accepted unfiltered, as a port without port security or a network service's port).
#[derive(Debug, Clone, PartialEq)]
pub struct FirewallPort {
    pub id: String,
    /// The port's host-side device, a port of `bridge`.
    pub device: String,
    pub bridge: String,
    pub mac: String,
    pub addresses: Vec<IpAddr>,
    pub filter: Option<PortFilter>,
}

impl FirewallPort {
    /// The port as the feed gave it, plugged through `device` on `bridge`.
    pub fn new(port: &HostPort, device: String, bridge: String) -> FirewallPort {
        FirewallPort {
            id: port.id.clone(),
            device,
            bridge,
            mac: port.mac_address.clone(),
            addresses: port
                .fixed_ips
                .iter()
                .filter_map(|f| f.ip_address.parse().ok())
                .collect(),
            filter: port.filter.clone(),
        }
    }

    fn chains(&self, family: Family, has_set: &dyn Fn(&str) -> bool) -> Option<PortChains> {
        let filter = self.filter.as_ref()?;
        let port = FilteredPort {
            id: &self.id,
            mac: &self.mac,
            addresses: &self.addresses,
            filter,
        };
        Some(PortChains::build(&port, family, has_set))
    }

    /// Its frames chain's rules (None: not filtered): ARP for its IPv4 addresses and pairs.
    fn frames(&self) -> Option<Vec<String>> {
        let filter = self.filter.as_ref()?;
        rules::link_local(&self.mac)?;
        let mut sources: Vec<(String, String)> = self
            .addresses
            .iter()
            .filter(|a| a.is_ipv4())
            .map(|a| (self.mac.clone(), a.to_string()))
            .collect();
        for pair in &filter.allowed_address_pairs {
            if let Some(net) = rules::parse_cidr(&pair.ip_address)
                && net.addr().is_ipv4()
                && rules::link_local(&pair.mac_address).is_some()
            {
                sources.push((pair.mac_address.clone(), net.trunc().to_string()));
            }
        }
        Some(frames::port_rules(&self.mac, &sources))
    }

    fn remote_groups(&self) -> impl Iterator<Item = &str> {
        self.filter
            .iter()
            .flat_map(|f| &f.rules)
            .filter_map(|r| r.remote_group_id.as_deref())
    }
}

/// The rules of the dispatch chain, of the ports chain and of the raw table's zones chain.
type Written = (Vec<String>, Vec<String>, Vec<String>);

/// What is in the kernel for one port.
#[derive(Debug, Clone, PartialEq)]
struct Applied {
    port: FirewallPort,
    chains: BTreeMap<Family, PortChains>,
}

/// The host's firewall state: what it applied, and the remote groups' members it knows.
#[derive(Default)]
pub struct Firewall {
    applied: HashMap<String, Applied>,
    /// Remote group id -> its member addresses (both families).
    groups: HashMap<String, BTreeSet<IpAddr>>,
    /// Set name -> its members in the kernel (None: a set an earlier run left, contents
    /// unknown).
    sets: HashMap<String, Option<BTreeSet<IpAddr>>>,
    /// Bridge -> its conntrack zone.
    zones: BTreeMap<String, u16>,
    /// The dispatch and zone chains as last written (rewritten only when they change).
    dispatch: HashMap<Family, Written>,
    /// Each filtered port's frames chain as written: port id -> (device, rules).
    frames: BTreeMap<String, (String, Vec<String>)>,
    started: bool,
}

impl Firewall {
    pub fn new() -> Firewall {
        Firewall::default()
    }

    /// The ports filtered now (their ids).
    pub fn filtered(&self) -> impl Iterator<Item = &str> {
        self.applied
            .values()
            .filter(|a| a.port.filter.is_some())
            .map(|a| a.port.id.as_str())
    }

    /// Takes the remote groups' members from a feed answer (with `full`, every group).
    pub fn groups_changed(&mut self, changes: &[RemoteGroupChange], full: bool) {
        if full {
            self.groups.clear();
        }
        for change in changes {
            match &change.members {
                Some(members) => {
                    let addresses = members.iter().filter_map(|m| parse_member(m)).collect();
                    self.groups.insert(change.id.clone(), addresses);
                }
                None => {
                    self.groups.remove(&change.id);
                }
            }
        }
    }

    /// Brings the kernel to: `ports` as given (others kept as they are, unless `full`: then
    /// every other port's chains go), `removed` gone, every set current. One restore per
    /// family; on failure nothing of that family changed and the error says why.
    pub async fn apply(
        &mut self,
        ports: Vec<FirewallPort>,
        removed: &[String],
        full: bool,
    ) -> Result<()> {
        if !self.started {
            self.start().await?;
        }
        let mut next: HashMap<String, FirewallPort> = if full {
            HashMap::new()
        } else {
            self.applied
                .iter()
                .map(|(id, a)| (id.clone(), a.port.clone()))
                .collect()
        };
        for id in removed {
            next.remove(id);
        }
        for port in ports {
            next.insert(port.id.clone(), port);
        }
        // Sets first: the rules that name them must find them.
        let wanted_sets = self.wanted_sets(next.values());
        let departed = self.write_sets(&wanted_sets).await?;
        let has_set = |name: &str| wanted_sets.get(name).is_some_and(|m| !m.is_empty());

        for bridge in next
            .values()
            .filter(|p| p.filter.is_some())
            .map(|p| p.bridge.clone())
        {
            self.zone_of(&bridge);
        }
        let mut built: HashMap<String, Applied> = HashMap::new();
        for (id, port) in &next {
            let chains = Family::BOTH
                .into_iter()
                .filter_map(|f| port.chains(f, &has_set).map(|c| (f, c)))
                .collect();
            built.insert(
                id.clone(),
                Applied {
                    port: port.clone(),
                    chains,
                },
            );
        }
        for family in Family::BOTH {
            let (filter, raw, written) = self.restore_text(family, &built, full).await?;
            if filter != "*filter\nCOMMIT\n" {
                restore(family, &filter).await?;
            }
            if let Some(raw) = raw {
                restore(family, &raw).await?;
            }
            self.dispatch.insert(family, written);
        }
        let frames: BTreeMap<String, (String, Vec<String>)> = built
            .values()
            .filter_map(|a| {
                a.port
                    .frames()
                    .map(|r| (a.port.id.clone(), (a.port.device.clone(), r)))
            })
            .collect();
        let text = frames::restore_text(&self.frames, &frames, full).await?;
        if text != "*nat\n" {
            run("ebtables-restore", &["--noflush"], Some(&text)).await?;
        }
        self.frames = frames;
        // Connections a rule that went may have allowed: their conntrack entries go, as
        // Neutron's firewall deletes them (a flow still allowed is picked up again by
        // conntrack). Rules only added take nothing away: nothing to forget.
        let flushes: Vec<FirewallPort> = self
            .applied
            .iter()
            .filter(|(id, old)| old.port.filter.is_some() && lost_rules(old, built.get(*id)))
            .map(|(_, old)| old.port.clone())
            .collect();
        self.applied = built;
        self.drop_unused_sets(&wanted_sets).await;
        self.forget_connections(&flushes, &departed).await;
        Ok(())
    }

    /// The sets the filtered ports' rules name, with their members.
    fn wanted_sets<'a>(
        &self,
        ports: impl Iterator<Item = &'a FirewallPort>,
    ) -> HashMap<String, BTreeSet<IpAddr>> {
        let mut sets = HashMap::new();
        for group in ports.flat_map(FirewallPort::remote_groups) {
            for family in Family::BOTH {
                let members: BTreeSet<IpAddr> = self
                    .groups
                    .get(group)
                    .into_iter()
                    .flatten()
                    .filter(|a| Family::of(a) == family)
                    .copied()
                    .collect();
                sets.insert(set_name(family, group), members);
            }
        }
        sets
    }

    /// The filter table's restore text for `family`, the raw table's when the zones changed,
    /// and the dispatch and zone chains they write.
    async fn restore_text(
        &self,
        family: Family,
        built: &HashMap<String, Applied>,
        full: bool,
    ) -> Result<(String, Option<String>, Written)> {
        let mut ports: Vec<&Applied> = built.values().collect();
        ports.sort_by(|a, b| a.port.id.cmp(&b.port.id));
        let mut dispatch = Vec::new();
        let mut sg = Vec::new();
        for a in &ports {
            let d = &a.port.device;
            let out = format!("-m physdev --physdev-out {d} --physdev-is-bridged");
            let inn = format!("-m physdev --physdev-in {d} --physdev-is-bridged");
            if a.chains.contains_key(&family) {
                dispatch.push(format!("{out} -j {PORTS}"));
                dispatch.push(format!("{inn} -j {PORTS}"));
                sg.push(format!("{out} -j {}", chain('i', &a.port.id)));
                sg.push(format!("{inn} -j {}", chain('o', &a.port.id)));
            } else {
                dispatch.push(format!("{out} -j ACCEPT"));
                dispatch.push(format!("{inn} -j ACCEPT"));
            }
        }
        sg.push("-j ACCEPT".into());
        let mut zones = Vec::new();
        for a in ports
            .iter()
            .filter(|a| a.port.filter.as_ref().is_some_and(|f| !f.stateful))
        {
            zones.push(format!(
                "-m physdev --physdev-in {} -j CT --notrack",
                a.port.device
            ));
        }
        let bridges: BTreeSet<&str> = ports
            .iter()
            .filter(|a| a.chains.contains_key(&family))
            .map(|a| a.port.bridge.as_str())
            .collect();
        for bridge in bridges {
            zones.push(format!("-i {bridge} -j CT --zone {}", self.zones[bridge]));
        }

        let mut text = String::from("*filter\n");
        let old = self.dispatch.get(&family);
        for a in &ports {
            let Some(chains) = a.chains.get(&family) else {
                continue;
            };
            let before = self
                .applied
                .get(&a.port.id)
                .and_then(|o| o.chains.get(&family));
            // Each chain only when it changed (the spoofing chain first: the egress one jumps
            // to it).
            let unchanged = |pick: fn(&PortChains) -> &Vec<String>| {
                !full && before.is_some_and(|b| pick(b) == pick(chains))
            };
            for (kind, pick) in [
                (
                    's',
                    (|c: &PortChains| &c.spoof) as fn(&PortChains) -> &Vec<String>,
                ),
                ('i', |c: &PortChains| &c.ingress),
                ('o', |c: &PortChains| &c.egress),
            ] {
                if !unchanged(pick) {
                    declare(&mut text, &chain(kind, &a.port.id), pick(chains));
                }
            }
        }
        // The dispatch after the chains it jumps to, before the chains it no longer does go:
        // whole on a full apply, else only the lines that changed (a port joining a host of
        // a thousand would otherwise rewrite four thousand lines). Order among the ports'
        // lines does not matter; the ports chain's final ACCEPT stays last.
        match old.filter(|_| !full) {
            None => {
                declare(&mut text, DISPATCH, &dispatch);
                declare(&mut text, PORTS, &sg);
            }
            Some((old_dispatch, old_sg, _)) => {
                for (name, before, after, add) in [
                    (DISPATCH, old_dispatch, &dispatch, "-A"),
                    (PORTS, old_sg, &sg, "-I"),
                ] {
                    let at = if add == "-I" { " 1" } else { "" };
                    let (was, now): (HashSet<&String>, HashSet<&String>) =
                        (before.iter().collect(), after.iter().collect());
                    for line in before.iter().filter(|l| !now.contains(l)) {
                        text.push_str(&format!("-D {name} {line}\n"));
                    }
                    for line in after.iter().filter(|l| !was.contains(l)) {
                        text.push_str(&format!("{add} {name}{at} {line}\n"));
                    }
                }
            }
        }
        // Chains of ports no longer filtered here (on a full apply: any of ours left over).
        let mut gone: BTreeSet<String> = self
            .applied
            .values()
            .filter(|o| {
                o.chains.contains_key(&family)
                    && !built
                        .get(&o.port.id)
                        .is_some_and(|n| n.chains.contains_key(&family))
            })
            .flat_map(|o| ['s', 'i', 'o'].map(|k| chain(k, &o.port.id)))
            .collect();
        if full {
            let keep: BTreeSet<String> = ports
                .iter()
                .filter(|a| a.chains.contains_key(&family))
                .flat_map(|a| ['s', 'i', 'o'].map(|k| chain(k, &a.port.id)))
                .collect();
            gone.extend(
                port_chains_in_kernel(family)
                    .await?
                    .into_iter()
                    .filter(|c| !keep.contains(c)),
            );
        }
        for name in &gone {
            text.push_str(&format!(":{name} - [0:0]\n"));
        }
        for name in &gone {
            text.push_str(&format!("-X {name}\n"));
        }
        text.push_str("COMMIT\n");

        let raw_changed = full || old.is_none_or(|(_, _, z)| *z != zones);
        let raw = raw_changed.then(|| {
            let mut raw = String::from("*raw\n");
            declare(&mut raw, ZONES, &zones);
            raw.push_str("COMMIT\n");
            raw
        });
        Ok((text, raw, (dispatch, sg, zones)))
    }

    /// The zone of a bridge's traffic: kept while the bridge has filtered ports, new bridges
    /// take the next free one.
    fn zone_of(&mut self, bridge: &str) -> u16 {
        if let Some(z) = self.zones.get(bridge) {
            return *z;
        }
        let used: BTreeSet<u16> = self.zones.values().copied().collect();
        let zone = (FIRST_ZONE..=u16::MAX)
            .find(|z| !used.contains(z))
            .unwrap_or(FIRST_ZONE);
        self.zones.insert(bridge.to_string(), zone);
        zone
    }

    /// The base chains and the jumps to them, and the zones the kernel holds from before a
    /// restart (so that established connections keep their zone).
    async fn start(&mut self) -> Result<()> {
        // Bridged traffic reaches iptables only through br_netfilter, per network namespace:
        // without it every physdev rule would silently match nothing.
        for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
            let path = format!("/proc/sys/net/bridge/{key}");
            if !std::path::Path::new(&path).exists() {
                run("modprobe", &["br_netfilter"], None).await?;
            }
            std::fs::write(&path, "1").with_context(|| format!("enable {path}"))?;
        }
        for family in Family::BOTH {
            let raw = run(&family.tool("save"), &["-t", "raw"], None).await?;
            for line in raw.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["-A", ZONES, "-i", bridge, "-j", "CT", "--zone", zone] = words[..]
                    && let Ok(zone) = zone.parse()
                {
                    self.zones.insert(bridge.to_string(), zone);
                }
            }
            let filter = run(&family.tool("save"), &["-t", "filter"], None).await?;
            let mut text = String::from("*filter\n");
            for name in [DISPATCH, PORTS] {
                if !filter.contains(&format!(":{name} ")) {
                    text.push_str(&format!(":{name} - [0:0]\n"));
                }
            }
            text.push_str(&format!(":{FALLBACK} - [0:0]\n-A {FALLBACK} -j DROP\n"));
            if !filter.contains(&format!("-A FORWARD -j {DISPATCH}")) {
                text.push_str(&format!("-I FORWARD 1 -j {DISPATCH}\n"));
            }
            text.push_str("COMMIT\n*raw\n");
            if !raw.contains(&format!(":{ZONES} ")) {
                text.push_str(&format!(":{ZONES} - [0:0]\n"));
            }
            if !raw.contains(&format!("-A PREROUTING -j {ZONES}")) {
                text.push_str(&format!("-I PREROUTING 1 -j {ZONES}\n"));
            }
            text.push_str("COMMIT\n");
            restore(family, &text).await?;
        }
        frames::start().await?;
        // Sets an earlier run left (it was killed, or no rule names their groups now): each is
        // rewritten if wanted and destroyed once no rule names it; a half-written swap set
        // (`-n`) goes now.
        let listed = run("ipset", &["list", "-n"], None).await?;
        for name in listed.lines().filter(|n| n.starts_with(rules::PREFIX)) {
            if name.ends_with("-n") {
                if let Err(e) = run("ipset", &["destroy", name], None).await {
                    tracing::warn!("ipset {name}: {e:#}");
                }
            } else {
                self.sets.entry(name.to_string()).or_insert(None);
            }
        }
        self.started = true;
        Ok(())
    }

    /// Writes every wanted set whose members differ from the kernel's: a new set filled and
    /// swapped in, so that a rule never sees it half-written. Returns the members that left.
    async fn write_sets(
        &mut self,
        wanted: &HashMap<String, BTreeSet<IpAddr>>,
    ) -> Result<BTreeSet<IpAddr>> {
        let mut script = String::new();
        let mut departed = BTreeSet::new();
        for (name, members) in wanted {
            let known = self.sets.get(name).and_then(Option::as_ref);
            if known == Some(members) {
                continue;
            }
            if let Some(before) = known {
                departed.extend(before.difference(members).copied());
            }
            let family = if name.starts_with(&format!("{}4", rules::PREFIX)) {
                "inet"
            } else {
                "inet6"
            };
            let fresh = format!("{name}-n");
            script.push_str(&format!("create {name} hash:net family {family} -exist\n"));
            script.push_str(&format!("create {fresh} hash:net family {family} -exist\n"));
            script.push_str(&format!("flush {fresh}\n"));
            for m in members {
                script.push_str(&format!("add {fresh} {m} -exist\n"));
            }
            script.push_str(&format!("swap {fresh} {name}\ndestroy {fresh}\n"));
        }
        if script.is_empty() {
            return Ok(departed);
        }
        run("ipset", &["restore"], Some(&script)).await?;
        for (name, members) in wanted {
            self.sets.insert(name.clone(), Some(members.clone()));
        }
        Ok(departed)
    }

    /// Sets no rule names any more are destroyed (a failure is left for the next change).
    async fn drop_unused_sets(&mut self, wanted: &HashMap<String, BTreeSet<IpAddr>>) {
        let unused: Vec<String> = self
            .sets
            .keys()
            .filter(|n| !wanted.contains_key(*n))
            .cloned()
            .collect();
        for name in unused {
            match run("ipset", &["destroy", &name], None).await {
                Ok(_) => {
                    self.sets.remove(&name);
                }
                Err(e) => tracing::warn!("ipset {name}: {e:#}"),
            }
        }
    }

    /// Deletes the conntrack entries of the ports' addresses in their bridges' zones: the
    /// table is listed once per family, and only addresses that have entries are deleted, in one
    /// `conntrack` run (a delete costs a table walk; one per address of a group took seconds).
    /// And the connections members that left a remote group opened (`-s` only: a connection
    /// a port opened towards it is the port's own) in every zone of ours.
    async fn forget_connections(&self, ports: &[FirewallPort], departed: &BTreeSet<IpAddr>) {
        const BOTH: &[&str] = &["-s", "-d"];
        let mut by_zone: BTreeMap<u16, Vec<(&IpAddr, &[&str])>> = BTreeMap::new();
        for port in ports {
            if let Some(zone) = self.zones.get(&port.bridge) {
                let of_port = port.addresses.iter().map(|a| (a, BOTH));
                by_zone.entry(*zone).or_default().extend(of_port);
            }
        }
        if !departed.is_empty() {
            for zone in self.zones.values() {
                let leavers = departed.iter().map(|a| (a, &["-s"][..]));
                by_zone.entry(*zone).or_default().extend(leavers);
            }
        }
        if by_zone.values().all(Vec::is_empty) {
            return;
        }
        // Which (zone, address) pairs have entries: one listing per family for all zones.
        let mut present: BTreeSet<(u16, String)> = BTreeSet::new();
        for family in ["ipv4", "ipv6"] {
            let Ok(listed) = run("conntrack", &["-L", "-f", family], None).await else {
                continue;
            };
            for line in listed.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                let Some(zone) = words
                    .iter()
                    .find_map(|w| w.strip_prefix("zone=")?.parse::<u16>().ok())
                else {
                    continue;
                };
                present.extend(
                    words
                        .iter()
                        .filter_map(|w| w.strip_prefix("src=").or_else(|| w.strip_prefix("dst=")))
                        .map(|a| (zone, a.to_string())),
                );
            }
        }
        let mut batch = String::new();
        for (zone, addresses) in by_zone {
            for (address, sides) in addresses {
                let text = address.to_string();
                if !present.contains(&(zone, text.clone())) {
                    continue;
                }
                let family = if address.is_ipv4() { "ipv4" } else { "ipv6" };
                for side in sides {
                    batch.push_str(&format!("-D -f {family} -w {zone} {side} {text}\n"));
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        // An entry that went meanwhile is no error worth more than a line.
        if let Err(e) = run("conntrack", &["-R", "/dev/stdin"], Some(&batch)).await {
            tracing::debug!("forgetting connections: {e:#}");
        }
    }
}

/// Removes everything this firewall ever made in this network namespace (every `nq-` chain
/// and set, and the jumps to them): for a host that leaves Neutrino, and for tests. Ports are
/// open afterwards. Blocking.
pub fn remove_all() -> Result<()> {
    for family in Family::BOTH {
        let mut text = String::new();
        for table in ["filter", "raw"] {
            let saved = run_blocking(&family.tool("save"), &["-t", table], None)?;
            let ours: Vec<&str> = saved
                .lines()
                .filter_map(|l| l.strip_prefix(&format!(":{}", rules::PREFIX)))
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            text.push_str(&format!("*{table}\n"));
            for line in saved.lines() {
                if let Some(rule) = line.strip_prefix("-A ")
                    && (rule.ends_with(&format!("-j {DISPATCH}"))
                        || rule.ends_with(&format!("-j {ZONES}")))
                {
                    text.push_str(&format!("-D {rule}\n"));
                }
            }
            for name in &ours {
                text.push_str(&format!(":{}{name} - [0:0]\n", rules::PREFIX));
            }
            for name in &ours {
                text.push_str(&format!("-X {}{name}\n", rules::PREFIX));
            }
            text.push_str("COMMIT\n");
        }
        run_blocking(
            &family.tool("restore"),
            &["--noflush", "-w", "10"],
            Some(&text),
        )?;
    }
    let saved = run_blocking("ebtables-save", &["-t", "nat"], None)?;
    let ours: Vec<&str> = saved
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(rules::PREFIX))
        .collect();
    let mut text = String::from("*nat\n");
    if saved.contains(&format!("-A PREROUTING -j {}", frames::DISPATCH)) {
        text.push_str(&format!("-D PREROUTING -j {}\n", frames::DISPATCH));
    }
    for name in &ours {
        text.push_str(&format!(":{name} RETURN\n"));
    }
    for name in &ours {
        text.push_str(&format!("-X {name}\n"));
    }
    run_blocking("ebtables-restore", &["--noflush"], Some(&text))?;
    let sets = run_blocking("ipset", &["list", "-n"], None)?;
    for set in sets.lines().filter(|s| s.starts_with(rules::PREFIX)) {
        run_blocking("ipset", &["destroy", set], None)?;
    }
    Ok(())
}

/// [`run`] for [`remove_all`], which runs where nothing may be awaited (a test's `Drop`). `run`
/// cannot be this on a blocking thread: a tool must start from the calling thread, which may
/// have entered another network namespace (the firewall tests and bench).
fn run_blocking(tool: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {tool}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{tool} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a port's rules lost a line (in either family): gone, unfiltered, or narrower.
fn lost_rules(old: &Applied, new: Option<&Applied>) -> bool {
    let Some(new) = new else {
        return true;
    };
    old.chains.iter().any(|(family, chains)| {
        let Some(now) = new.chains.get(family) else {
            return true;
        };
        [
            (&chains.ingress, &now.ingress),
            (&chains.egress, &now.egress),
            (&chains.spoof, &now.spoof),
        ]
        .iter()
        .any(|(before, after)| before.iter().any(|line| !after.contains(line)))
    })
}

/// A chain declaration (which flushes it in a `--noflush` restore) and its rules.
fn declare(text: &mut String, name: &str, rules: &[String]) {
    text.push_str(&format!(":{name} - [0:0]\n"));
    for rule in rules {
        text.push_str(&format!("-A {name} {rule}\n"));
    }
}

/// The per-port chains of ours the kernel holds (after a restart, or left by a crash).
async fn port_chains_in_kernel(family: Family) -> Result<Vec<String>> {
    let saved = run(&family.tool("save"), &["-t", "filter"], None).await?;
    Ok(saved
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            ['i', 'o', 's']
                .iter()
                .any(|k| chain(*k, "").len() + 10 == name.len() && name.starts_with(&chain(*k, "")))
        })
        .map(str::to_string)
        .collect())
}

fn parse_member(text: &str) -> Option<IpAddr> {
    text.split('/').next()?.parse().ok()
}

async fn restore(family: Family, text: &str) -> Result<()> {
    run(
        &family.tool("restore"),
        &["--noflush", "-w", "10"],
        Some(text),
    )
    .await
    .map(|_| ())
}

/// Runs a tool, with `input` on its standard input; its standard output.
async fn run(tool: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {tool}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "{tool} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
