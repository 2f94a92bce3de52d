//! The contract suite.

use std::sync::Arc;

use neutrino_model::{
    Agent, BindDecision, Bound, NetworkType, Op, Plan, VnicType, network_type_name as type_name,
    vnic_type_name,
};

use super::fixtures::{AgentFixture, Sample};
use super::report::{Outcome, Report};
use neutrino_model::{NETWORK_TYPES, VNIC_TYPES};
use neutrino_runtime::binding::{MemorySegments, check_next_segments};
use neutrino_runtime::plugins::{CallError, Driver, DriverSettings, LoadFailure, Runtime};

/// The case a component lands in when its exports do not have the contract's functions and
/// types (built against an edited WIT of a supported version): a contract mismatch, not an
/// incoherent description.
const CONTRACT_TYPES: &str = "exports the contract's functions with the contract's types";

fn contract_mismatch(cause: &LoadFailure) -> bool {
    match cause {
        LoadFailure::Other(m) => m.starts_with("cannot link"),
        LoadFailure::Describe(CallError::Host(m)) => m.contains("type"),
        _ => false,
    }
}

pub fn run(
    runtime: &Arc<Runtime>,
    source: &str,
    bytes: &[u8],
    settings: DriverSettings,
    fx: &AgentFixture,
) -> Report {
    let mut report = Report {
        component: source.to_string(),
        ..Report::default()
    };
    let driver = match runtime.load_bytes(source, bytes, settings) {
        Ok(d) => d,
        Err(e) => {
            let case = match &e.cause {
                cause if contract_mismatch(cause) => CONTRACT_TYPES,
                LoadFailure::Io(_) | LoadFailure::NotAComponent(_) | LoadFailure::Other(_) => {
                    "is a loadable component"
                }
                LoadFailure::MissingExport { .. } | LoadFailure::UnsupportedVersion { .. } => {
                    "exports the driver interface in a supported contract version"
                }
                LoadFailure::ForbiddenImports(_) => "imports only what drivers may import",
                LoadFailure::Describe(_) => "describe answers",
                LoadFailure::BadDescription(_) => "describe is coherent",
            };
            report.record(case, Outcome::Fail(e.to_string()));
            report.record(
                "remaining cases",
                Outcome::Skip("the component did not load".into()),
            );
            return report;
        }
    };
    let d = driver.description().clone();
    report.driver = Some(super::report::printable(&format!(
        "{} {} (contract {}, agent type {:?})",
        d.name,
        d.version,
        driver.contract_version(),
        d.agent_type
    )));
    report.record(
        "exports the driver interface in a supported contract version",
        Outcome::Pass,
    );
    report.record(CONTRACT_TYPES, Outcome::Pass);
    report.record("imports only what drivers may import", Outcome::Pass);
    report.record("describe answers", Outcome::Pass);
    report.record("describe is coherent", Outcome::Pass);
    report.record(
        "describe is deterministic",
        match driver.session().and_then(|mut s| s.describe()) {
            Ok(again) if again == d => Outcome::Pass,
            Ok(_) => Outcome::Fail("two calls gave different descriptions".into()),
            Err(e) => Outcome::Fail(e.to_string()),
        },
    );

    unsupported_vnic_passes(&driver, fx, &mut report);
    unsupported_network_type_passes(&driver, fx, &mut report);
    for &nt in NETWORK_TYPES.iter().filter(|t| d.network_types.contains(t)) {
        network_type_cases(&driver, fx, nt, &mut report);
    }
    faults_contained(&driver, fx, &mut report);
    report
}

fn expect_pass(result: Result<BindDecision, CallError>) -> Outcome {
    match result {
        Ok(BindDecision::Pass(_)) => Outcome::Pass,
        Ok(BindDecision::Bound(b)) => Outcome::Fail(format!(
            "bound segment {} (vif {})",
            b.segment_id, b.vif_type
        )),
        Ok(BindDecision::ContinueWith(c)) => {
            Outcome::Fail(format!("continued from segment {}", c.segment_id))
        }
        Err(e) => Outcome::Fail(format!("expected pass(reason), got an error: {e}")),
    }
}

fn unsupported_vnic_passes(driver: &Driver, fx: &AgentFixture, report: &mut Report) {
    let d = driver.description();
    let case = "unsupported vnic type gives pass, not an error";
    let (Some(vnic), Some(&nt)) = (
        VNIC_TYPES.iter().find(|v| !d.vnic_types.contains(v)),
        d.network_types.first(),
    ) else {
        report.record(
            case,
            Outcome::Skip("the driver supports every vnic type".into()),
        );
        return;
    };
    let ctx = fx.sample.bind_context(
        fx.sample.port(*vnic),
        fx.network(nt),
        fx.live(&d.agent_type),
    );
    report.record(
        format!("{case} ({})", vnic_type_name(*vnic)),
        expect_pass(driver.bind_port(&ctx)),
    );
}

