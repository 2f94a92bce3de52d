//! Quotas, as Neutron's `quotas` extension: per-project limits (an admin's overrides over the
//! defaults), their usage, and the check every create of a counted resource makes.
//!
//! The check counts and inserts in one write transaction: usage is the resource's rows of the
//! project (counted up to the limit, through the project index, so a check costs what the
//! limit allows, not what the table holds), and on PostgreSQL an advisory lock per
//! (project, resource) is taken first, so that creates of one project on several servers queue
//! while others' do not; on SQLite the one writer already serialises them. Quota locks are the
//! first a transaction takes, projects in order, so they never wait in a cycle with each other
//! or with pool locks. Neutron's own check (`DbQuotaNoLockDriver`) admits it can be beaten by
//! concurrent requests; this one cannot.
//!
//! Ports the server makes for a network (DHCP ports, `device_owner` `network:*`) are neither
//! counted nor checked: they belong to the network's project but are not its member's doing.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{CoreResult, NeutronError, Status};
use crate::{RequestContext, Services};
use neutrino_store::{self as store, quotas as repo};

/// Every resource with a quota and its default limit (Neutron's `[QUOTAS]` defaults; -1 is
/// unlimited), in the order Neutron lists them.
pub const RESOURCES: &[(&str, i64)] = &[
    ("network", 100),
    ("subnet", 100),
    ("subnetpool", -1),
    ("port", 500),
    ("router_route", 30),
    ("router", 10),
    ("floatingip", 50),
    ("security_group", 10),
    ("security_group_rule", 100),
];

/// The largest limit accepted (Neutron's `DB_INTEGER_MAX_VALUE`).
pub const MAX_LIMIT: i64 = 2_147_483_647;

/// A project's limits, one per resource of [`RESOURCES`], in its order.
pub type Limits = Vec<(&'static str, i64)>;

/// Whether a port of this `device_owner` counts against its project's quota.
pub fn counted_port(device_owner: &str) -> bool {
    !device_owner.starts_with("network:")
}

/// Whether the port a create body asks for counts against its project's quota.
pub fn counted_port_body(body: &serde_json::Map<String, serde_json::Value>) -> bool {
    body.get("device_owner")
        .and_then(serde_json::Value::as_str)
        .is_none_or(counted_port)
}

fn defaults() -> Limits {
    RESOURCES.to_vec()
}

fn with_overrides(overrides: &[(String, i64)]) -> Limits {
    RESOURCES
        .iter()
        .map(|(r, d)| {
            let set = overrides.iter().find(|(o, _)| o == r).map(|(_, l)| *l);
            (*r, set.unwrap_or(*d))
        })
        .collect()
}

/// Any negative limit is unlimited, reported as -1.
fn reported(limit: i64) -> i64 {
    limit.max(-1)
}

/// A project's own quota is always readable; another's needs `get_quota` (admin).
fn may_read(ctx: &RequestContext, project: &str) -> CoreResult<()> {
    if ctx.project_id == project || ctx.is_admin() {
        Ok(())
    } else {
        Err(NeutronError::forbidden("get_quota"))
    }
}

/// `GET /v2.0/quotas`: the projects with a limit set, each with all its limits.
pub async fn list(state: &Services, ctx: &RequestContext) -> CoreResult<Vec<(String, Limits)>> {
    if !ctx.is_admin() {
        return Err(NeutronError::forbidden("get_quota"));
    }
    let mut conn = state.store.read_conn().await?;
    let rows = repo::all_overrides(&mut *conn).await?;
    let mut projects: Vec<(String, Vec<(String, i64)>)> = Vec::new();
    for (project, resource, limit) in rows {
        match projects.last_mut() {
            Some((p, set)) if *p == project => set.push((resource, limit)),
            _ => projects.push((project, vec![(resource, limit)])),
        }
    }
    Ok(projects
        .into_iter()
        .map(|(p, set)| (p, with_overrides(&set)))
        .collect())
}

/// `GET /v2.0/quotas/{project}`.
pub async fn show(state: &Services, ctx: &RequestContext, project: &str) -> CoreResult<Limits> {
    may_read(ctx, project)?;
    let mut conn = state.store.read_conn().await?;
    let set = repo::overrides(&mut *conn, project).await?;
    Ok(with_overrides(&set))
}

/// `GET /v2.0/quotas/{project}/default`.
pub fn default(ctx: &RequestContext, project: &str) -> CoreResult<Limits> {
    may_read(ctx, project)?;
    Ok(defaults())
}

/// `GET /v2.0/quotas/{project}/details`: (resource, limit, used) of each resource.
pub async fn details(
    state: &Services,
    ctx: &RequestContext,
    project: &str,
) -> CoreResult<Vec<(&'static str, i64, i64)>> {
    if ctx.project_id != project && !ctx.is_admin() {
        return Err(NeutronError::new(
            Status::FORBIDDEN,
            "AdminRequired",
            "User does not have admin privileges: Only admin is authorized to access quotas for another project.",
        ));
    }
    let mut conn = state.store.read_conn().await?;
    let set = repo::overrides(&mut *conn, project).await?;
    let mut out = Vec::with_capacity(RESOURCES.len());
    for (resource, limit) in with_overrides(&set) {
        let used = repo::count(&mut *conn, resource, project, None).await?;
        out.push((resource, reported(limit), used));
    }
    Ok(out)
}

/// `PUT /v2.0/quotas/{project}` with the `quota` object of the body: each value an integer in
/// [-1, [`MAX_LIMIT`]]; unless `force` is true, not below what the project already uses.
/// Answers all the project's limits.
pub async fn update(
    state: &Services,
    ctx: &RequestContext,
    project: &str,
    quota: &Map<String, Value>,
) -> CoreResult<Limits> {
    if !ctx.is_admin() {
        return Err(NeutronError::forbidden("update_quota"));
    }
    let unknown: Vec<&str> = quota
        .keys()
        .map(String::as_str)
        .filter(|k| {
            !matches!(*k, "force" | "check_limit") && !RESOURCES.iter().any(|(r, _)| r == k)
        })
        .collect();
    if !unknown.is_empty() {
        return Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        )));
    }
    let force = crate::body::boolean(quota, "force")?.unwrap_or(false);
    let mut changes = Vec::new();
    for (resource, _) in RESOURCES {
        if let Some(v) = quota.get(*resource) {
            changes.push((*resource, limit_value(resource, v)?));
        }
    }
    let mut tx = state.store.begin_write().await?;
    for (resource, limit) in &changes {
        if !force && *limit >= 0 {
            let used = repo::count(&mut *tx, resource, project, Some(limit + 1)).await?;
            if used > *limit {
                let used = repo::count(&mut *tx, resource, project, None).await?;
                return Err(NeutronError::invalid_input(format!(
                    "Quota limit {limit} for {resource} must be greater than or equal to already used {used}."
                )));
            }
        }
        repo::set(&mut tx, project, resource, *limit).await?;
    }
    let set = repo::overrides(&mut *tx, project).await?;
    store::commit(tx).await?;
    Ok(with_overrides(&set))
}

