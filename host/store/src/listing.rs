//! Lists answered by the database: a typed description of a list (conditions, order, where to
//! start, how many) turned into SQL both engines accept, read in keyset pages.
//!
//! A caller (the API) never writes SQL: it names columns through a [`Table`] (by API attribute)
//! and says what it wants with [`Condition`]s, [`Sort`]s and a [`Start`]. Every page is
//! `ORDER BY` the sort keys with the id last and `LIMIT`ed; the next page starts after the key
//! (the values of the sort expressions) of the last row, so a page costs an index seek, not a
//! scan of what came before.
//!
//! Text sorts and compares bytewise on both engines: SQLite's default collation is bytewise,
//! PostgreSQL is told `COLLATE "C"` (and its list indexes are built with it, see
//! `sql/0007_lists.postgres.sql`). A column that may be NULL sorts NULL first, as the API's
//! in-memory order does, through two keys: whether it is set, then its value.

use sqlx::any::AnyRow;

use super::{Backend, Store, StoredRow};

/// How a column's values are bound and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    /// Stored as 0/1.
    Bool,
}

/// A column (or expression) of a table, by the API attribute it answers.
#[derive(Debug)]
pub struct Column {
    pub attr: &'static str,
    /// SQL over the table's alias, e.g. `p.name`.
    pub sql: &'static str,
    pub kind: Kind,
    /// May be NULL.
    pub nullable: bool,
    /// Holds a JSON list of strings as text: an element filter can only narrow (see
    /// [`Condition::ListHas`]).
    pub json_list: bool,
}

impl Column {
    pub const fn text(attr: &'static str, sql: &'static str) -> Column {
        Column {
            attr,
            sql,
            kind: Kind::Text,
            nullable: false,
            json_list: false,
        }
    }
    pub const fn int(attr: &'static str, sql: &'static str) -> Column {
        Column {
            kind: Kind::Int,
            ..Column::text(attr, sql)
        }
    }
    pub const fn flag(attr: &'static str, sql: &'static str) -> Column {
        Column {
            kind: Kind::Bool,
            ..Column::text(attr, sql)
        }
    }
    pub const fn nullable(self) -> Column {
        Column {
            nullable: true,
            ..self
        }
    }
    pub const fn json_list(self) -> Column {
        Column {
            json_list: true,
            ..self
        }
    }
}

/// A table as lists see it.
#[derive(Debug)]
pub struct Table {
    /// `ports p`
    pub from: &'static str,
    /// The id column; every order ends with it.
    pub id: &'static Column,
    pub columns: &'static [Column],
    /// The rows a project may see, `{}` standing for the project's parameter.
    pub visible: &'static str,
    /// Whether [`Condition::Address`] and friends apply (ports: `ip_allocations`).
    pub addresses: bool,
    /// The rows' kind in the `tags` table, when they carry tags ([`Condition::Tags`]).
    pub tags: Option<crate::tags::Kind>,
}

impl Table {
    /// The column answering an API attribute.
    pub fn column(&'static self, attr: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.attr == attr)
    }
}

/// A value bound to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Text(String),
    Int(i64),
}

/// The values of a row's sort expressions: where a page starts.
pub type Key = Vec<Param>;

/// A condition on the rows, exact unless said otherwise.
#[derive(Debug, Clone)]
pub enum Condition {
    /// The column holds one of the values (none: no row matches).
    In {
        column: &'static Column,
        values: Vec<Param>,
    },
    /// The column's JSON list text contains one of these strings as a quoted element. This
    /// narrows only (the text is not parsed): the caller checks the elements itself.
    ListHas {
        column: &'static Column,
        values: Vec<String>,
    },
    /// Some address of the port is one of these. The address conditions are semi-joins
    /// (`id IN (SELECT port_id ...)`), which both engines can drive from the address index.
    AddressIs(Vec<String>),
    /// Some address of the port is on one of these subnets.
    AddressOnSubnet(Vec<String>),
    /// Some address of the port contains one of these strings.
    AddressContains(Vec<String>),
    /// The row's tags (see [`TagTest`]) against these (at least one).
    Tags { test: TagTest, tags: Vec<String> },
}

/// Neutron's tag filters (`apply_tag_filters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagTest {
    /// `tags`: has all of them.
    All,
    /// `tags-any`: has at least one.
    Any,
    /// `not-tags`: lacks at least one.
    NotAll,
    /// `not-tags-any`: has none.
    NotAny,
}

/// One sort key as requested.
#[derive(Debug, Clone, Copy)]
pub struct Sort {
    pub column: &'static Column,
    pub ascending: bool,
}

