//! State in SQL through sqlx: SQLite (the embedded default) or PostgreSQL (many servers).
//!
//! Queries are written once, in SQL both engines accept, over sqlx's `Any` driver. Nothing here
//! knows HTTP. On SQLite, the hottest reads (port lists) also go through sqlx's typed SQLite
//! driver: the same SQL and the same row decoding ([`StoredRow`]), without the `Any` driver's
//! conversion of every value.

pub mod agent_credentials;
pub mod agents;
pub mod auto_allocated;
pub mod bulk_journal;
pub mod dhcp_hosting;
pub mod dynamic_segments;
pub mod error;
pub mod feed;
pub mod floating_ips;
pub mod ipam;
pub mod l2_peers;
pub mod l3_hosting;
pub mod listing;
pub mod networks;
pub mod port_groups;
pub mod port_writes;
pub mod ports;
pub mod quotas;
pub mod routers;
pub mod security_groups;
pub mod servers;
pub mod subnet_pools;
pub mod subnets;
pub mod tags;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use error::{Error, Result};

/// A write transaction. Callers hold it and pass it to the repositories; they never write SQL.
pub type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;
/// A connection of either pool, or a transaction's (`&mut *tx`).
pub type Conn = sqlx::AnyConnection;
/// A connection taken from a pool, given back when dropped.
pub type PooledConn = sqlx::pool::PoolConnection<sqlx::Any>;

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AnyPool, ColumnIndex, Decode, Executor, Row, Type};
use tokio_util::task::AbortOnDropHandle;

/// Schema versions, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("sql/0001_networks.sql")),
    (2, include_str!("sql/0002_subnets_ports.sql")),
    (3, include_str!("sql/0003_agents.sql")),
    (4, include_str!("sql/0004_host_feed.sql")),
    (5, include_str!("sql/0005_servers.sql")),
    (6, include_str!("sql/0006_dhcp_hosting.sql")),
    (7, include_str!("sql/0007_lists.sql")),
    (8, include_str!("sql/0008_address_join.sql")),
    (9, include_str!("sql/0009_dynamic_segments.sql")),
    (10, include_str!("sql/0010_quotas.sql")),
    (11, include_str!("sql/0011_agent_credentials.sql")),
    (12, include_str!("sql/0012_network_feed.sql")),
    (13, include_str!("sql/0013_segment_free.sql")),
    (14, include_str!("sql/0014_binding_pending.sql")),
    (15, include_str!("sql/0015_foreign_key_indexes.sql")),
    (16, include_str!("sql/0016_bulk_journal.sql")),
    (17, include_str!("sql/0017_dhcp_agents_per_network.sql")),
    (18, include_str!("sql/0018_security_group_rules.sql")),
    (19, include_str!("sql/0019_port_security_groups.sql")),
    (20, include_str!("sql/0020_tags.sql")),
    (21, include_str!("sql/0021_subnet_pools.sql")),
    (22, include_str!("sql/0022_port_security_groups_host.sql")),
    (23, include_str!("sql/0023_routers.sql")),
    (24, include_str!("sql/0024_router_lookups.sql")),
];

