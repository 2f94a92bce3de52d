//! Tags on resources (`standard-attr-tag`): who may read and change them, Neutron's checks
//! (`neutron/extensions/tagging.py`), and each change in one transaction that also moves the
//! resource's revision, as Neutron's tags do (`revises_on_change`).

use serde_json::Value;

use crate::error::{CoreResult, NeutronError};
use crate::{RequestContext, Services, networks, ports, security_groups, subnet_pools, subnets};
use neutrino_store::{self as store, tags as repo};

pub use neutrino_store::tags::Kind;

/// Neutron's `MAX_TAG_LEN`, in characters.
pub const MAX_TAG_LEN: usize = 255;
/// Neutron's per-resource limit (`MAX_TAGS_COUNT`).
pub const MAX_TAGS: usize = 50;

/// The resource's singular name, as its policy rules say it (`update_network:tags`).
fn member(kind: Kind) -> &'static str {
    match kind {
        Kind::Network => "network",
        Kind::Subnet => "subnet",
        Kind::Port => "port",
        Kind::SecurityGroup => "security_group",
        Kind::SubnetPool => "subnetpool",
        Kind::Router => "router",
        Kind::FloatingIp => "floatingip",
    }
}

/// The resource's own 404 (`NetworkNotFound`, ...).
pub fn not_found(kind: Kind, id: &str) -> NeutronError {
    match kind {
        Kind::Network => networks::not_found(id),
        Kind::Subnet => subnets::not_found(id),
        Kind::Port => ports::not_found(id),
        Kind::SecurityGroup => security_groups::not_found(id),
        Kind::SubnetPool => subnet_pools::not_found(id),
        Kind::Router => crate::routers::not_found(id),
        Kind::FloatingIp => crate::floating_ips::not_found(id),
    }
}

fn tag_not_found(tag: &str) -> NeutronError {
    NeutronError::not_found("TagNotFound", format!("Tag {tag} could not be found."))
}

/// The project of a resource the caller may see (by the resource's own rules), or its 404.
async fn owner(
    conn: &mut store::Conn,
    ctx: &RequestContext,
    kind: Kind,
    id: &str,
) -> CoreResult<String> {
    Ok(match kind {
        Kind::Network => networks::visible_in(conn, ctx, id).await?.project_id,
        Kind::Subnet => subnets::visible(conn, ctx, id).await?.0.project_id,
        Kind::Port => ports::visible(conn, ctx, id).await?.project_id,
        Kind::SecurityGroup => security_groups::visible(conn, ctx, id).await?.project_id,
        Kind::SubnetPool => subnet_pools::visible(conn, ctx, id).await?.project_id,
        Kind::Router => crate::routers::visible(conn, ctx, id).await?.project_id,
        Kind::FloatingIp => {
            crate::floating_ips::visible(conn, ctx, id)
                .await?
                .project_id
        }
    })
}

/// neutron-lib's `validate_string(tag, MAX_TAG_LEN)`, as `InvalidInput`.
pub fn check_tag(tag: &str) -> CoreResult<()> {
    if tag.chars().count() > MAX_TAG_LEN {
        return Err(NeutronError::invalid_input(format!(
            "'{tag}' exceeds maximum length of {MAX_TAG_LEN}"
        )));
    }
    Ok(())
}

/// Neutron's `validate_tags`: `{"tags": [...]}` of unique strings, each checked.
pub fn tags_of_body(body: &Value) -> CoreResult<Vec<String>> {
    let Some(list) = body.as_object().and_then(|b| b.get("tags")) else {
        return Err(NeutronError::invalid_input("Invalid tags body"));
    };
    let Some(items) = list.as_array() else {
        return Err(NeutronError::invalid_input(format!(
            "'{list}' is not a list"
        )));
    };
    let mut duplicates: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            let shown = item
                .as_str()
                .map_or_else(|| item.to_string(), str::to_string);
            if !duplicates.contains(&shown) {
                duplicates.push(shown);
            }
        }
    }
    if !duplicates.is_empty() {
        return Err(NeutronError::invalid_input(format!(
            "Duplicate items in the list: '{}'",
            duplicates.join(", ")
        )));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(tag) => check_tag(tag).map(|()| tag.clone()),
            other => Err(NeutronError::invalid_input(format!(
                "'{other}' is not a valid string"
            ))),
        })
        .collect()
}

