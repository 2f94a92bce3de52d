//! `NeutronError`: every failure the services return, as Neutron names it: an HTTP status, the
//! exception class and the message. The API renders it in Neutron's shape
//! (`{"NeutronError": {"type": "<ExceptionClass>", "message": "...", "detail": ""}}`); nothing
//! here knows HTTP beyond the status number.

/// An HTTP status, as a number (the API turns it into its framework's type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(u16);

impl Status {
    pub const BAD_REQUEST: Status = Status(400);
    pub const UNAUTHORIZED: Status = Status(401);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const CONFLICT: Status = Status(409);
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);

    /// A status from its number (100-999, as HTTP allows).
    pub const fn from_u16(code: u16) -> Option<Status> {
        if matches!(code, 100..=999) {
            Some(Status(code))
        } else {
            None
        }
    }

    pub const fn as_u16(self) -> u16 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeutronError {
    pub status: Status,
    /// The exception class name clients key on (`NetworkNotFound`, `IpAddressInUse`, ...).
    pub kind: String,
    pub message: String,
    /// The transaction failed on a conflict with a concurrent one (a deadlock, a serialization
    /// failure, a row another transaction deleted): running it again may succeed
    /// ([`crate::retry::retrying`]).
    pub(crate) again: bool,
}

pub type CoreResult<T> = Result<T, NeutronError>;

impl NeutronError {
    pub fn new(status: Status, kind: &str, message: impl Into<String>) -> Self {
        NeutronError {
            status,
            kind: kind.to_string(),
            message: message.into(),
            again: false,
        }
    }

    /// 400 `HTTPBadRequest`: malformed requests (body, unknown or read-only attributes, query).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Status::BAD_REQUEST, "HTTPBadRequest", message)
    }

    /// 400 `InvalidInput`: "Invalid input for operation: ...".
    pub fn invalid_input(reason: impl std::fmt::Display) -> Self {
        Self::new(
            Status::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: {reason}"),
        )
    }

    /// 400 with a specific type (`InvalidIpForSubnet`, ...).
    pub fn bad(kind: &str, message: impl Into<String>) -> Self {
        Self::new(Status::BAD_REQUEST, kind, message)
    }

    /// 404 with a specific type (`NetworkNotFound`, ...).
    pub fn not_found(kind: &str, message: impl Into<String>) -> Self {
        Self::new(Status::NOT_FOUND, kind, message)
    }

    /// 404 `HTTPNotFound` for paths that name no resource.
    pub fn no_such_path() -> Self {
        Self::not_found("HTTPNotFound", "The resource could not be found.")
    }

    /// 409 with a specific type (`NetworkInUse`, `VlanIdInUse`, ...).
    pub fn conflict(kind: &str, message: impl Into<String>) -> Self {
        Self::new(Status::CONFLICT, kind, message)
    }

    /// 403 `PolicyNotAuthorized` for a policy rule, worded as Neutron words it: `create_network`
    /// or, for an attribute rule, `create_network:shared`.
    pub fn forbidden(action: &str) -> Self {
        let rule = match action.split_once(':') {
            Some((base, _)) => format!("(rule:{base} and rule:{action})"),
            None => format!("rule:{action}"),
        };
        Self::new(
            Status::FORBIDDEN,
            "PolicyNotAuthorized",
            format!("{rule} is disallowed by policy"),
        )
    }

    /// 405 `HTTPMethodNotAllowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            Status::METHOD_NOT_ALLOWED,
            "HTTPMethodNotAllowed",
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        )
    }

    /// 500 `HTTPInternalServerError`; the cause goes to the log, not to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        Self::new(
            Status::INTERNAL_SERVER_ERROR,
            "HTTPInternalServerError",
            "Request Failed: internal server error while processing your request.",
        )
    }
}

impl std::fmt::Display for NeutronError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for NeutronError {}

/// A store failure the handler did not expect: the database gone, full or refusing
/// connections is a 503 the client may retry (Neutron's `ServiceUnavailable`), logged;
/// anything else an internal error.
impl From<neutrino_store::Error> for NeutronError {
    fn from(e: neutrino_store::Error) -> Self {
        if e.is_transient_conflict() {
            // Run again by `retry::retrying` where the write is wrapped; a 503 when that did
            // not help (or the write is not wrapped): the client may retry.
            tracing::debug!("{e}");
            return NeutronError {
                again: true,
                ..NeutronError::new(
                    Status::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The database refused the write on a conflict with another one (a deadlock or a serialization failure). Retry later.",
                )
            };
        }
        if e.is_foreign_key_violation() {
            // A row this write refers to was deleted by a concurrent transaction: running the
            // write again answers as Neutron does (the network is gone: NetworkNotFound).
            return NeutronError {
                again: true,
                ..NeutronError::internal(e)
            };
        }
        if let Some(reason) = e.unavailable_reason() {
            tracing::error!("{e}");
            NeutronError::new(
                Status::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!("The database is unavailable: {reason}. Retry later."),
            )
        } else {
            NeutronError::internal(e)
        }
    }
}