fn unsupported_network_type_passes(driver: &Driver, fx: &AgentFixture, report: &mut Report) {
    let d = driver.description();
    let case = "unsupported network type gives pass, not an error";
    let Some(&nt) = NETWORK_TYPES.iter().find(|t| !d.network_types.contains(t)) else {
        report.record(
            case,
            Outcome::Skip("the driver supports every network type".into()),
        );
        return;
    };
    let ctx = fx.sample.bind_context(
        fx.sample.port(d.vnic_types[0]),
        fx.network(nt),
        fx.live(&d.agent_type),
    );
    report.record(
        format!("{case} ({})", type_name(nt)),
        expect_pass(driver.bind_port(&ctx)),
    );
}

fn network_type_cases(driver: &Driver, fx: &AgentFixture, nt: NetworkType, report: &mut Report) {
    let d = driver.description();
    let t = type_name(nt);
    let vnic: VnicType = d.vnic_types[0];
    let network = fx.network(nt);
    let port = fx.sample.port(vnic);
    let bind = |agents: Vec<Agent>| {
        driver.bind_port(
            &fx.sample
                .bind_context(port.clone(), network.clone(), agents),
        )
    };

    report.record(
        format!("{t}: no agent on the host gives pass"),
        expect_pass(bind(vec![])),
    );
    report.record(
        format!("{t}: dead agent gives pass"),
        expect_pass(bind(fx.dead(&d.agent_type))),
    );
    if nt == NetworkType::Local {
        report.record(
            format!("{t}: agent without mappings gives pass"),
            Outcome::Skip("local segments need no mapping".into()),
        );
    } else {
        report.record(
            format!("{t}: agent without mappings gives pass"),
            expect_pass(bind(fx.bad(&d.agent_type))),
        );
    }

    let live = fx.live(&d.agent_type);
    let first = bind(live.clone());
    report.record(
        format!("{t}: same input twice gives the same decision"),
        match (&first, &bind(live.clone())) {
            (Ok(a), Ok(b)) if a == b => Outcome::Pass,
            (Err(a), Err(b)) if a == b => Outcome::Pass,
            _ => Outcome::Fail("two calls with the same input answered differently".into()),
        },
    );
    report.record(
        format!("{t}: another host and other ids give the same kind of decision"),
        same_elsewhere(driver, fx, nt, &first),
    );
    let bound: Option<Bound> = match first {
        Ok(BindDecision::Bound(b)) if d.vif_types.contains(&b.vif_type) => {
            report.record(
                format!("{t}: live agent gives bound with vif type and details"),
                Outcome::Pass,
            );
            Some(b)
        }
        Ok(BindDecision::Bound(b)) => {
            report.record(
                format!("{t}: live agent gives bound with vif type and details"),
                Outcome::Fail(format!(
                    "vif type {:?} is not among the declared {:?}",
                    b.vif_type, d.vif_types
                )),
            );
            None
        }
        Ok(BindDecision::ContinueWith(c)) => {
            // The segments it continues with must be the host's: the network's own, or a
            // dynamic one it asks the host for (type and physical network, no id of its own).
            let mut segments = MemorySegments::for_network(&network);
            report.record(
                format!("{t}: live agent gives bound with vif type and details"),
                match check_next_segments(&network, &c.next_segments, &mut segments) {
                    Ok(_) => Outcome::Skip(
                        "the driver binds hierarchically; the bottom level is not in the kit"
                            .into(),
                    ),
                    Err(e) => Outcome::Fail(format!("malformed answer: {e}")),
                },
            );
            None
        }
        Ok(BindDecision::Pass(reason)) => {
            report.record(
                format!("{t}: live agent gives bound with vif type and details"),
                Outcome::Fail(format!("passed: {reason}")),
            );
            None
        }
        Err(e) => {
            report.record(
                format!("{t}: live agent gives bound with vif type and details"),
                Outcome::Fail(e.to_string()),
            );
            None
        }
    };
    let Some(bound) = bound else {
        report.record(
            format!("{t}: plans"),
            Outcome::Skip("nothing was bound".into()),
        );
        return;
    };
    let segment = network
        .segments
        .iter()
        .find(|s| s.id == bound.segment_id)
        .expect("validated");
    let agent = &live[0];
    let nctx = fx.sample.network_context(&network, segment, agent);
    let pctx = fx.sample.port_context(
        &port,
        &network,
        segment,
        agent,
        &bound.vif_type,
        &bound.vif_details,
    );

    report.record(
        format!("{t}: setup-network plan is well-formed and inside the grant"),
        plan_ok(driver.setup_network(&nctx), false),
    );
    report.record(
        format!("{t}: plug-port plan is well-formed and inside the grant"),
        plan_ok(driver.plug_port(&pctx), false),
    );
    report.record(
        format!("{t}: teardown-network is idempotent"),
        idempotent(
            driver.teardown_network(&nctx),
            driver.teardown_network(&nctx),
        ),
    );
    report.record(
        format!("{t}: unplug-port is idempotent"),
        idempotent(driver.unplug_port(&pctx), driver.unplug_port(&pctx)),
    );
}

