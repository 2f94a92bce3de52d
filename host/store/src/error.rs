//! The store's own error: what a caller may decide on (a constraint refused the write, the
//! database cannot be reached), with sqlx's error kept as the source for logs.

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A uniqueness constraint refused the write: another writer got there first.
    #[error("a unique constraint refused the write: {0}")]
    UniqueViolation(#[source] sqlx::Error),
    /// A row the write refers to is gone (a foreign key refused it).
    #[error("a referenced row is gone: {0}")]
    ForeignKeyViolation(#[source] sqlx::Error),
    /// The database cannot serve now: no connection in time, the connection broke, the server
    /// shuts down, the disk is full. Worth retrying later; not the caller's fault.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::UniqueViolation(_))
    }

    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, Error::ForeignKeyViolation(_))
    }

    /// A deadlock (SQLSTATE 40P01) or a serialization failure (40001) on PostgreSQL: the
    /// database rolled the transaction back, and running it again as it is may well succeed
    /// (Neutron's DB retry does so). SQLite's writers queue (`BEGIN IMMEDIATE`) instead.
    pub fn is_transient_conflict(&self) -> bool {
        match self {
            Error::Other(sqlx::Error::Database(db)) => {
                is_postgres(db.as_ref()) && db.code().is_some_and(|c| transient_conflict(&c))
            }
            _ => false,
        }
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// Why the database cannot serve, in a few words a client may read (no addresses, no
    /// SQL): "the database's disk is full", "the database cannot be reached", ... None when
    /// the error is not [`Error::Unavailable`].
    pub fn unavailable_reason(&self) -> Option<&'static str> {
        let Error::Unavailable(e) = self else {
            return None;
        };
        Some(match e {
            sqlx::Error::PoolTimedOut => "no database connection could be had in time",
            sqlx::Error::PoolClosed => "the server is stopping",
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) => "the database cannot be reached",
            sqlx::Error::WorkerCrashed => "the database connection broke",
            sqlx::Error::Database(db) => match db.code().as_deref().unwrap_or("") {
                code if is_postgres(db.as_ref()) => match code {
                    "53100" => "the database's disk is full",
                    c if c.starts_with("53") => "the database server is out of resources",
                    c if c.starts_with("57P0") => "the database server is stopping or starting",
                    _ => "the database connection broke",
                },
                code => match code.parse::<u32>().map(|c| c & 0xff) {
                    Ok(13) => "the database's disk is full",
                    Ok(5) => "the database is locked by another writer",
                    Ok(14) => "the database file cannot be opened",
                    _ => "the database had an I/O error",
                },
            },
            _ => "the database cannot serve",
        })
    }

    /// Whether the database could not be reached at all (no connection, or the connection
    /// broke), as opposed to a database that answers but cannot do this (a full disk).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Unavailable(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_),
            ) => true,
            Error::Unavailable(sqlx::Error::Database(db)) => {
                is_postgres(db.as_ref())
                    && db
                        .code()
                        .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0"))
            }
            _ => false,
        }
    }
}

fn is_postgres(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Error::Unavailable(e),
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::UniqueViolation(e),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Error::ForeignKeyViolation(e)
            }
            sqlx::Error::Database(db) if unavailable_code(db.as_ref()) => Error::Unavailable(e),
            _ => Error::Other(e),
        }
    }
}

/// Whether the database, not the statement, is the problem: by SQLite's primary result code
/// or PostgreSQL's SQLSTATE.
fn unavailable_code(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if is_postgres(db) {
        postgres_unavailable(&code)
    } else {
        sqlite_unavailable(&code)
    }
}

/// SQLITE_BUSY (5, also past busy_timeout), SQLITE_IOERR (10, with its extended codes),
/// SQLITE_FULL (13), SQLITE_CANTOPEN (14).
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 10 | 13 | 14))
}

/// 40P01 (deadlock detected), 40001 (serialization failure).
fn transient_conflict(code: &str) -> bool {
    matches!(code, "40P01" | "40001")
}

/// Class 08 (connection exception), class 53 (insufficient resources, disk full: 53100),
/// 57P01-57P03 (the server shuts down or cannot take connections now).
fn postgres_unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_trouble_is_told_from_statement_trouble() {
        for code in ["5", "10", "13", "14", "522", "3338"] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        for code in ["1", "19", "2067", "787"] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
        for code in ["08006", "53100", "57P01"] {
            assert!(postgres_unavailable(code), "{code}");
        }
        for code in ["23505", "23503", "42601", "22P02", "40P01", "40001"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
        assert!(transient_conflict("40P01") && transient_conflict("40001"));
        assert!(!transient_conflict("23503") && !transient_conflict("57P01"));
        assert!(Error::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(Error::from(sqlx::Error::PoolTimedOut).is_unreachable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let refused = Error::from(sqlx::Error::Io(refused));
        assert_eq!(
            refused.unavailable_reason(),
            Some("the database cannot be reached")
        );
        assert!(refused.is_unreachable());
        assert_eq!(
            Error::from(sqlx::Error::RowNotFound).unavailable_reason(),
            None
        );
        assert!(!Error::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}
