//! Security groups and their rules, and each project's `default` group, made on first need
//! (ports get it when they name no group) with Neutron's default rules.
//!
//! Rules are kept checked and normalised by the caller; this module only knows the duplicate
//! key ([`RuleFields::match_key`]) the unique index holds, so that two identical rules cannot
//! both be written, whoever writes them.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row, Transaction};

use super::listing::{self, Column, Key, Request, Table};
use super::{Store, flag};

/// A security group as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub stateful: bool,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

/// What a rule says, checked and normalised (see the core's rule parsing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleFields {
    pub direction: String,
    pub ethertype: String,
    /// As shown: a lower-case name or a decimal number; None: any.
    pub protocol: Option<String>,
    /// The protocol's number, for the duplicate key (`tcp` and `6` are one rule).
    pub protocol_number: Option<u8>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

impl RuleFields {
    /// Neutron's duplicate key (`_rule_to_key`): direction, ethertype, port range, protocol,
    /// remote group and prefix, `+` for none; a prefix of everything counts as none.
    pub fn match_key(&self) -> String {
        fn or_plus<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map_or_else(|| "+".into(), ToString::to_string)
        }
        let prefix = self
            .remote_ip_prefix
            .as_deref()
            .filter(|p| !matches!(*p, "0.0.0.0/0" | "::/0"));
        [
            self.direction.clone(),
            self.ethertype.clone(),
            or_plus(&self.port_range_max),
            or_plus(&self.port_range_min),
            or_plus(&self.protocol_number),
            or_plus(&self.remote_group_id),
            // remote_address_group_id: not served, always none.
            "+".into(),
            or_plus(&prefix),
        ]
        .join("|")
    }
}

/// A rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub project_id: String,
    pub security_group_id: String,
    pub fields: RuleFields,
    pub description: Option<String>,
    /// Whether its group is its project's default group.
    pub in_default_group: bool,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

macro_rules! group_columns {
    () => {
        "sg.id, sg.project_id, sg.name, sg.description, sg.stateful, sg.created_at, \
         sg.updated_at, sg.revision_number"
    };
}

macro_rules! rule_columns {
    () => {
        "r.id, r.project_id, r.security_group_id, r.direction, r.ethertype, r.protocol, \
         r.port_range_min, r.port_range_max, r.remote_ip_prefix, r.remote_group_id, \
         r.description, r.created_at, r.updated_at, r.revision_number, \
         CAST(CASE WHEN d.project_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS in_default"
    };
}

/// Rules with whether their group is a default one.
macro_rules! rules_from {
    () => {
        "security_group_rules r \
         LEFT JOIN default_security_groups d ON d.security_group_id = r.security_group_id"
    };
}

fn group_from_row(r: &AnyRow) -> crate::Result<SecurityGroup> {
    Ok(SecurityGroup {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        stateful: flag(r, "stateful")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision_number: r.try_get("revision_number")?,
    })
}

fn rule_from_row(r: &AnyRow) -> crate::Result<Rule> {
    let protocol: Option<String> = r.try_get("protocol")?;
    Ok(Rule {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        security_group_id: r.try_get("security_group_id")?,
        fields: RuleFields {
            direction: r.try_get("direction")?,
            ethertype: r.try_get("ethertype")?,
            protocol_number: None,
            protocol,
            port_range_min: r.try_get("port_range_min")?,
            port_range_max: r.try_get("port_range_max")?,
            remote_ip_prefix: r.try_get("remote_ip_prefix")?,
            remote_group_id: r.try_get("remote_group_id")?,
        },
        description: r.try_get("description")?,
        in_default_group: flag(r, "in_default")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        revision_number: r.try_get("revision_number")?,
    })
}

/// The security groups table as lists see it, by API attribute.
pub static TABLE: Table = Table {
    from: "security_groups sg",
    id: &GROUP_COLUMNS[0],
    columns: &GROUP_COLUMNS,
    visible: "sg.project_id = {}",
    addresses: false,
    tags: Some(crate::tags::Kind::SecurityGroup),
};

static GROUP_COLUMNS: [Column; 9] = [
    Column::text("id", "sg.id"),
    Column::text("name", "sg.name"),
    Column::text("tenant_id", "sg.project_id"),
    Column::text("project_id", "sg.project_id"),
    Column::text("description", "sg.description"),
    Column::flag("stateful", "sg.stateful"),
    Column::int("revision_number", "sg.revision_number"),
    Column::text("created_at", "sg.created_at"),
    Column::text("updated_at", "sg.updated_at"),
];