/// A limit as Neutron converts and checks it (`convert_to_int`, `type:range [-1, max]`).
fn limit_value(resource: &str, v: &Value) -> CoreResult<i64> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let Some(n) = n else {
        return Err(NeutronError::invalid_input(format!(
            "'{text}' is not an integer."
        )));
    };
    if n < -1 {
        return Err(NeutronError::bad_request(format!(
            "Invalid input for {resource}. Reason: '{n}' is too small - must be at least '-1'."
        )));
    }
    if n > MAX_LIMIT {
        return Err(NeutronError::bad_request(format!(
            "Invalid input for {resource}. Reason: '{n}' is too large - must be no larger than '{MAX_LIMIT}'."
        )));
    }
    Ok(n)
}

/// `DELETE /v2.0/quotas/{project}`: back to the defaults.
pub async fn reset(state: &Services, ctx: &RequestContext, project: &str) -> CoreResult<()> {
    if !ctx.is_admin() {
        return Err(NeutronError::forbidden("delete_quota"));
    }
    let mut tx = state.store.begin_write().await?;
    let removed = repo::delete(&mut tx, project).await?;
    if removed == 0 {
        return Err(NeutronError::not_found(
            "TenantQuotaNotFound",
            format!("Quota for project {project} could not be found."),
        ));
    }
    store::commit(tx).await?;
    Ok(())
}

/// Neutron's `quota_limit_check`: `delta` alone must fit `project`'s limit of `resource`; its
/// usage is not counted (used for what a create makes besides what was asked for, such as a
/// new group's template rules).
pub async fn limit_check(
    tx: &mut store::Tx<'_>,
    project: &str,
    resource: &'static str,
    delta: i64,
) -> CoreResult<()> {
    let default = RESOURCES
        .iter()
        .find(|(r, _)| *r == resource)
        .map_or(-1, |(_, d)| *d);
    let limit = repo::limit(&mut **tx, project, resource)
        .await?
        .unwrap_or(default);
    if limit >= 0 && limit < delta {
        return Err(over_quota(resource));
    }
    Ok(())
}