/// Migrations whose PostgreSQL version differs, used there instead of the one above.
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (7, include_str!("sql/0007_lists.postgres.sql")),
    (
        18,
        include_str!("sql/0018_security_group_rules.postgres.sql"),
    ),
    (
        19,
        include_str!("sql/0019_port_security_groups.postgres.sql"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Connection pools: `write` has one connection on SQLite (one writer at a time is what
/// SQLite allows; queueing in the pool beats failing with SQLITE_BUSY), `read` has several.
#[derive(Clone)]
pub struct Store {
    pub backend: Backend,
    pub read: AnyPool,
    pub write: AnyPool,
    /// On SQLite, read connections of the typed driver for the hottest reads (None on
    /// PostgreSQL), which also hand rows over in large batches instead of 50 at a time.
    pub sqlite_read: Option<SqlitePool>,
    /// Whether PostgreSQL could be reached the last time a connection was needed.
    pub health: Arc<Health>,
    /// On SQLite, the task that checkpoints the WAL (see [`checkpoint_in_background`]);
    /// stopped with the last clone of the store.
    _checkpointer: Option<Arc<AbortOnDropHandle<()>>>,
}

/// The longest a PostgreSQL connection is waited for (taken from the pool, or opened: sqlx
/// retries a refused connection until then). A database that cannot be reached is a 503
/// within this, not a request held for the whole outage. SQLite keeps sqlx's 30 s: its one
/// writing connection is queued for, and a local file is never unreachable.
pub const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// While PostgreSQL is known to be unreachable, how long the one request that tries for a
/// connection (the others answer 503 at once) tries before it answers 503: each such try is
/// the probe that notices the database is back.
pub const UNREACHABLE_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether the database answers, as the last attempts to get a connection found it. Set down
/// by a failure to connect (refused, cut, timed out), up by the next connection had.
#[derive(Debug, Default)]
pub struct Health {
    down_since: Mutex<Option<Instant>>,
    /// A request is trying to reach the database while it is down.
    probing: AtomicBool,
}

/// The one try at reaching a database that is down; the next may start when it is dropped.
struct Probe<'h>(&'h AtomicBool);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Health {
    /// Since when the database has been unreachable, or None while it answers.
    pub fn down_since(&self) -> Option<Instant> {
        *self.down_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The right to try, unless another request is trying now.
    fn probe(&self) -> Option<Probe<'_>> {
        // Not `then_some`: a Probe made and dropped would end the other request's try.
        (!self.probing.swap(true, Ordering::AcqRel)).then(|| Probe(&self.probing))
    }

    fn down(&self, error: &Error) {
        let mut since = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        if since.is_none() {
            tracing::error!(
                "the database is unreachable ({error}); answering 503 until it is back"
            );
            *since = Some(Instant::now());
        }
    }

    fn up(&self) {
        let mut since = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = since.take() {
            tracing::warn!(
                "the database is reachable again after {:.1} s",
                at.elapsed().as_secs_f64()
            );
        }
    }
}

impl Store {
    /// Connects (creating an SQLite file if needed) and brings the schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL {url:?}: use sqlite://PATH or postgres://...");
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_string(),
        };
        let options =
            AnyConnectOptions::from_str(&url).with_context(|| format!("database URL {url}"))?;
        let acquire_timeout = match backend {
            Backend::Sqlite => Duration::from_secs(30),
            Backend::Postgres => POSTGRES_ACQUIRE_TIMEOUT,
        };
        let pool = |max: u32, cache_kib: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire_timeout)
                // A ping before every checkout is a round trip per request; a broken
                // connection fails its query and is replaced anyway.
                .test_before_acquire(false)
                // A connection given back inside a transaction is one whose transaction was
                // dropped: its rollback is queued and runs here. If that rollback failed too
                // (its COMMIT failed on a full disk and SQLite had already rolled back, or
                // the connection broke), sqlx still counts a transaction open and would
                // refuse every later BEGIN on it ("begin_with at non-zero transaction
                // depth"): such a connection is closed, not pooled.
                .after_release(|conn, _| Box::pin(async move { Ok(settle(conn).await) }))
                .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;").await?;
                        conn.execute(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = -{cache_kib}"))).await?;
                        // The WAL is checkpointed by a task of its own; a commit does it only
                        // if that task falls far behind (see `checkpoint_in_background`).
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}"
                        )))
                        .await?;
                    } else {
                        // sqlx prepares every statement; after five runs PostgreSQL may plan
                        // one generically, for any parameter value. With most ports' device_id
                        // '' (unbound) that generic plan scans the table for `device_id = $1`
                        // (15 ms at 100k ports instead of 0.2 ms). A plan per value, as a
                        // client that does not prepare (Neutron's) always gets.
                        conn.execute("SET plan_cache_mode = force_custom_plan").await?;
                    }
                    Ok(())
                })
            })
        };
        let write = pool(
            if backend == Backend::Sqlite { 1 } else { 16 },
            WRITE_CACHE_KIB,
        )
        .connect_with(options.clone())
        .await
        .with_context(|| format!("cannot open {url}"))?;
        let read = match backend {
            Backend::Sqlite => pool(8, READ_CACHE_KIB).connect_with(options).await?,
            Backend::Postgres => write.clone(),
        };
        let sqlite_read = match backend {
            Backend::Sqlite => Some(sqlite_reads(&url).await?),
            Backend::Postgres => None,
        };
        let checkpointer = sqlite_read.clone().map(|pool| {
            Arc::new(AbortOnDropHandle::new(tokio::spawn(
                checkpoint_in_background(pool),
            )))
        });
        let store = Store {
            backend,
            read,
            write,
            sqlite_read,
            health: Arc::default(),
            _checkpointer: checkpointer,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so
    /// that two servers sharing a file queue on the lock instead of failing when a read
    /// transaction tries to become a writer.
    pub async fn begin_write(&self) -> Result<Tx<'static>> {
        self.watched(self.write.begin_with(self.begin_statement()))
            .await
    }

    /// A connection of the read pool.
    pub async fn read_conn(&self) -> Result<PooledConn> {
        self.watched(self.read.acquire()).await
    }

    /// A connection of the write pool, for a caller that runs several transactions on it.
    pub async fn write_conn(&self) -> Result<PooledConn> {
        self.watched(self.write.acquire()).await
    }

    /// Getting a connection, as [`Store::health`] sees it: on PostgreSQL, a failure to reach
    /// the database marks it down. While it is down, one request at a time tries, for at most
    /// [`UNREACHABLE_ACQUIRE_TIMEOUT`], and the others answer 503 at once; the first
    /// connection had marks it up again.
    async fn watched<T>(&self, get: impl Future<Output = sqlx::Result<T>>) -> Result<T> {
        if self.backend != Backend::Postgres {
            return Ok(get.await?);
        }
        let down = self.health.down_since().is_some();
        let got = if down {
            let Some(_probe) = self.health.probe() else {
                return Err(Error::Unavailable(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the database is unreachable",
                ))));
            };
            tokio::time::timeout(UNREACHABLE_ACQUIRE_TIMEOUT, get)
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        } else {
            get.await
        };
        match got {
            Ok(got) => {
                if down {
                    self.health.up();
                }
                Ok(got)
            }
            Err(e) => {
                let e = Error::from(e);
                if e.is_unreachable() {
                    self.health.down(&e);
                }
                Err(e)
            }
        }
    }

    /// [`Store::begin_write`] on a connection of the write pool the caller holds.
    pub async fn begin_write_on<'c>(&self, conn: &'c mut Conn) -> Result<Tx<'c>> {
        use sqlx::Connection as _;
        Ok(conn.begin_with(self.begin_statement()).await?)
    }

    fn begin_statement(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Several servers may start at once against one database.
            tx.execute("SELECT pg_advisory_xact_lock(7303731)").await?;
        }
        tx.execute("CREATE TABLE IF NOT EXISTS schema_versions (version BIGINT PRIMARY KEY)")
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_versions")
            .fetch_all(&mut *tx)
            .await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let sql = match self.backend {
                Backend::Postgres => POSTGRES_MIGRATIONS
                    .iter()
                    .find(|(v, _)| v == version)
                    .map_or(*sql, |(_, pg)| *pg),
                Backend::Sqlite => *sql,
            };
            for statement in statements(sql) {
                tx.execute(sqlx::AssertSqlSafe(statement.clone()))
                    .await
                    .with_context(|| format!("migration {version}: {statement}"))?;
            }
            sqlx::query("INSERT INTO schema_versions (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// SQLite's page cache of the writing connection (its default: 2 MiB), in KiB.
const WRITE_CACHE_KIB: u32 = 2048;
/// The page cache of each reading connection, in KiB: twelve of them at SQLite's default 2 MiB
/// held 24 MiB once a big table had been read through each; the operating system caches the
/// file's pages anyway.
const READ_CACHE_KIB: u32 = 512;

/// How often the WAL is copied back into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// The WAL size (in pages of 4 KiB) at which a commit checkpoints by itself: only when the
/// background checkpoints fall far behind (SQLite's default is 1,000).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_000;

/// Checkpoints the WAL (PASSIVE: never waits for readers or the writer) every
/// [`CHECKPOINT_INTERVAL`]. Left to SQLite, the commit that takes the WAL past 1,000 pages
/// copies them all back and syncs the file while the one writing connection, and every create
/// queued behind it, waits; on a large table, where each commit dirties pages all over the
/// indexes, that was a stall every few batches.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!("background WAL checkpoint: {e}");
        }
    }
}

