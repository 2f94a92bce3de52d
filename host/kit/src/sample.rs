//! What a driver answers for one sample port, behind `neutrino plugin plan FILE`: its bind
//! decision and, when it binds, the plans of `setup-network`, `plug-port`, `unplug-port` and
//! `teardown-network`, built from the kit's own fixtures (the fixed [`Sample`], the
//! `[fixtures]` of the kit's `--config`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use neutrino_model::{
    BindDecision, FixedIp, NetworkType, Plan, Port, VnicType, network_type_name,
    network_type_named, vnic_type_name, vnic_type_named,
};
use neutrino_runtime::plugins::{CallError, DriverSettings, Runtime, render};

use super::KitConfig;
use super::fixtures::{AgentFixture, Sample};
use super::report::printable;

/// The sample port and its network; what is not given comes from the kit's fixed sample and
/// the driver's description (its first vnic and network types).
#[derive(Debug, Clone, Default)]
pub struct SamplePort {
    /// `binding:host_id` (the live agent's host too).
    pub host: Option<String>,
    pub vnic_type: Option<VnicType>,
    pub network_type: Option<NetworkType>,
    pub segmentation_id: Option<u32>,
    pub physical_network: Option<String>,
    /// A port as the API shows it (`GET /v2.0/ports/{id}`, with or without `{"port": ...}`):
    /// its id, network, MAC, fixed IPs, `binding:host_id`, `binding:vnic_type`,
    /// `binding:profile`, device owner and id replace the sample's.
    pub port_json: Option<Value>,
}

/// One call's answer: the plan (as operations and as text) or the error.
#[derive(Debug, Clone, Serialize)]
pub struct CallAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CallAnswer {
    fn of(answer: Result<Plan, CallError>) -> CallAnswer {
        match answer {
            Ok(plan) => CallAnswer {
                text: Some(plan.iter().map(|op| printable(&render::op(op))).collect()),
                plan: Some(plan),
                error: None,
            },
            Err(e) => CallAnswer {
                plan: None,
                text: None,
                error: Some(printable(&e.to_string())),
            },
        }
    }
}

/// The decision and the plans.
#[derive(Debug, Clone, Serialize)]
pub struct SamplePlans {
    pub component: String,
    pub driver: String,
    pub host: String,
    pub port_id: String,
    pub vnic_type: String,
    pub network_id: String,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
    /// The bind decision, unless the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<BindDecision>,
    /// Why the bind call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Only when the driver bound the port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_network: Option<CallAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plug_port: Option<CallAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unplug_port: Option<CallAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teardown_network: Option<CallAnswer>,
}

impl SamplePlans {
    /// Bound, and every plan call answered with a plan.
    pub fn ok(&self) -> bool {
        matches!(self.decision, Some(BindDecision::Bound(_)))
            && [
                &self.setup_network,
                &self.plug_port,
                &self.unplug_port,
                &self.teardown_network,
            ]
            .iter()
            .all(|a| a.as_ref().is_some_and(|a| a.error.is_none()))
    }
}