fn plan_ok(plan: Result<Plan, CallError>, removals_only: bool) -> Outcome {
    match plan {
        Ok(p) if removals_only && !p.iter().all(is_removal) => {
            Outcome::Fail("a teardown/unplug plan may only remove things".into())
        }
        Ok(_) => Outcome::Pass,
        Err(e) => Outcome::Fail(e.to_string()),
    }
}

fn is_removal(op: &Op) -> bool {
    matches!(
        op,
        Op::RemoveLink(_) | Op::RemoveOvsPort(_) | Op::RemoveNamespace(_)
    )
}

/// Teardown/unplug: well-formed, inside the grant, only removals (which succeed when the object
/// is already gone), and the same plan when asked again.
fn idempotent(first: Result<Plan, CallError>, second: Result<Plan, CallError>) -> Outcome {
    match (&first, &second) {
        (Ok(a), Ok(b)) if a != b => {
            Outcome::Fail("asked twice, it gave two different plans".into())
        }
        _ => plan_ok(first, true),
    }
}

/// Hostile input must not take the host down, and the driver must work afterwards.
fn faults_contained(driver: &Driver, fx: &AgentFixture, report: &mut Report) {
    let d = driver.description();
    let nt = d.network_types[0];
    let live = fx.live(&d.agent_type);
    let mut weird = fx.sample.port(d.vnic_types[0]);
    weird.id = String::new();
    weird.mac_address = "not-a-mac".into();
    weird.name = "\u{1F4A5}".repeat(10_000);
    let mut many = fx.network(nt);
    let template = many.segments[0].clone();
    many.segments = (0..2000)
        .map(|i| neutrino_model::Segment {
            id: format!("s{i}"),
            ..template.clone()
        })
        .collect();
    let hostile = [
        fx.sample
            .bind_context(weird.clone(), fx.network(nt), live.clone()),
        fx.sample
            .bind_context(fx.sample.port(d.vnic_types[0]), many, live.clone()),
    ];
    let mut traps = Vec::new();
    for ctx in &hostile {
        if let Err(
            e @ (CallError::Trap { .. }
            | CallError::OutOfFuel { .. }
            | CallError::DeadlineExceeded { .. }
            | CallError::MemoryCap { .. }),
        ) = driver.bind_port(ctx)
        {
            traps.push(e.to_string())
        }
    }
    report.record(
        "hostile input is answered without a trap",
        if traps.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail(traps.join("; "))
        },
    );
    let normal = fx
        .sample
        .bind_context(fx.sample.port(d.vnic_types[0]), fx.network(nt), live);
    report.record(
        "faults contained: the driver answers normally afterwards",
        match driver.bind_port(&normal) {
            Ok(_) => Outcome::Pass,
            Err(e) => Outcome::Fail(e.to_string()),
        },
    );
}

/// The first decision's kind (bound with its vif type, continue, pass, error), asked again with
/// another random host, ids, MAC and segmentation ids: a driver that recognises its inputs
/// (the kit's host, a fixed id) answers differently.
fn same_elsewhere(
    driver: &Driver,
    fx: &AgentFixture,
    nt: NetworkType,
    first: &Result<BindDecision, CallError>,
) -> Outcome {
    let d = driver.description();
    let other = AgentFixture {
        sample: Sample::random(),
        ..fx.clone()
    };
    let ctx = other.sample.bind_context(
        other.sample.port(d.vnic_types[0]),
        other.network(nt),
        other.live(&d.agent_type),
    );
    let kind = |r: &Result<BindDecision, CallError>| match r {
        Ok(BindDecision::Bound(b)) => format!("bound ({})", b.vif_type),
        Ok(BindDecision::ContinueWith(_)) => "continue-with".to_string(),
        Ok(BindDecision::Pass(_)) => "pass".to_string(),
        Err(_) => "an error".to_string(),
    };
    let (a, b) = (kind(first), kind(&driver.bind_port(&ctx)));
    if a == b {
        Outcome::Pass
    } else {
        Outcome::Fail(format!(
            "host {:?} got {a}, host {:?} got {b}",
            fx.sample.host, other.sample.host
        ))
    }
}
