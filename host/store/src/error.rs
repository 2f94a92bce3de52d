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

    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
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
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
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
        for code in ["23505", "23503", "42601", "22P02"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
        assert!(Error::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!Error::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}