/// The typed SQLite read pool. The writing connection has already set WAL mode (it stays set
/// in the file); these only read.
async fn sqlite_reads(url: &str) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("database URL {url}"))?
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(10))
        // A 500-port list is about 500 rows: one hand-over from the worker thread, not ten.
        .row_buffer_size(1024)
        .pragma("cache_size", format!("-{READ_CACHE_KIB}"));
    SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open {url} for reading"))
}

/// The statements of a migration file: comment lines dropped, split on `;`.
fn statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `VALUES` rows of a multi-row INSERT: `($1, $2), ($3, $4)` for 2 rows of 2 columns.
/// Callers size their statements with [`value_chunks`] or [`insert_rows`].
pub fn value_rows(rows: usize, columns: usize) -> String {
    numbered_rows(0, rows, columns)
}

/// [`value_rows`] numbered after `fixed` parameters of the statement's own.
fn numbered_rows(fixed: usize, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let marks: Vec<String> = (1..=columns)
                .map(|c| format!("${}", fixed + r * columns + c))
                .collect();
            format!("({})", marks.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Backend {
    /// The backend of a connection of the `Any` driver.
    pub fn of(conn: &sqlx::AnyConnection) -> Backend {
        match conn.backend_name() {
            "PostgreSQL" => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// The most parameters one statement may bind: SQLite's `SQLITE_MAX_VARIABLE_NUMBER`
    /// (32,766 in the SQLite that sqlx builds in) and PostgreSQL's 65,535 (a 16-bit count in
    /// the protocol's Bind message). Past it the statement fails ("too many SQL variables").
    pub const fn max_parameters(self) -> usize {
        match self {
            Backend::Sqlite => 32_766,
            Backend::Postgres => 65_535,
        }
    }

    /// The parameters a multi-row statement is sized to: on PostgreSQL what fits under
    /// [`Backend::max_parameters`] less [`PARAMETER_MARGIN`]; on SQLite far fewer
    /// ([`SQLITE_STATEMENT_PARAMETERS`]), because binding is quadratic there: sqlx looks each
    /// parameter's `$n` name up with `sqlite3_bind_parameter_name`, a linear walk of the
    /// statement's names, so a statement of 32,700 parameters spent 1.1 s binding (80 % of the
    /// server's time in a bulk fill, `neutrino bench scale`).
    pub const fn statement_parameters(self) -> usize {
        match self {
            Backend::Sqlite => SQLITE_STATEMENT_PARAMETERS,
            Backend::Postgres => self.max_parameters() - PARAMETER_MARGIN,
        }
    }

    /// Rows of `columns` parameters that one statement may carry beside `fixed` parameters of
    /// its own: what fits in [`Backend::statement_parameters`], at least one.
    pub fn rows_per_statement(self, columns: usize, fixed: usize) -> usize {
        let room = self.statement_parameters();
        (room.saturating_sub(fixed) / columns.max(1)).max(1)
    }
}

/// Parameters of a multi-row statement on SQLite: binding costs about `n * n / 2` steps, so a
/// row of 24 columns costs some 3,000 of them here, against 19,000 in statements of 64 rows.
pub const SQLITE_STATEMENT_PARAMETERS: usize = 256;

/// Parameters a statement sized by [`Backend::rows_per_statement`] leaves unused.
pub const PARAMETER_MARGIN: usize = 64;

/// `items` cut into pieces that fit one statement each on `backend`, each with its `VALUES`
/// rows (`columns` parameters a row, numbered after `fixed` parameters of the statement's own).
/// Every multi-row statement is sized here.
pub fn value_chunks<T>(
    backend: Backend,
    items: &[T],
    columns: usize,
    fixed: usize,
) -> impl Iterator<Item = (&[T], String)> {
    items
        .chunks(backend.rows_per_statement(columns, fixed))
        .map(move |chunk| (chunk, numbered_rows(fixed, chunk.len(), columns)))
}

pub type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// A multi-row INSERT of `items`, in as many statements as the connection's backend needs
/// (see [`value_chunks`]): `statement` makes the SQL from the `VALUES` rows, `bind` binds one
/// item's `columns` parameters. Returns the rows inserted by all of them.
pub async fn insert_rows<'a, T>(
    conn: &mut sqlx::AnyConnection,
    items: &'a [T],
    columns: usize,
    statement: impl Fn(&str) -> String,
    bind: impl Fn(AnyQuery<'a>, &'a T) -> AnyQuery<'a>,
) -> crate::Result<u64> {
    let mut inserted = 0;
    for (chunk, rows) in value_chunks(Backend::of(conn), items, columns, 0) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(statement(&rows)));
        for item in chunk {
            query = bind(query, item);
        }
        inserted += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}

/// True when the error is a unique-constraint violation (a lost race, or a duplicate).
/// Now, as the API writes timestamps: `2026-11-22T03:59:44Z`.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `age` before now, as [`now`] writes it (for "older than" sweeps).
pub fn ago(age: std::time::Duration) -> String {
    let age = chrono::Duration::from_std(age).unwrap_or_default();
    (chrono::Utc::now() - age)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Serialises transactions that take the lock of the same `name` (a pool, a subnet, ...), so
/// that servers sharing PostgreSQL queue instead of racing; released at commit or rollback.
/// A no-op on SQLite, where the one writing connection already serialises them.
pub async fn lock_named(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    name: &str,
) -> crate::Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key(name))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// [`lock_named`] shared: holders of the shared lock of a name never wait for each other, only
/// for (and hold off) the one holding it alone. For many writers that only rely on a thing
/// staying as it is (ports naming a security group) against the rare one that changes it.
pub async fn lock_named_shared(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    name: &str,
) -> crate::Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
            .bind(lock_key(name))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A stable PostgreSQL advisory-lock key for a named thing (FNV-1a of the name).
fn lock_key(name: &str) -> i64 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h as i64
}

/// A row of either driver (`Any`, or the typed SQLite driver), read by column name with the
/// types the schema uses (TEXT, BIGINT), so that one decoding serves both.
pub trait StoredRow {
    fn text(&self, column: &str) -> crate::Result<String>;
    fn text_or_null(&self, column: &str) -> crate::Result<Option<String>>;
    fn int(&self, column: &str) -> crate::Result<i64>;
}

impl<R> StoredRow for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> crate::Result<String> {
        Ok(self.try_get(column)?)
    }
    fn text_or_null(&self, column: &str) -> crate::Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    fn int(&self, column: &str) -> crate::Result<i64> {
        Ok(self.try_get(column)?)
    }
}

