//! Security groups and rules as Neutron's API keeps them: create (one or bulk, in one
//! transaction), update, delete, and each project's `default` group with its rules, made on
//! first need (a port, a list, another group's create) and protected from its project.
//!
//! A group's changes take its named lock alone, the port writes that name it take it shared
//! (PostgreSQL; SQLite's one writer serialises them anyway): a group found unused by its delete
//! cannot be given to a port before the delete commits, and port writes, which may name
//! groups in any order, never wait for each other on them.

use serde_json::{Map, Value};

use crate::error::{CoreResult, NeutronError};
use crate::quotas::{self, Ledger};
use crate::security_group_rules::{self, RuleRequest};
use crate::{RequestContext, Services, body};
use neutrino_store::security_groups::{self as repo, Rule, RuleWriteError, SecurityGroup};
use neutrino_store::{self as store, port_groups};

pub fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "SecurityGroupNotFound",
        format!("Security group {id} does not exist"),
    )
}

pub fn rule_not_found(id: &str) -> NeutronError {
    NeutronError::not_found(
        "SecurityGroupRuleNotFound",
        format!("Security group rule {id} does not exist"),
    )
}

fn in_use(id: &str) -> NeutronError {
    NeutronError::conflict("SecurityGroupInUse", format!("Security Group {id} in use."))
}

fn lock_name(id: &str) -> String {
    format!("security-group:{id}")
}

/// Taken by a change of the group (see the module's comment).
pub async fn lock(state: &Services, tx: &mut store::Tx<'_>, id: &str) -> store::Result<()> {
    store::lock_named(tx, state.store.backend, &lock_name(id)).await
}

/// Taken by a port write that names the group.
pub async fn lock_shared(state: &Services, tx: &mut store::Tx<'_>, id: &str) -> store::Result<()> {
    store::lock_named_shared(tx, state.store.backend, &lock_name(id)).await
}

/// Neutron's `name_not_default` validator, on create and rename.
fn check_name(name: &str) -> CoreResult<()> {
    if name.eq_ignore_ascii_case("default") {
        return Err(NeutronError::conflict(
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        ));
    }
    Ok(())
}

/// Makes `project`'s default group (with its rules) if it has none: read first, so that the
/// usual case (it exists) takes no write transaction.
pub async fn ensure_default(state: &Services, project: &str) -> CoreResult<()> {
    let mut conn = state.store.read_conn().await?;
    if repo::find_default(&mut *conn, project).await?.is_some() {
        return Ok(());
    }
    drop(conn);
    let mut tx = state.store.begin_write().await?;
    repo::default_for(&mut tx, project).await?;
    store::commit(tx).await?;
    Ok(())
}

/// A group the caller may see, or 404: its own project's (any, for an admin).
pub async fn visible(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    id: &str,
) -> CoreResult<SecurityGroup> {
    match repo::get(&mut *conn, id).await? {
        Some(g) if ctx.owns(&g.project_id) => Ok(g),
        _ => Err(not_found(id)),
    }
}

/// A group the caller may see, with its rules.
pub async fn show(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    id: &str,
) -> CoreResult<(SecurityGroup, Vec<Rule>)> {
    let g = visible(conn, ctx, id).await?;
    let rules = repo::rules_of(conn, std::slice::from_ref(&g.id)).await?;
    Ok((g, rules))
}

/// Creates groups from create bodies (checked for attributes and policy; `projects[i]` is the
/// project of `bodies[i]`), all or none: each with the egress rules of Neutron's template, and
/// its project's default group first if it has none.
pub async fn create(
    state: &Services,
    bodies: &[Map<String, Value>],
    projects: &[String],
) -> CoreResult<Vec<(SecurityGroup, Vec<Rule>)>> {
    let mut tx = state.store.begin_write().await?;
    let mut deltas: Vec<(String, i64)> = Vec::new();
    for project in projects {
        match deltas.iter_mut().find(|(p, _)| p == project) {
            Some((_, n)) => *n += 1,
            None => deltas.push((project.clone(), 1)),
        }
    }
    // Quota locks are the first a transaction takes.
    Ledger::check(&mut tx, state.store.backend, "security_group", &deltas).await?;
    let mut created = Vec::with_capacity(bodies.len());
    for (b, project) in bodies.iter().zip(projects) {
        let name = body::string(b, "name", 255)?.unwrap_or_default();
        check_name(&name)?;
        // Neutron checks only that a group's template rules fit the limit at all (its
        // `quota_limit_check`), not the project's usage: template rules are not the caller's.
        quotas::limit_check(&mut tx, project, "security_group_rule", 2).await?;
        repo::default_for(&mut tx, project).await?;
        let now = store::now();
        let group = SecurityGroup {
            id: store::new_id(),
            project_id: project.clone(),
            name,
            description: body::string(b, "description", 255)?.unwrap_or_default(),
            stateful: body::boolean(b, "stateful")?.unwrap_or(true),
            created_at: now.clone(),
            updated_at: now,
            revision_number: 1,
        };
        repo::insert(&mut tx, &group).await?;
        repo::insert_template_rules(&mut tx, &group, false).await?;
        let rules = repo::rules_of(&mut tx, std::slice::from_ref(&group.id)).await?;
        created.push((group, rules));
    }
    store::commit(tx).await?;
    Ok(created)
}

