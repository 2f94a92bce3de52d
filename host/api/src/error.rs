//! `NeutronError`: every failure the API returns, in Neutron's shape:
//! `{"NeutronError": {"type": "<ExceptionClass>", "message": "...", "detail": ""}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeutronError {
    pub status: StatusCode,
    /// The exception class name clients key on (`NetworkNotFound`, `IpAddressInUse`, ...).
    pub kind: String,
    pub message: String,
}

pub type ApiResult<T> = Result<T, NeutronError>;

impl NeutronError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        NeutronError {
            status,
            kind: kind.to_string(),
            message: message.into(),
        }
    }

    /// 400 `HTTPBadRequest`: malformed requests (body, unknown or read-only attributes, query).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "HTTPBadRequest", message)
    }

    /// 400 `InvalidInput`: "Invalid input for operation: ...".
    pub fn invalid_input(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: {reason}"),
        )
    }

    /// 400 with a specific type (`InvalidIpForSubnet`, ...).
    pub fn bad(kind: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }

    /// 404 with a specific type (`NetworkNotFound`, ...).
    pub fn not_found(kind: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }

    /// 404 `HTTPNotFound` for paths that name no resource.
    pub fn no_such_path() -> Self {
        Self::not_found("HTTPNotFound", "The resource could not be found.")
    }

    /// 409 with a specific type (`NetworkInUse`, `VlanIdInUse`, ...).
    pub fn conflict(kind: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, message)
    }

    /// 403 `PolicyNotAuthorized` for a policy rule, worded as Neutron words it: `create_network`
    /// or, for an attribute rule, `create_network:shared`.
    pub fn forbidden(action: &str) -> Self {
        let rule = match action.split_once(':') {
            Some((base, _)) => format!("(rule:{base} and rule:{action})"),
            None => format!("rule:{action}"),
        };
        Self::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            format!("{rule} is disallowed by policy"),
        )
    }

    /// 405 `HTTPMethodNotAllowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTPMethodNotAllowed",
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        )
    }

    /// 500 `HTTPInternalServerError`; the cause goes to the log, not to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
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

impl IntoResponse for NeutronError {
    fn into_response(self) -> Response {
        let body =
            json!({"NeutronError": {"type": self.kind, "message": self.message, "detail": ""}});
        (self.status, Json(body)).into_response()
    }
}

/// A store failure the handler did not expect: the database gone, full or refusing
/// connections is a 503 the client may retry (Neutron's `ServiceUnavailable`), logged;
/// anything else an internal error.
impl From<neutrino_store::Error> for NeutronError {
    fn from(e: neutrino_store::Error) -> Self {
        if e.is_unavailable() {
            tracing::error!("{e}");
            NeutronError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The database is unavailable; retry later.",
            )
        } else {
            NeutronError::internal(e)
        }
    }
}