/// Loads the component at `path` as `plugin check` does and asks it about the sample port.
pub fn plan_file(path: &Path, kit: &KitConfig, sample: &SamplePort) -> anyhow::Result<SamplePlans> {
    let runtime: Arc<Runtime> = Runtime::new(kit.limits.clone().unwrap_or_default(), None)?;
    let settings = DriverSettings {
        config: kit.config.clone(),
        grant: kit.grant.clone(),
    };
    let driver = runtime.load_file(path, settings)?;
    let d = driver.description().clone();

    let mut fx = AgentFixture {
        sample: Sample::fixed(),
        ..kit.fixtures.clone()
    };
    if let Some(physnet) = &sample.physical_network {
        fx.physical_network = physnet.clone();
    }
    let vnic = sample.vnic_type.or(d.vnic_types.first().copied());
    let mut port = fx.sample.port(vnic.unwrap_or(VnicType::Normal));
    if let Some(json) = &sample.port_json {
        apply_port_json(&mut port, json)?;
        fx.sample.host = port.binding_host.clone();
        fx.sample.port_id = port.id.clone();
        fx.sample.network_id = port.network_id.clone();
    }
    if let Some(host) = &sample.host {
        port.binding_host = host.clone();
        fx.sample.host = host.clone();
    }
    if let Some(v) = sample.vnic_type {
        port.vnic_type = v;
    }
    let nt = sample
        .network_type
        .or(d.network_types.first().copied())
        .unwrap_or(NetworkType::Vxlan);
    let mut network = fx.network(nt);
    if let Some(id) = sample.segmentation_id {
        network.segments[0].segmentation_id = Some(id);
    }
    let segment = network.segments[0].clone();
    let live = fx.live(&d.agent_type);

    let decision = driver.bind_port(&fx.sample.bind_context(
        port.clone(),
        network.clone(),
        live.clone(),
    ));
    let mut out = SamplePlans {
        component: path.display().to_string(),
        driver: format!(
            "{} {} (contract {}, agent type {:?})",
            d.name,
            d.version,
            driver.contract_version(),
            d.agent_type
        ),
        host: fx.sample.host.clone(),
        port_id: port.id.clone(),
        vnic_type: vnic_type_name(port.vnic_type).into(),
        network_id: network.id.clone(),
        network_type: network_type_name(nt).into(),
        physical_network: segment.physical_network.clone(),
        segmentation_id: segment.segmentation_id,
        decision: decision.as_ref().ok().cloned(),
        error: decision.as_ref().err().map(|e| printable(&e.to_string())),
        setup_network: None,
        plug_port: None,
        unplug_port: None,
        teardown_network: None,
    };
    if let Ok(BindDecision::Bound(bound)) = &decision {
        let agent = &live[0];
        let nctx = fx.sample.network_context(&network, &segment, agent);
        let pctx = fx.sample.port_context(
            &port,
            &network,
            &segment,
            agent,
            &bound.vif_type,
            &bound.vif_details,
        );
        out.setup_network = Some(CallAnswer::of(driver.setup_network(&nctx)));
        out.plug_port = Some(CallAnswer::of(driver.plug_port(&pctx)));
        out.unplug_port = Some(CallAnswer::of(driver.unplug_port(&pctx)));
        out.teardown_network = Some(CallAnswer::of(driver.teardown_network(&nctx)));
    }
    Ok(out)
}

/// A port as the API shows it, over the sample's.
fn apply_port_json(port: &mut Port, json: &Value) -> anyhow::Result<()> {
    let body: &Map<String, Value> = match json.get("port") {
        Some(Value::Object(p)) => p,
        _ => json
            .as_object()
            .ok_or_else(|| anyhow::anyhow!("the port JSON is not an object"))?,
    };
    let text = |key: &str| -> anyhow::Result<Option<String>> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => anyhow::bail!("port JSON: {key} is not a string: {other}"),
        }
    };
    if let Some(v) = text("id")? {
        port.id = v;
    }
    if let Some(v) = text("network_id")? {
        port.network_id = v;
    }
    if let Some(v) = text("name")? {
        port.name = v;
    }
    if let Some(v) = text("mac_address")? {
        port.mac_address = v;
    }
    if let Some(v) = text("binding:host_id")?.filter(|h| !h.is_empty()) {
        port.binding_host = v;
    }
    if let Some(v) = text("binding:vnic_type")? {
        port.vnic_type = vnic_type_named(&v)
            .ok_or_else(|| anyhow::anyhow!("port JSON: binding:vnic_type {v:?} is unknown"))?;
    }
    if let Some(v) = text("device_owner")? {
        port.device_owner = v;
    }
    if let Some(v) = text("device_id")? {
        port.device_id = v;
    }
    if let Some(Value::Bool(up)) = body.get("admin_state_up") {
        port.admin_state_up = *up;
    }
    match body.get("binding:profile") {
        None | Some(Value::Null) => {}
        Some(Value::Object(profile)) => {
            port.binding_profile = profile
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
        }
        Some(other) => anyhow::bail!("port JSON: binding:profile is not an object: {other}"),
    }
    if let Some(ips) = body.get("fixed_ips") {
        let ips = ips
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("port JSON: fixed_ips is not a list"))?;
        port.fixed_ips = ips
            .iter()
            .map(|ip| {
                let field = |k: &str| ip.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                FixedIp {
                    subnet_id: field("subnet_id"),
                    ip_address: field("ip_address"),
                }
            })
            .collect();
    }
    Ok(())
}