/// Booleans are stored as 0/1.
pub fn flag(r: &(impl StoredRow + ?Sized), column: &str) -> crate::Result<bool> {
    Ok(r.int(column)? != 0)
}

/// Whether a connection whose transaction failed (or was dropped) may be used again: runs the
/// rollback a dropped transaction queued, then answers whether the connection is outside any
/// transaction and still answers. A connection whose COMMIT or ROLLBACK failed (a full disk
/// with SQLite's transaction already rolled back, a cut connection) is not: sqlx would refuse
/// every later BEGIN on it, so it must be closed ([`discard`]), not reused.
pub async fn settle(conn: &mut Conn) -> bool {
    use sqlx::Connection as _;
    if !conn.is_in_transaction() {
        return true;
    }
    conn.ping().await.is_ok() && !conn.is_in_transaction()
}

/// After a failed transaction on a connection the caller keeps (the port writer's):
/// [`settle`], and a ping, so that a connection that broke is not kept either.
pub async fn usable(conn: &mut Conn) -> bool {
    use sqlx::Connection as _;
    settle(conn).await && conn.ping().await.is_ok()
}

/// Closes a pooled connection instead of giving it back: its slot in the pool is free at once
/// (for a new connection), the connection itself closed in the background.
pub fn discard(conn: PooledConn) {
    use sqlx::Connection as _;
    let conn = conn.detach();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
    });
}