/// 409 `OverQuota`, worded as Neutron's (a Python list of the resources).
pub fn over_quota(resource: &str) -> NeutronError {
    NeutronError::conflict(
        "OverQuota",
        format!("Quota exceeded for resources: ['{resource}']."),
    )
}

/// The quota of each (project, resource) a write transaction creates, read once and then
/// charged for each request of the transaction (a batch of the port writer holds several).
#[derive(Default)]
pub struct Ledger {
    /// (limit, counted so far) of each loaded (project, resource); None when unlimited.
    entries: HashMap<(String, &'static str), Option<(i64, i64)>>,
}

impl Ledger {
    /// Reads the limits and usage of `resource` for `projects` in `tx`, locking each limited
    /// one on PostgreSQL first (in order: call this before any other lock of the transaction).
    pub async fn load(
        &mut self,
        tx: &mut store::Tx<'_>,
        backend: store::Backend,
        resource: &'static str,
        projects: &[&str],
    ) -> CoreResult<()> {
        let mut projects = projects.to_vec();
        projects.sort_unstable();
        projects.dedup();
        let default = RESOURCES
            .iter()
            .find(|(r, _)| *r == resource)
            .map_or(-1, |(_, d)| *d);
        for project in projects {
            let key = (project.to_string(), resource);
            if self.entries.contains_key(&key) {
                continue;
            }
            let limit = repo::limit(&mut **tx, project, resource)
                .await?
                .unwrap_or(default);
            let entry = if limit < 0 {
                None
            } else {
                store::lock_named(tx, backend, &format!("quota:{resource}:{project}")).await?;
                Some((
                    limit,
                    repo::count(&mut **tx, resource, project, Some(limit + 1)).await?,
                ))
            };
            self.entries.insert(key, entry);
        }
        Ok(())
    }

    /// Counts `delta` more of `resource` for `project` (loaded first), or `OverQuota` if that
    /// goes over its limit (nothing is counted then).
    pub fn charge(&mut self, project: &str, resource: &'static str, delta: i64) -> CoreResult<()> {
        if delta <= 0 {
            return Ok(());
        }
        match self.entries.get_mut(&(project.to_string(), resource)) {
            Some(None) => Ok(()),
            Some(Some((limit, used))) if *used + delta > *limit => Err(over_quota(resource)),
            Some(Some((_, used))) => {
                *used += delta;
                Ok(())
            }
            None => Err(NeutronError::internal(format!(
                "quota of {resource} for {project} charged before it was loaded"
            ))),
        }
    }

    /// Loads and charges at once, for a transaction that creates for one request.
    pub async fn check(
        tx: &mut store::Tx<'_>,
        backend: store::Backend,
        resource: &'static str,
        deltas: &[(String, i64)],
    ) -> CoreResult<()> {
        let mut ledger = Ledger::default();
        let projects: Vec<&str> = deltas
            .iter()
            .filter(|(_, d)| *d > 0)
            .map(|(p, _)| p.as_str())
            .collect();
        ledger.load(tx, backend, resource, &projects).await?;
        for (project, delta) in deltas {
            ledger.charge(project, resource, *delta)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_as_neutron_converts_them() {
        assert_eq!(limit_value("port", &Value::from(5)).unwrap(), 5);
        assert_eq!(limit_value("port", &Value::from("7")).unwrap(), 7);
        assert_eq!(limit_value("port", &Value::from(-1)).unwrap(), -1);
        let e = limit_value("port", &Value::from(-2)).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid input for port. Reason: '-2' is too small - must be at least '-1'."
        );
        let e = limit_value("port", &Value::from("abc")).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid input for operation: 'abc' is not an integer."
        );
        assert!(limit_value("port", &Value::from(1.5)).is_err());
        assert!(limit_value("port", &Value::Bool(true)).is_err());
        assert!(limit_value("port", &Value::from(MAX_LIMIT + 1)).is_err());
    }

    #[test]
    fn a_ledger_charges_up_to_the_limit_and_not_past_it() {
        let mut ledger = Ledger::default();
        ledger.entries.insert(("p".into(), "port"), Some((5, 3)));
        ledger.entries.insert(("q".into(), "port"), None);
        ledger.charge("p", "port", 2).unwrap();
        let e = ledger.charge("p", "port", 1).unwrap_err();
        assert_eq!(e.status, Status::CONFLICT);
        assert_eq!(e.message, "Quota exceeded for resources: ['port'].");
        ledger.charge("q", "port", 1_000_000).unwrap();
        assert!(ledger.charge("r", "port", 1).is_err());
    }
}