/// The rules table as lists see it, by API attribute.
pub static RULE_TABLE: Table = Table {
    from: rules_from!(),
    id: &RULE_COLUMNS[0],
    columns: &RULE_COLUMNS,
    visible: "r.project_id = {}",
    addresses: false,
    tags: None,
};

static RULE_COLUMNS: [Column; 16] = [
    Column::text("id", "r.id"),
    Column::text("security_group_id", "r.security_group_id"),
    Column::text("direction", "r.direction"),
    Column::text("ethertype", "r.ethertype"),
    Column::text("protocol", "r.protocol").nullable(),
    Column::int("port_range_min", "r.port_range_min").nullable(),
    Column::int("port_range_max", "r.port_range_max").nullable(),
    Column::text("remote_ip_prefix", "r.remote_ip_prefix").nullable(),
    Column::text("remote_group_id", "r.remote_group_id").nullable(),
    Column::text("description", "r.description").nullable(),
    Column::text("tenant_id", "r.project_id"),
    Column::text("project_id", "r.project_id"),
    Column::int("revision_number", "r.revision_number"),
    Column::text("created_at", "r.created_at"),
    Column::text("updated_at", "r.updated_at"),
    Column::flag(
        "belongs_to_default_sg",
        "CASE WHEN d.project_id IS NULL THEN 0 ELSE 1 END",
    ),
];

/// One page of groups as `req` describes it, each with its key.
pub async fn page(store: &Store, req: &Request) -> crate::Result<Vec<(SecurityGroup, Key)>> {
    let select = listing::select(&TABLE, store.backend, group_columns!(), req);
    listing::fetch_any(store, &select)
        .await?
        .iter()
        .map(|r| {
            Ok((
                group_from_row(r)?,
                listing::row_key(r, &TABLE, store.backend, req)?,
            ))
        })
        .collect()
}