/// Updates a group's name, description or statefulness. The default group's name cannot be
/// sent at all (Neutron refuses it even unchanged, even to admins); statefulness cannot change
/// while a port uses the group.
pub async fn update(
    state: &Services,
    ctx: &RequestContext,
    id: &str,
    b: &Map<String, Value>,
) -> CoreResult<(SecurityGroup, Vec<Rule>)> {
    let mut tx = state.store.begin_write().await?;
    visible(&mut tx, ctx, id).await?;
    ctx.require_write("update_security_group")?;
    lock(state, &mut tx, id).await?;
    // Read again under the lock: a change committed meanwhile is not written over.
    let mut g = visible(&mut tx, ctx, id).await?;
    if let Some(name) = body::string(b, "name", 255)? {
        if repo::is_default(&mut *tx, id).await? {
            return Err(NeutronError::conflict(
                "SecurityGroupCannotUpdateDefault",
                "Updating default security group not allowed.",
            ));
        }
        check_name(&name)?;
        g.name = name;
    }
    if let Some(d) = body::string(b, "description", 255)? {
        g.description = d;
    }
    if let Some(stateful) = body::boolean(b, "stateful")?
        && stateful != g.stateful
    {
        if repo::in_use(&mut *tx, id).await? {
            return Err(in_use(id));
        }
        g.stateful = stateful;
    }
    g.updated_at = store::now();
    g.revision_number += 1;
    repo::update(&mut tx, &g).await?;
    let rules = repo::rules_of(&mut tx, std::slice::from_ref(&g.id)).await?;
    store::commit(tx).await?;
    Ok((g, rules))
}