/// Where a page starts in the order read.
#[derive(Debug, Clone, Default)]
pub enum Start {
    #[default]
    First,
    /// Just after the row with this key.
    After(Key),
    /// At the row with this key (or just after where it would be).
    At(Key),
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Request {
    pub conditions: Vec<Condition>,
    /// Only this project's rows (by the table's `visible`); None: all.
    pub visible_to: Option<String>,
    /// The requested order; the id is appended when absent.
    pub order: Vec<Sort>,
    /// Read the order backwards (from the end).
    pub backwards: bool,
    pub start: Start,
    pub limit: usize,
}

/// A query and its parameters.
#[derive(Debug)]
pub struct Select {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Select {
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }
}

/// A sort expression: SQL, kind of its values, ascending.
struct Expr {
    sql: String,
    kind: Kind,
    ascending: bool,
}

fn collate(backend: Backend, kind: Kind, sql: &str) -> String {
    match (backend, kind) {
        (Backend::Postgres, Kind::Text) => format!("{sql} COLLATE \"C\""),
        _ => sql.to_string(),
    }
}

/// The sort expressions of an order: the requested keys (a nullable one as two) and the id.
fn expressions(table: &Table, backend: Backend, order: &[Sort]) -> Vec<Expr> {
    let mut exprs = Vec::new();
    let mut has_id = false;
    for sort in order {
        let c = sort.column;
        has_id |= c.attr == table.id.attr;
        if c.nullable {
            exprs.push(Expr {
                sql: format!(
                    "CAST(CASE WHEN {} IS NULL THEN 0 ELSE 1 END AS BIGINT)",
                    c.sql
                ),
                kind: Kind::Int,
                ascending: sort.ascending,
            });
            let zero = if c.kind == Kind::Text { "''" } else { "0" };
            exprs.push(Expr {
                sql: collate(backend, c.kind, &format!("COALESCE({}, {zero})", c.sql)),
                kind: c.kind,
                ascending: sort.ascending,
            });
        } else {
            exprs.push(Expr {
                sql: collate(backend, c.kind, c.sql),
                kind: c.kind,
                ascending: sort.ascending,
            });
        }
    }
    if !has_id {
        exprs.push(Expr {
            sql: collate(backend, Kind::Text, table.id.sql),
            kind: Kind::Text,
            ascending: true,
        });
    }
    exprs
}

/// `e0 >= k0 AND (e0 > k0 OR (e0 = k0 AND (e1 > k1 OR ...)))`, with `<` for keys read
/// descending: the leading comparison is one an index on the first key can seek with.
fn keyset(select: &mut Select, exprs: &[(String, bool)], key: &[Param], inclusive: bool) -> String {
    fn rest(
        select: &mut Select,
        exprs: &[(String, bool)],
        key: &[Param],
        inclusive: bool,
    ) -> String {
        let (sql, up) = &exprs[0];
        let op = if *up { ">" } else { "<" };
        let mark = select.bind(key[0].clone());
        if exprs.len() == 1 {
            let eq = if inclusive { "=" } else { "" };
            return format!("{sql} {op}{eq} {mark}");
        }
        let equal = select.bind(key[0].clone());
        let inner = rest(select, &exprs[1..], &key[1..], inclusive);
        format!("({sql} {op} {mark} OR ({sql} = {equal} AND {inner}))")
    }
    let (sql, up) = &exprs[0];
    let op = if *up { ">=" } else { "<=" };
    let mark = select.bind(key[0].clone());
    let rest = rest(select, exprs, key, inclusive);
    format!("{sql} {op} {mark} AND {rest}")
}

/// `SELECT <columns>, <sort keys AS k0, k1...> FROM ... WHERE ... ORDER BY ... LIMIT n`.
pub fn select(table: &Table, backend: Backend, columns: &str, req: &Request) -> Select {
    let exprs = expressions(table, backend, &req.order);
    let mut select = Select {
        sql: String::new(),
        params: Vec::new(),
    };
    let keys: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{} AS k{i}", e.sql))
        .collect();
    let mut sql = format!(
        "SELECT {columns}, {} FROM {} WHERE 1 = 1",
        keys.join(", "),
        table.from
    );
    for condition in &req.conditions {
        sql.push_str(" AND ");
        sql.push_str(&condition_sql(&mut select, table, backend, condition));
    }
    if let Some(project) = &req.visible_to {
        let mark = collate(
            backend,
            Kind::Text,
            &select.bind(Param::Text(project.clone())),
        );
        sql.push_str(&format!(" AND ({})", table.visible.replace("{}", &mark)));
    }
    let read: Vec<(String, bool)> = exprs
        .iter()
        .map(|e| (e.sql.clone(), e.ascending != req.backwards))
        .collect();
    match &req.start {
        Start::First => {}
        Start::After(key) | Start::At(key) => {
            debug_assert_eq!(key.len(), read.len(), "a key of another order");
            let inclusive = matches!(req.start, Start::At(_));
            sql.push_str(" AND ");
            sql.push_str(&keyset(&mut select, &read, key, inclusive));
        }
    }
    let order: Vec<String> = read
        .iter()
        .map(|(e, up)| format!("{e} {}", if *up { "ASC" } else { "DESC" }))
        .collect();
    sql.push_str(&format!(
        " ORDER BY {} LIMIT {}",
        order.join(", "),
        req.limit
    ));
    select.sql = sql;
    select
}

/// The ORDER BY of a query wrapping [`select`] as `q`: by its `k0, k1...` columns.
pub fn outer_order(table: &Table, backend: Backend, req: &Request) -> String {
    expressions(table, backend, &req.order)
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let dir = if e.ascending != req.backwards {
                "ASC"
            } else {
                "DESC"
            };
            format!("{} {dir}", collate(backend, e.kind, &format!("q.k{i}")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn condition_sql(
    select: &mut Select,
    table: &Table,
    backend: Backend,
    condition: &Condition,
) -> String {
    let contains = |haystack: &str, needle: &str| match backend {
        Backend::Sqlite => format!("instr({haystack}, {needle}) > 0"),
        Backend::Postgres => format!("strpos({haystack}, {needle}) > 0"),
    };
    let texts = |values: &[String]| -> Vec<Param> {
        values.iter().map(|v| Param::Text(v.clone())).collect()
    };
    let address = |test: String| {
        debug_assert!(table.addresses, "address conditions on {}", table.from);
        format!(
            "{} IN (SELECT a.port_id FROM ip_allocations a WHERE {test})",
            table.id.sql
        )
    };
    match condition {
        Condition::In { values, .. } if values.is_empty() => "1 = 0".to_string(),
        Condition::In { column, values } => {
            format!(
                "{} IN ({})",
                column.sql,
                one_of(select, backend, Some(column.kind), values)
            )
        }
        Condition::ListHas { values, .. } if values.is_empty() => "1 = 0".to_string(),
        Condition::ListHas { column, values } => {
            let tests: Vec<String> = values
                .iter()
                .map(|v| {
                    let quoted = serde_json::to_string(v).unwrap_or_default();
                    let mark = select.bind(Param::Text(quoted));
                    contains(column.sql, &mark)
                })
                .collect();
            format!("({})", tests.join(" OR "))
        }
        Condition::AddressIs(values) => address(format!(
            "a.ip_address IN ({})",
            one_of(select, backend, None, &texts(values))
        )),
        Condition::AddressOnSubnet(values) => address(format!(
            "a.subnet_id IN ({})",
            one_of(select, backend, None, &texts(values))
        )),
        Condition::AddressContains(values) => {
            let tests: Vec<String> = values
                .iter()
                .map(|v| {
                    let mark = select.bind(Param::Text(v.clone()));
                    contains("a.ip_address", &mark)
                })
                .collect();
            address(tests.join(" OR "))
        }
        Condition::Tags { tags, .. } if tags.is_empty() => "1 = 1".to_string(),
        Condition::Tags { test, tags } => tag_sql(select, table, backend, *test, tags),
    }
}

/// A tag filter as SQL. Positive tests are semi-joins (`id IN (SELECT resource_id ... WHERE
/// tag = ...)`) that can be driven from the `(resource_type, tag, resource_id)` index: the
/// tagged rows are found without reading the others. Negative ones are `NOT EXISTS` probes of
/// the primary key, one index seek per row read, never a scan of the resource's tag rows.
fn tag_sql(
    select: &mut Select,
    table: &Table,
    backend: Backend,
    test: TagTest,
    tags: &[String],
) -> String {
    let kind = table
        .tags
        .unwrap_or_else(|| unreachable!("tag conditions on {}", table.from));
    let kind = Param::Text(kind.name().to_string());
    let id = table.id.sql;
    match test {
        TagTest::All | TagTest::NotAll => {
            let each: Vec<String> = tags
                .iter()
                .map(|tag| {
                    let k = select.bind(kind.clone());
                    let t = select.bind(Param::Text(tag.clone()));
                    if test == TagTest::All {
                        format!(
                            "{id} IN (SELECT t.resource_id FROM tags t \
                             WHERE t.resource_type = {k} AND t.tag = {t})"
                        )
                    } else {
                        format!(
                            "EXISTS (SELECT 1 FROM tags t WHERE t.resource_type = {k} \
                             AND t.resource_id = {id} AND t.tag = {t})"
                        )
                    }
                })
                .collect();
            let all = each.join(" AND ");
            if test == TagTest::All {
                format!("({all})")
            } else {
                format!("NOT ({all})")
            }
        }
        TagTest::Any => {
            let k = select.bind(kind.clone());
            let values: Vec<Param> = tags.iter().map(|t| Param::Text(t.clone())).collect();
            format!(
                "{id} IN (SELECT t.resource_id FROM tags t WHERE t.resource_type = {k} \
                 AND t.tag IN ({}))",
                one_of(select, backend, None, &values)
            )
        }
        TagTest::NotAny => {
            let k = select.bind(kind.clone());
            let values: Vec<Param> = tags.iter().map(|t| Param::Text(t.clone())).collect();
            format!(
                "NOT EXISTS (SELECT 1 FROM tags t WHERE t.resource_type = {k} \
                 AND t.resource_id = {id} AND t.tag IN ({}))",
                one_of(select, backend, None, &values)
            )
        }
    }
}

/// What goes inside `IN (...)` for `values`. On SQLite, several values are one parameter, a
/// JSON array read by `json_each`: binding a statement's parameters one by one costs SQLite
/// time in their number for each (a filter list of 1,500 ids took 10 ms of a core).
/// `kind` is the column's, for its collation on PostgreSQL (None: the column's own).
fn one_of(select: &mut Select, backend: Backend, kind: Option<Kind>, values: &[Param]) -> String {
    if backend == Backend::Sqlite && values.len() > 1 {
        let array: Vec<serde_json::Value> = values
            .iter()
            .map(|v| match v {
                Param::Text(t) => serde_json::Value::from(t.as_str()),
                Param::Int(i) => serde_json::Value::from(*i),
            })
            .collect();
        let mark = select.bind(Param::Text(serde_json::Value::Array(array).to_string()));
        return format!("SELECT value FROM json_each({mark})");
    }
    values
        .iter()
        .map(|v| {
            let mark = select.bind(v.clone());
            kind.map_or(mark.clone(), |kind| collate(backend, kind, &mark))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key (in `order`) of the row with this id, if the project (None: anyone) may see it.
pub async fn key_of(
    store: &Store,
    table: &Table,
    order: &[Sort],
    id: &str,
    visible_to: Option<&str>,
) -> crate::Result<Option<Key>> {
    let req = Request {
        conditions: vec![Condition::In {
            column: table.id,
            values: vec![Param::Text(id.to_string())],
        }],
        visible_to: visible_to.map(str::to_string),
        order: order.to_vec(),
        backwards: false,
        start: Start::First,
        limit: 1,
    };
    let select = select(table, store.backend, table.id.sql, &req);
    let rows = fetch_any(store, &select).await?;
    let exprs = expressions(table, store.backend, order);
    rows.first().map(|r| key(r, &exprs)).transpose()
}

/// The key columns (`k0`, `k1`...) of a row of [`select`].
fn key(row: &(impl StoredRow + ?Sized), exprs: &[Expr]) -> crate::Result<Key> {
    exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let name = format!("k{i}");
            Ok(match e.kind {
                Kind::Text => Param::Text(row.text(&name)?),
                Kind::Int | Kind::Bool => Param::Int(row.int(&name)?),
            })
        })
        .collect()
}

/// The key of a row of [`select`] for `req`'s order.
pub fn row_key(
    row: &(impl StoredRow + ?Sized),
    table: &Table,
    backend: Backend,
    req: &Request,
) -> crate::Result<Key> {
    key(row, &expressions(table, backend, &req.order))
}

macro_rules! bound {
    ($select:expr) => {{
        let mut query = sqlx::query(sqlx::AssertSqlSafe($select.sql.clone()));
        for p in &$select.params {
            query = match p {
                Param::Text(t) => query.bind(t.clone()),
                Param::Int(i) => query.bind(*i),
            };
        }
        query
    }};
}

/// Runs a select on the read pool of the `Any` driver.
pub async fn fetch_any(store: &Store, select: &Select) -> crate::Result<Vec<AnyRow>> {
    Ok(bound!(select).fetch_all(&store.read).await?)
}

/// Runs a select and decodes its rows: on SQLite through the typed driver, elsewhere through
/// `Any`, with the same decoding.
pub async fn fetch<T>(
    store: &Store,
    select: &Select,
    decode: impl FnOnce(&[&dyn StoredRow]) -> crate::Result<T>,
) -> crate::Result<T> {
    match &store.sqlite_read {
        Some(pool) => {
            let rows = bound!(select).fetch_all(pool).await?;
            let rows: Vec<&dyn StoredRow> = rows.iter().map(|r| r as &dyn StoredRow).collect();
            decode(&rows)
        }
        None => {
            let rows = bound!(select).fetch_all(&store.read).await?;
            let rows: Vec<&dyn StoredRow> = rows.iter().map(|r| r as &dyn StoredRow).collect();
            decode(&rows)
        }
    }
}