/// A network type as Neutron spells it (`flat`, `vlan`, ...), for the command line.
pub fn parse_network_type(name: &str) -> Result<NetworkType, String> {
    network_type_named(name).ok_or_else(|| format!("unknown network type {name:?}"))
}

/// A vnic type as Neutron spells it (`normal`, `direct`, ...), for the command line.
pub fn parse_vnic_type(name: &str) -> Result<VnicType, String> {
    vnic_type_named(name).ok_or_else(|| format!("unknown vnic type {name:?}"))
}

fn write_answer(f: &mut fmt::Formatter<'_>, call: &str, a: &Option<CallAnswer>) -> fmt::Result {
    let Some(a) = a else { return Ok(()) };
    match (&a.text, &a.error) {
        (_, Some(e)) => writeln!(f, "{call}: ERROR {e}"),
        (Some(lines), None) if lines.is_empty() => writeln!(f, "{call}: (empty plan)"),
        (Some(lines), None) => {
            writeln!(f, "{call}:")?;
            lines.iter().try_for_each(|l| writeln!(f, "  {l}"))
        }
        (None, None) => Ok(()),
    }
}

impl fmt::Display for SamplePlans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "component: {}", self.component)?;
        writeln!(f, "driver:    {}", self.driver)?;
        writeln!(
            f,
            "port {} (vnic {}) on host {}",
            self.port_id, self.vnic_type, self.host
        )?;
        writeln!(
            f,
            "network {}: {}{}{}",
            self.network_id,
            self.network_type,
            self.physical_network
                .as_ref()
                .map(|p| format!(" physical_network={p}"))
                .unwrap_or_default(),
            self.segmentation_id
                .map(|s| format!(" segmentation_id={s}"))
                .unwrap_or_default()
        )?;
        match (&self.decision, &self.error) {
            (Some(BindDecision::Bound(b)), _) => {
                writeln!(
                    f,
                    "decision: bound segment {} with vif type {}",
                    b.segment_id, b.vif_type
                )?;
                for (k, v) in &b.vif_details {
                    writeln!(f, "  vif_details {} = {}", printable(k), printable(v))?;
                }
            }
            (Some(BindDecision::ContinueWith(c)), _) => {
                writeln!(
                    f,
                    "decision: continue-with from segment {} (the next level, another driver, \
                     would bind):",
                    c.segment_id
                )?;
                for s in &c.next_segments {
                    writeln!(
                        f,
                        "  segment {}: {} {:?} {:?}",
                        printable(&s.id),
                        network_type_name(s.network_type),
                        s.physical_network,
                        s.segmentation_id
                    )?;
                }
            }
            (Some(BindDecision::Pass(reason)), _) => {
                writeln!(f, "decision: pass: {}", printable(reason))?
            }
            (None, e) => writeln!(f, "decision: ERROR {}", e.as_deref().unwrap_or("?"))?,
        }
        write_answer(f, "setup-network", &self.setup_network)?;
        write_answer(f, "plug-port", &self.plug_port)?;
        write_answer(f, "unplug-port", &self.unplug_port)?;
        write_answer(f, "teardown-network", &self.teardown_network)
    }
}