/// Deletes a group no port uses, with its rules (and other groups' rules naming it as their
/// remote group). A project may not delete its default group; an admin may (a new one is made
/// on next need).
pub async fn delete(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    visible(&mut tx, ctx, id).await?;
    ctx.require_write("delete_security_group")?;
    lock(state, &mut tx, id).await?;
    if !ctx.is_admin() && repo::is_default(&mut *tx, id).await? {
        return Err(NeutronError::conflict(
            "SecurityGroupCannotRemoveDefault",
            "Insufficient rights for removing default security group.",
        ));
    }
    if repo::in_use(&mut *tx, id).await? {
        return Err(in_use(id));
    }
    // Its deletion takes other groups' rules naming it: their ports' filters change.
    let naming = port_groups::groups_naming(&mut tx, id).await?;
    if !repo::delete(&mut tx, id).await? {
        return Err(not_found(id));
    }
    let revision = port_groups::rules_changed(&mut tx, &naming).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

/// Creates rules from create bodies (checked for unknown attributes), all or none: one group
/// per request, as Neutron's bulk create requires; each rule belongs to its group's project.
pub async fn create_rules(
    state: &Services,
    ctx: &RequestContext,
    bodies: &[Map<String, Value>],
) -> CoreResult<Vec<Rule>> {
    let requests = bodies
        .iter()
        .map(security_group_rules::parse)
        .collect::<CoreResult<Vec<RuleRequest>>>()?;
    let Some(first) = requests.first() else {
        return Ok(Vec::new());
    };
    let group_id = first.security_group_id.clone();
    if requests.iter().any(|r| r.security_group_id != group_id) {
        return Err(NeutronError::bad(
            "SecurityGroupNotSingleGroupRules",
            "Only allowed to update rules for one security profile at a time",
        ));
    }
    for (i, r) in requests.iter().enumerate() {
        let key = r.fields.match_key();
        if requests[..i].iter().any(|o| o.fields.match_key() == key) {
            return Err(NeutronError::conflict(
                "DuplicateSecurityGroupRuleInPost",
                "Duplicate Security Group Rule in POST.",
            ));
        }
    }
    let mut tx = state.store.begin_write().await?;
    // The group's project pays, and its quota lock comes first: read the group's owner
    // without a lock, then lock, then check again under it.
    let project = visible(&mut tx, ctx, &group_id).await?.project_id;
    let deltas = [(project.clone(), requests.len() as i64)];
    Ledger::check(&mut tx, state.store.backend, "security_group_rule", &deltas).await?;
    lock(state, &mut tx, &group_id).await?;
    let group = visible(&mut tx, ctx, &group_id).await?;
    let now = store::now();
    let mut created = Vec::with_capacity(requests.len());
    for r in requests {
        if let Some(remote) = &r.fields.remote_group_id {
            match repo::get(&mut *tx, remote).await? {
                Some(g) if g.project_id == group.project_id => {}
                _ => return Err(not_found(remote)),
            }
        }
        if let Some(address_group) = &r.remote_address_group_id {
            // Address groups are not served: none exists.
            return Err(NeutronError::not_found(
                "AddressGroupNotFound",
                format!("Address group {address_group} could not be found."),
            ));
        }
        let rule = Rule {
            id: store::new_id(),
            project_id: group.project_id.clone(),
            security_group_id: group.id.clone(),
            fields: r.fields,
            description: Some(r.description),
            in_default_group: repo::is_default(&mut *tx, &group.id).await?,
            created_at: now.clone(),
            updated_at: now.clone(),
            revision_number: 0,
        };
        match repo::insert_rule(&mut tx, &rule).await {
            Ok(()) => created.push(rule),
            Err(RuleWriteError::Exists(existing)) => {
                return Err(NeutronError::conflict(
                    "SecurityGroupRuleExists",
                    format!("Security group rule already exists. Rule id is {existing}."),
                ));
            }
            Err(RuleWriteError::Db(e)) => return Err(e.into()),
        }
    }
    repo::bump_revision(&mut tx, &group.id).await?;
    let revision = port_groups::rules_changed(&mut tx, std::slice::from_ref(&group.id)).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(created)
}

/// A rule the caller may see (its group's project's; any, for an admin), or 404.
pub async fn visible_rule(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    id: &str,
) -> CoreResult<Rule> {
    match repo::get_rule(&mut *conn, id).await? {
        Some(r) if ctx.owns(&r.project_id) => Ok(r),
        _ => Err(rule_not_found(id)),
    }
}

pub async fn delete_rule(state: &Services, ctx: &RequestContext, id: &str) -> CoreResult<()> {
    let mut tx = state.store.begin_write().await?;
    let rule = visible_rule(&mut tx, ctx, id).await?;
    ctx.require_write("delete_security_group_rule")?;
    lock(state, &mut tx, &rule.security_group_id).await?;
    if !repo::delete_rule(&mut tx, id).await? {
        return Err(rule_not_found(id));
    }
    repo::bump_revision(&mut tx, &rule.security_group_id).await?;
    let revision =
        port_groups::rules_changed(&mut tx, std::slice::from_ref(&rule.security_group_id)).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

/// The ids of the groups a boot names (Nova's `_get_security_group_ids`): each name is a group
/// id of the project, else the name of exactly one of its groups. Unknown: Nova's
/// `SecurityGroupNotFound` (400); several by that name: `NoUniqueMatch` (409).
pub async fn ids_for_boot(
    state: &Services,
    ctx: &RequestContext,
    names: &[String],
) -> CoreResult<Vec<String>> {
    // `default` is found by name like any other, so it must exist first.
    ensure_default(state, &ctx.project_id).await?;
    let mut conn = state.store.read_conn().await?;
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        if let Some(g) = repo::get(&mut *conn, name).await?
            && g.project_id == ctx.project_id
        {
            ids.push(g.id);
            continue;
        }
        let found = repo::named(&mut *conn, &ctx.project_id, name).await?;
        match found.as_slice() {
            [g] => ids.push(g.id.clone()),
            [] => {
                return Err(NeutronError::bad(
                    "SecurityGroupNotFound",
                    format!("Security group {name} not found."),
                ));
            }
            _ => {
                return Err(NeutronError::conflict(
                    "NoUniqueMatch",
                    format!(
                        "Multiple security groups found matching '{name}'. Use an ID to be more specific."
                    ),
                ));
            }
        }
    }
    // A group named twice is one group of the port.
    let mut unique: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}