/// A resource's tags (sorted), if the caller may see it.
pub async fn list(
    state: &Services,
    ctx: &RequestContext,
    kind: Kind,
    id: &str,
) -> CoreResult<Vec<String>> {
    let mut conn = state.store.read_conn().await?;
    owner(&mut conn, ctx, kind, id).await?;
    Ok(repo::of(&mut conn, kind, id).await?)
}

/// Whether the resource has the tag: `TagNotFound` if not.
pub async fn check_has(
    state: &Services,
    ctx: &RequestContext,
    kind: Kind,
    id: &str,
    tag: &str,
) -> CoreResult<()> {
    check_tag(tag)?;
    if list(state, ctx, kind, id).await?.iter().any(|t| t == tag) {
        Ok(())
    } else {
        Err(tag_not_found(tag))
    }
}

/// A change of a resource's tags.
#[derive(Debug, Clone)]
pub enum Change {
    /// `PUT .../tags`: exactly these.
    Replace(Vec<String>),
    /// `POST .../tags` (`tag-creation`) or `PUT .../tags/{tag}`: these too.
    Add(Vec<String>),
    /// `DELETE .../tags/{tag}`: `TagNotFound` if absent.
    Remove(String),
    /// `DELETE .../tags`.
    Clear,
}

/// Applies a change to the tags of a resource the caller owns (admins own all) and may
/// write, in one transaction; a change that changes something moves the resource's revision.
pub async fn change(
    state: &Services,
    ctx: &RequestContext,
    kind: Kind,
    id: &str,
    change: Change,
) -> CoreResult<()> {
    let action = match change {
        Change::Replace(_) | Change::Add(_) => "update",
        Change::Remove(_) | Change::Clear => "delete",
    };
    let rule = format!("{action}_{}:tags", member(kind));
    let mut tx = state.store.begin_write().await?;
    let project = owner(&mut tx, ctx, kind, id).await?;
    // A project sees shared networks (and their subnets) and shared pools it does not own: it may read their
    // tags, not change them (Neutron's `ADMIN_OR_PROJECT_MEMBER` on the tag rules).
    if !ctx.owns(&project) {
        return Err(NeutronError::forbidden(&rule));
    }
    ctx.require_write(&rule)?;
    // Taken first: the resource's row lock orders concurrent changes of its tags (and a
    // concurrent delete), so each reads the tags the last one left.
    if !repo::touch(&mut tx, kind, id).await? {
        return Err(not_found(kind, id));
    }
    let current = repo::of(&mut tx, kind, id).await?;
    let (added, removed): (Vec<String>, Vec<String>) = match change {
        Change::Replace(wanted) => (
            wanted
                .iter()
                .filter(|t| !current.contains(t))
                .cloned()
                .collect(),
            current
                .iter()
                .filter(|t| !wanted.contains(t))
                .cloned()
                .collect(),
        ),
        Change::Add(more) => (
            more.into_iter().filter(|t| !current.contains(t)).collect(),
            Vec::new(),
        ),
        Change::Remove(tag) if current.contains(&tag) => (Vec::new(), vec![tag]),
        Change::Remove(tag) => return Err(tag_not_found(&tag)),
        Change::Clear => (Vec::new(), current.clone()),
    };
    let count = current.len() + added.len() - removed.len();
    if count > MAX_TAGS {
        return Err(NeutronError::bad(
            "BadRequest",
            format!(
                "Bad {} request: The number of tags exceed the per-resource limit of {MAX_TAGS}.",
                kind.name()
            ),
        ));
    }
    if added.is_empty() && removed.is_empty() {
        // Nothing changes: the revision stays (the transaction is rolled back).
        return Ok(());
    }
    repo::remove(&mut tx, kind, id, &removed).await?;
    repo::add(&mut tx, kind, id, &added).await?;
    store::commit(tx).await?;
    Ok(())
}
