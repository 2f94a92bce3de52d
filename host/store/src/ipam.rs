//! IP allocation over the free-range table: lowest free address in O(log n), specific addresses,
//! release, and rebuilding a subnet's free ranges when its pools change.
//!
//! Allocations on one subnet are serialised: on PostgreSQL by a transaction-scoped advisory
//! lock on the subnet (servers sharing the database queue on it instead of racing for the same
//! range row), on SQLite by the write transaction. The primary key of `ip_allocations` is the
//! last line of defence against a duplicate.

use std::collections::{BTreeSet, HashMap};

use sqlx::{Any, Row, Transaction};

use super::{Backend, insert_rows, lock_named, value_chunks};
use neutrino_ipam::{Range, from_key, key};

type Tx<'a> = Transaction<'a, Any>;

/// Takes the subnet's IPAM lock (PostgreSQL; a no-op on SQLite, whose writer is alone).
pub async fn lock_subnet(tx: &mut Tx<'_>, backend: Backend, subnet_id: &str) -> crate::Result<()> {
    lock_named(tx, backend, &format!("ipam/{subnet_id}")).await
}

/// Writes the free ranges of a new subnet (or of one whose pools were rebuilt).
pub async fn add_ranges(tx: &mut Tx<'_>, subnet_id: &str, ranges: &[Range]) -> crate::Result<()> {
    for r in ranges {
        sqlx::query(
            "INSERT INTO ip_free_ranges (subnet_id, first_ip, last_ip) VALUES ($1, $2, $3)",
        )
        .bind(subnet_id)
        .bind(key(r.first))
        .bind(key(r.last))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub async fn clear_ranges(tx: &mut Tx<'_>, subnet_id: &str) -> crate::Result<()> {
    sqlx::query("DELETE FROM ip_free_ranges WHERE subnet_id = $1")
        .bind(subnet_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn range_row(row: Option<sqlx::any::AnyRow>) -> crate::Result<Option<Range>> {
    let Some(row) = row else { return Ok(None) };
    let first: String = row.try_get("first_ip")?;
    let last: String = row.try_get("last_ip")?;
    match (from_key(&first), from_key(&last)) {
        (Some(first), Some(last)) => Ok(Some(Range { first, last })),
        _ => Err(sqlx::Error::Decode(format!("bad free range {first}-{last}").into()).into()),
    }
}

/// The lowest free range of each subnet a transaction allocates from, kept in memory so that
/// consecutive lowest-address allocations need no round trip. What was taken is written back by
/// [`LowestFree::flush`] (or [`LowestFree::flush_subnet`] before anything else reads or changes
/// that subnet's ranges), always before commit. The caller holds each subnet's lock from the
/// first take on, as for any allocation.
#[derive(Debug, Default)]
pub struct LowestFree {
    subnets: HashMap<String, Taking>,
}

/// A free range as stored, and the lowest address of it not yet taken.
#[derive(Debug, Clone, Copy)]
struct Taking {
    stored: Range,
    next: u128,
}

impl LowestFree {
    /// True when the subnet's lowest range is already held (its lock is already taken).
    pub fn holds(&self, subnet_id: &str) -> bool {
        self.subnets.contains_key(subnet_id)
    }

    /// Takes the lowest free address of the subnet's pools, or None when they are exhausted.
    pub async fn take(&mut self, tx: &mut Tx<'_>, subnet_id: &str) -> crate::Result<Option<u128>> {
        loop {
            if let Some(t) = self.subnets.get_mut(subnet_id) {
                if t.next <= t.stored.last {
                    t.next += 1;
                    return Ok(Some(t.next - 1));
                }
                // Used up: its row goes, and the next range is read.
                let stored = t.stored;
                self.subnets.remove(subnet_id);
                delete_range(tx, subnet_id, stored).await?;
            }
            let row = sqlx::query(
                "SELECT first_ip, last_ip FROM ip_free_ranges WHERE subnet_id = $1 \
                 ORDER BY first_ip LIMIT 1",
            )
            .bind(subnet_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(stored) = range_row(row)? else {
                return Ok(None);
            };
            let next = stored.first;
            self.subnets
                .insert(subnet_id.to_string(), Taking { stored, next });
        }
    }

    /// Takes the lock of each of `subnet_ids` not held yet and reads the lowest free range of
    /// all of them at once, so that a batch of creates over many subnets makes one round trip
    /// for its ranges rather than one a subnet. Locks are taken in a fixed order (by id).
    pub async fn prepare(
        &mut self,
        tx: &mut Tx<'_>,
        backend: Backend,
        subnet_ids: &[String],
    ) -> crate::Result<()> {
        let wanted: BTreeSet<&String> = subnet_ids.iter().filter(|id| !self.holds(id)).collect();
        let wanted: Vec<&String> = wanted.into_iter().collect();
        for id in &wanted {
            lock_subnet(tx, backend, id).await?;
        }
        for (chunk, rows) in value_chunks(backend, &wanted, 1, 0) {
            let sql = format!(
                "SELECT r.subnet_id, r.first_ip, r.last_ip FROM (VALUES {rows}) AS v \
                 JOIN ip_free_ranges r ON r.subnet_id = v.column1 AND r.first_ip = \
                 (SELECT MIN(f.first_ip) FROM ip_free_ranges f WHERE f.subnet_id = v.column1)"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let subnet_id: String = row.try_get("subnet_id")?;
                if let Some(stored) = range_row(Some(row))? {
                    let next = stored.first;
                    self.subnets.insert(subnet_id, Taking { stored, next });
                }
            }
        }
        Ok(())
    }

    /// Writes back what was taken from one subnet.
    pub async fn flush_subnet(&mut self, tx: &mut Tx<'_>, subnet_id: &str) -> crate::Result<()> {
        match self.subnets.remove(subnet_id) {
            Some(t) => write_back(tx, subnet_id, t).await,
            None => Ok(()),
        }
    }

    /// Writes back what was taken from every subnet: the ranges that shrank in one multi-row
    /// UPDATE (however many subnets), those used up one DELETE each.
    pub async fn flush(&mut self, tx: &mut Tx<'_>) -> crate::Result<()> {
        let mut shrunk = Vec::new();
        for (subnet_id, t) in std::mem::take(&mut self.subnets) {
            if t.next > t.stored.last {
                delete_range(tx, &subnet_id, t.stored).await?;
            } else if t.next > t.stored.first {
                shrunk.push((subnet_id, t));
            }
        }
        if let [(subnet_id, t)] = &shrunk[..] {
            return write_back(tx, subnet_id, *t).await;
        }
        for (chunk, rows) in value_chunks(Backend::of(tx), &shrunk, 3, 0) {
            let sql = format!(
                "UPDATE ip_free_ranges SET first_ip = v.column3 FROM (VALUES {rows}) AS v \
                 WHERE ip_free_ranges.subnet_id = v.column1 AND ip_free_ranges.first_ip = v.column2"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (subnet_id, t) in chunk {
                query = query
                    .bind(subnet_id)
                    .bind(key(t.stored.first))
                    .bind(key(t.next));
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// The stored range shrinks from below by what was taken (one UPDATE), or goes.
async fn write_back(tx: &mut Tx<'_>, subnet_id: &str, t: Taking) -> crate::Result<()> {
    if t.next > t.stored.last {
        return delete_range(tx, subnet_id, t.stored).await;
    }
    if t.next > t.stored.first {
        sqlx::query(
            "UPDATE ip_free_ranges SET first_ip = $3 WHERE subnet_id = $1 AND first_ip = $2",
        )
        .bind(subnet_id)
        .bind(key(t.stored.first))
        .bind(key(t.next))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Takes a specific address out of the free ranges. Returns false when no free range holds it
/// (it is allocated, or outside the pools; the caller tells which apart).
pub async fn take_specific(tx: &mut Tx<'_>, subnet_id: &str, ip: u128) -> crate::Result<bool> {
    let row = sqlx::query(
        "SELECT first_ip, last_ip FROM ip_free_ranges WHERE subnet_id = $1 AND first_ip <= $2 \
         ORDER BY first_ip DESC LIMIT 1",
    )
    .bind(subnet_id)
    .bind(key(ip))
    .fetch_optional(&mut **tx)
    .await?;
    match range_row(row)? {
        Some(range) if range.last >= ip => {
            shrink(tx, subnet_id, range, ip).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Removes `ip` from `range`: the row goes, shrinks from either end, or splits in two. The
/// common case (the lowest address) is one UPDATE.
async fn shrink(tx: &mut Tx<'_>, subnet_id: &str, range: Range, ip: u128) -> crate::Result<()> {
    if range.first == range.last {
        return delete_range(tx, subnet_id, range).await;
    }
    let (column, moved) = if ip == range.first {
        ("first", key(ip + 1))
    } else {
        ("last", key(ip - 1))
    };
    let statement = if column == "first" {
        "UPDATE ip_free_ranges SET first_ip = $3 WHERE subnet_id = $1 AND first_ip = $2"
    } else {
        "UPDATE ip_free_ranges SET last_ip = $3 WHERE subnet_id = $1 AND first_ip = $2"
    };
    sqlx::query(statement)
        .bind(subnet_id)
        .bind(key(range.first))
        .bind(moved)
        .execute(&mut **tx)
        .await?;
    if ip != range.first && ip != range.last {
        // Split: the UPDATE kept [first, ip-1]; the part above ip is a new range.
        add_ranges(
            tx,
            subnet_id,
            &[Range {
                first: ip + 1,
                last: range.last,
            }],
        )
        .await?;
    }
    Ok(())
}

/// Gives `ip` back to the free ranges (only call for addresses inside the pools), merging it
/// with its neighbours so that ranges do not fragment.
pub async fn give_back(tx: &mut Tx<'_>, subnet_id: &str, ip: u128) -> crate::Result<()> {
    let mut merged = Range {
        first: ip,
        last: ip,
    };
    if ip > 0 {
        let below = sqlx::query(
            "SELECT first_ip, last_ip FROM ip_free_ranges WHERE subnet_id = $1 AND last_ip = $2",
        )
        .bind(subnet_id)
        .bind(key(ip - 1))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = range_row(below)? {
            merged.first = r.first;
            delete_range(tx, subnet_id, r).await?;
        }
    }
    if ip < u128::MAX {
        let above = sqlx::query(
            "SELECT first_ip, last_ip FROM ip_free_ranges WHERE subnet_id = $1 AND first_ip = $2",
        )
        .bind(subnet_id)
        .bind(key(ip + 1))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(r) = range_row(above)? {
            merged.last = r.last;
            delete_range(tx, subnet_id, r).await?;
        }
    }
    add_ranges(tx, subnet_id, &[merged]).await
}

async fn delete_range(tx: &mut Tx<'_>, subnet_id: &str, r: Range) -> crate::Result<()> {
    sqlx::query("DELETE FROM ip_free_ranges WHERE subnet_id = $1 AND first_ip = $2")
        .bind(subnet_id)
        .bind(key(r.first))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An address a port holds, as recorded in `ip_allocations`.
#[derive(Debug, Clone)]
pub struct Allocation {
    pub subnet_id: String,
    pub ip: u128,
    pub ip_address: String,
    pub port_id: String,
    /// Position in the port's fixed_ips.
    pub position: i64,
}

/// Records the allocations, in as few statements as the backend allows; returns how many were
/// new (an address someone already holds is not recorded again).
pub async fn record(tx: &mut Tx<'_>, allocations: &[Allocation]) -> crate::Result<u64> {
    let statement = |rows: &str| {
        format!(
            "INSERT INTO ip_allocations (subnet_id, ip_key, ip_address, port_id, position) \
             VALUES {rows} ON CONFLICT DO NOTHING"
        )
    };
    insert_rows(tx, allocations, 5, statement, |query, a| {
        query
            .bind(&a.subnet_id)
            .bind(key(a.ip))
            .bind(&a.ip_address)
            .bind(&a.port_id)
            .bind(a.position)
    })
    .await
}

/// Forgets one address of a port.
pub async fn forget(tx: &mut Tx<'_>, subnet_id: &str, ip: u128) -> crate::Result<()> {
    sqlx::query("DELETE FROM ip_allocations WHERE subnet_id = $1 AND ip_key = $2")
        .bind(subnet_id)
        .bind(key(ip))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every allocated address of a subnet (for rebuilding its free ranges).
pub async fn allocated_on(tx: &mut Tx<'_>, subnet_id: &str) -> crate::Result<Vec<u128>> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT ip_key FROM ip_allocations WHERE subnet_id = $1")
            .bind(subnet_id)
            .fetch_all(&mut **tx)
            .await?;
    Ok(keys.iter().filter_map(|k| from_key(k)).collect())
}