/// Commits a write transaction.
pub async fn commit(tx: Tx<'_>) -> Result<()> {
    Ok(tx.commit().await?)
}

/// Rolls a write transaction (or savepoint) back.
pub async fn rollback(tx: Tx<'_>) -> Result<()> {
    Ok(tx.rollback().await?)
}

/// A savepoint inside `tx`: dropped without [`commit`], only its own writes are undone.
pub async fn savepoint<'t>(tx: &'t mut Tx<'_>) -> Result<Tx<'t>> {
    Ok(sqlx::Acquire::begin(&mut **tx).await?)
}

/// A new resource id: a random UUID (version 4). Not a time-ordered one (version 7), though
/// that would put new rows at the end of every index keyed by id: the agents name devices by
/// an id's first 11 characters, as Neutron does (`tap` + port id, `brq` + network id), and
/// ids made in the same millisecond share those.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// SQLite's `PRAGMA data_version`: it changes when another connection commits to the file, so
/// what a connection remembers of earlier reads is still true while it stays the same. None on
/// PostgreSQL, where there is no such counter.
pub async fn data_version(backend: Backend, conn: &mut Conn) -> Result<Option<i64>> {
    match backend {
        Backend::Sqlite => Ok(Some(
            sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(conn)
                .await?,
        )),
        Backend::Postgres => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The highest `$n` in a piece of SQL.
    fn highest_mark(sql: &str) -> usize {
        sql.split('$')
            .skip(1)
            .map(|s| s.split(|c: char| !c.is_ascii_digit()).next().unwrap())
            .map(|n| n.parse::<usize>().unwrap())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn statements_are_sized_under_each_backends_limit() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let room = backend.statement_parameters();
            assert!(room <= backend.max_parameters() - PARAMETER_MARGIN);
            // The column counts of the multi-row statements (MAC checks, feed entries,
            // addresses, ports), beside none or one parameter of the statement's own.
            for columns in [1, 4, 5, 7, 24] {
                for fixed in [0, 1] {
                    let rows = backend.rows_per_statement(columns, fixed);
                    assert!(
                        rows * columns + fixed <= room,
                        "{backend:?} {columns} {fixed}"
                    );
                    assert!(
                        (rows + 1) * columns + fixed > room,
                        "{backend:?} {columns} {fixed}: a row more would fit"
                    );
                }
            }
        }
        assert_eq!(Backend::Sqlite.rows_per_statement(24, 0), 10);
        assert_eq!(Backend::Postgres.rows_per_statement(24, 0), 2727);
        // Wider than the limit: still one row a statement, not none.
        assert_eq!(Backend::Sqlite.rows_per_statement(300, 0), 1);
        assert_eq!(Backend::Postgres.rows_per_statement(70_000, 0), 1);
    }

    #[test]
    fn chunks_at_and_around_the_limit() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let (columns, fixed) = (24, 1);
            let per = backend.rows_per_statement(columns, fixed);
            for n in [0, 1, per - 1, per, per + 1, 2 * per, 2 * per + 1] {
                let items: Vec<usize> = (0..n).collect();
                let chunks: Vec<(&[usize], String)> =
                    value_chunks(backend, &items, columns, fixed).collect();
                assert_eq!(chunks.len(), n.div_ceil(per), "{backend:?} {n}");
                let mut seen = Vec::new();
                for (chunk, rows) in &chunks {
                    assert!(chunk.len() <= per);
                    // Numbered from after the statement's own parameters, one mark each.
                    assert!(rows.starts_with(&format!("(${}, ", fixed + 1)));
                    assert_eq!(highest_mark(rows), fixed + chunk.len() * columns);
                    assert!(highest_mark(rows) <= backend.max_parameters());
                    assert_eq!(rows.matches('$').count(), chunk.len() * columns);
                    seen.extend_from_slice(chunk);
                }
                assert_eq!(seen, items, "every item once, in order");
            }
        }
        assert_eq!(value_rows(2, 2), "($1, $2), ($3, $4)");
    }

    #[tokio::test]
    async fn the_backend_of_a_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let conn = store.write.acquire().await.unwrap();
        assert_eq!(Backend::of(&conn), Backend::Sqlite);
    }

    /// Every foreign key's columns lead an index (or the primary key) of their table: without
    /// one, SQLite scans the whole child table on each parent delete, and on each parent insert
    /// while a deferred reference is still unmatched.
    #[tokio::test]
    async fn every_foreign_key_is_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let mut conn = store.write.acquire().await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let mut unindexed = Vec::new();
        for table in &tables {
            let keys: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, \"from\" FROM pragma_foreign_key_list('{table}') ORDER BY id, seq"
            )))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            let indexes: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_index_list('{table}')"
            )))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            let mut leading = Vec::new();
            for index in &indexes {
                let first: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_index_info('{index}') WHERE seqno = 0"
                )))
                .fetch_optional(&mut *conn)
                .await
                .unwrap();
                leading.extend(first);
            }
            for (_, column) in &keys {
                if !leading.contains(column) {
                    unindexed.push(format!("{table}.{column}"));
                }
            }
        }
        assert!(tables.contains(&"segment_allocations".to_string()));
        assert_eq!(unindexed, Vec::<String>::new());
    }

    /// Device names take an id's first 11 characters: ids made one after the other (in the
    /// same millisecond) must differ there.
    #[test]
    fn ids_made_together_differ_in_the_characters_device_names_take() {
        let prefixes: std::collections::HashSet<String> =
            (0..1000).map(|_| new_id()[..11].to_string()).collect();
        assert_eq!(prefixes.len(), 1000);
    }
}