/// One page of rules as `req` describes it, each with its key.
pub async fn rules_page(store: &Store, req: &Request) -> crate::Result<Vec<(Rule, Key)>> {
    let select = listing::select(&RULE_TABLE, store.backend, rule_columns!(), req);
    listing::fetch_any(store, &select)
        .await?
        .iter()
        .map(|r| {
            Ok((
                rule_from_row(r)?,
                listing::row_key(r, &RULE_TABLE, store.backend, req)?,
            ))
        })
        .collect()
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> crate::Result<Option<SecurityGroup>> {
    sqlx::query(concat!(
        "SELECT ",
        group_columns!(),
        " FROM security_groups sg WHERE sg.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|r| group_from_row(&r))
    .transpose()
}

/// The groups of `project` named `name`, for look-ups by name (Nova's boot).
pub async fn named<'e, E: Executor<'e, Database = Any>>(
    e: E,
    project: &str,
    name: &str,
) -> crate::Result<Vec<SecurityGroup>> {
    sqlx::query(concat!(
        "SELECT ",
        group_columns!(),
        " FROM security_groups sg WHERE sg.project_id = $1 AND sg.name = $2 ORDER BY sg.id"
    ))
    .bind(project)
    .bind(name)
    .fetch_all(e)
    .await?
    .iter()
    .map(group_from_row)
    .collect()
}

pub async fn get_rule<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> crate::Result<Option<Rule>> {
    sqlx::query(concat!(
        "SELECT ",
        rule_columns!(),
        " FROM ",
        rules_from!(),
        " WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(|r| rule_from_row(&r))
    .transpose()
}

/// The rules of these groups, by group then creation.
pub async fn rules_of(
    conn: &mut sqlx::AnyConnection,
    groups: &[String],
) -> crate::Result<Vec<Rule>> {
    let mut found = Vec::new();
    for (chunk, rows) in crate::value_chunks(crate::Backend::of(conn), groups, 1, 0) {
        let sql = format!(
            concat!(
                "SELECT ",
                rule_columns!(),
                " FROM ",
                rules_from!(),
                " WHERE r.security_group_id IN (VALUES {rows}) \
                 ORDER BY r.security_group_id, r.created_at, r.id"
            ),
            rows = rows
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            found.push(rule_from_row(&row)?);
        }
    }
    Ok(found)
}

/// The rules of the groups on a page, read from the store's read pool.
pub async fn rules_of_page(store: &Store, groups: &[String]) -> crate::Result<Vec<Rule>> {
    let mut conn = store.read.acquire().await?;
    rules_of(&mut conn, groups).await
}

pub async fn insert(tx: &mut Transaction<'_, Any>, g: &SecurityGroup) -> crate::Result<()> {
    sqlx::query(
        "INSERT INTO security_groups (id, project_id, name, description, stateful, created_at, \
         updated_at, revision_number) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&g.id)
    .bind(&g.project_id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(i64::from(g.stateful))
    .bind(&g.created_at)
    .bind(&g.updated_at)
    .bind(g.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the mutable attributes (name, description, stateful) and the revision.
pub async fn update(tx: &mut Transaction<'_, Any>, g: &SecurityGroup) -> crate::Result<()> {
    sqlx::query(
        "UPDATE security_groups SET name = $2, description = $3, stateful = $4, updated_at = $5, \
         revision_number = $6 WHERE id = $1",
    )
    .bind(&g.id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(i64::from(g.stateful))
    .bind(&g.updated_at)
    .bind(g.revision_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes a group with its rules and the rules of other groups that name it as their remote
/// group (Neutron's cascade), and its place as its project's default.
pub async fn delete(tx: &mut Transaction<'_, Any>, id: &str) -> crate::Result<bool> {
    crate::tags::clear(tx, crate::tags::Kind::SecurityGroup, id).await?;
    for sql in [
        "DELETE FROM security_group_rules WHERE security_group_id = $1 OR remote_group_id = $1",
        "DELETE FROM default_security_groups WHERE security_group_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut **tx).await?;
    }
    let done = sqlx::query("DELETE FROM security_groups WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether some port names the group.
pub async fn in_use<'e, E: Executor<'e, Database = Any>>(e: E, id: &str) -> crate::Result<bool> {
    // By index, not by reading every port's groups.
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM port_security_groups WHERE security_group_id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(e)
    .await?;
    Ok(found.is_some())
}

/// Why a rule was not written.
#[derive(Debug)]
pub enum RuleWriteError {
    /// The group holds a rule with the same key: its id.
    Exists(String),
    Db(crate::Error),
}

impl From<crate::Error> for RuleWriteError {
    fn from(e: crate::Error) -> Self {
        RuleWriteError::Db(e)
    }
}

/// Writes a rule, unless its group already holds one with the same key.
pub async fn insert_rule(tx: &mut Transaction<'_, Any>, r: &Rule) -> Result<(), RuleWriteError> {
    let key = r.fields.match_key();
    let written = sqlx::query(
        "INSERT INTO security_group_rules (id, project_id, security_group_id, direction, \
         ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix, remote_group_id, \
         description, match_key, created_at, updated_at, revision_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (security_group_id, match_key) DO NOTHING",
    )
    .bind(&r.id)
    .bind(&r.project_id)
    .bind(&r.security_group_id)
    .bind(&r.fields.direction)
    .bind(&r.fields.ethertype)
    .bind(&r.fields.protocol)
    .bind(r.fields.port_range_min)
    .bind(r.fields.port_range_max)
    .bind(&r.fields.remote_ip_prefix)
    .bind(&r.fields.remote_group_id)
    .bind(&r.description)
    .bind(&key)
    .bind(&r.created_at)
    .bind(&r.updated_at)
    .bind(r.revision_number)
    .execute(&mut **tx)
    .await
    .map_err(crate::Error::from)?
    .rows_affected();
    if written == 1 {
        return Ok(());
    }
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT id FROM security_group_rules WHERE security_group_id = $1 AND match_key = $2",
    )
    .bind(&r.security_group_id)
    .bind(&key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(crate::Error::from)?;
    Err(RuleWriteError::Exists(existing.unwrap_or_default()))
}

pub async fn delete_rule(tx: &mut Transaction<'_, Any>, id: &str) -> crate::Result<bool> {
    let done = sqlx::query("DELETE FROM security_group_rules WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A group's own revision goes up when its rules change, as Neutron's does.
pub async fn bump_revision(tx: &mut Transaction<'_, Any>, id: &str) -> crate::Result<()> {
    sqlx::query(
        "UPDATE security_groups SET revision_number = revision_number + 1, updated_at = $2 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(super::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The rules every new group gets (Neutron's default rule template): egress to anywhere,
/// IPv4 and IPv6; a default group also ingress from its own members, IPv4 and IPv6.
pub fn template_rules(group: &SecurityGroup, default_group: bool) -> Vec<Rule> {
    let mut rules = Vec::new();
    for direction in ["egress", "ingress"] {
        if direction == "ingress" && !default_group {
            continue;
        }
        for ethertype in ["IPv4", "IPv6"] {
            rules.push(Rule {
                id: crate::new_id(),
                project_id: group.project_id.clone(),
                security_group_id: group.id.clone(),
                fields: RuleFields {
                    direction: direction.into(),
                    ethertype: ethertype.into(),
                    remote_group_id: (direction == "ingress").then(|| group.id.clone()),
                    ..RuleFields::default()
                },
                description: None,
                in_default_group: default_group,
                created_at: group.created_at.clone(),
                updated_at: group.created_at.clone(),
                revision_number: 0,
            });
        }
    }
    rules
}

/// Writes a new group's template rules.
pub async fn insert_template_rules(
    tx: &mut Transaction<'_, Any>,
    group: &SecurityGroup,
    default_group: bool,
) -> crate::Result<()> {
    for rule in template_rules(group, default_group) {
        match insert_rule(tx, &rule).await {
            // A new group holds no rule yet; the template's are distinct.
            Ok(()) | Err(RuleWriteError::Exists(_)) => {}
            Err(RuleWriteError::Db(e)) => return Err(e),
        }
    }
    Ok(())
}

/// The id of `project`'s default group, creating it (with its rules) if the project has none
/// yet. Two creators racing (two servers on PostgreSQL) end with one group: the loser's row is
/// dropped. Quotas are not checked: Neutron makes the default group whatever the project uses.
pub async fn default_for(tx: &mut Transaction<'_, Any>, project: &str) -> crate::Result<String> {
    if let Some(id) = find_default(&mut **tx, project).await? {
        return Ok(id);
    }
    let now = super::now();
    let group = SecurityGroup {
        id: crate::new_id(),
        project_id: project.to_string(),
        name: "default".into(),
        description: "Default security group".into(),
        stateful: true,
        created_at: now.clone(),
        updated_at: now,
        revision_number: 1,
    };
    insert(tx, &group).await?;
    let won = sqlx::query(
        "INSERT INTO default_security_groups (project_id, security_group_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(project)
    .bind(&group.id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if won {
        insert_template_rules(tx, &group, true).await?;
        return Ok(group.id);
    }
    sqlx::query("DELETE FROM security_groups WHERE id = $1")
        .bind(&group.id)
        .execute(&mut **tx)
        .await?;
    Ok(find_default(&mut **tx, project).await?.unwrap_or(group.id))
}

/// The id of `project`'s default group, if it has one yet.
pub async fn find_default<'e, E: Executor<'e, Database = Any>>(
    e: E,
    project: &str,
) -> crate::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT security_group_id FROM default_security_groups WHERE project_id = $1",
    )
    .bind(project)
    .fetch_optional(e)
    .await?)
}

/// Whether the group is some project's default group.
pub async fn is_default<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> crate::Result<bool> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT project_id FROM default_security_groups WHERE security_group_id = $1",
    )
    .bind(id)
    .fetch_optional(e)
    .await?;
    Ok(found.is_some())
}

/// Those of `ids` that exist and `project` may use (None: any project's), each with whether
/// it is stateful.
pub async fn usable(
    conn: &mut sqlx::AnyConnection,
    ids: &[String],
    project: Option<&str>,
) -> crate::Result<Vec<(String, bool)>> {
    let mut found = Vec::new();
    for id in ids {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT project_id, stateful FROM security_groups WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some((owner, stateful)) = row
            && project.is_none_or(|p| p == owner)
        {
            found.push((id.clone(), stateful != 0));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_match_key_is_neutrons() {
        let mut f = RuleFields {
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            protocol_number: Some(6),
            port_range_min: Some(22),
            port_range_max: Some(22),
            ..RuleFields::default()
        };
        assert_eq!(f.match_key(), "ingress|IPv4|22|22|6|+|+|+");
        f.remote_ip_prefix = Some("0.0.0.0/0".into());
        assert_eq!(f.match_key(), "ingress|IPv4|22|22|6|+|+|+");
        f.remote_ip_prefix = Some("10.0.0.5/24".into());
        assert_eq!(f.match_key(), "ingress|IPv4|22|22|6|+|+|10.0.0.5/24");
    }

    #[test]
    fn default_groups_get_four_rules_others_two() {
        let g = SecurityGroup {
            id: "g".into(),
            project_id: "p".into(),
            name: "default".into(),
            description: String::new(),
            stateful: true,
            created_at: "t".into(),
            updated_at: "t".into(),
            revision_number: 1,
        };
        let keys: Vec<String> = template_rules(&g, true)
            .iter()
            .map(|r| r.fields.match_key())
            .collect();
        // The migration's backfill writes the same keys.
        assert_eq!(
            keys,
            [
                "egress|IPv4|+|+|+|+|+|+",
                "egress|IPv6|+|+|+|+|+|+",
                "ingress|IPv4|+|+|+|g|+|+",
                "ingress|IPv6|+|+|+|g|+|+"
            ]
        );
        assert_eq!(template_rules(&g, false).len(), 2);
    }
}
