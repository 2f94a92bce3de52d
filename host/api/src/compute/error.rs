//! `NovaError`: failures of the compute API in Nova's shape, `{"<fault name>": {"message": ...,
//! "code": <status>}}`, the fault name chosen by status as Nova's `wsgi.Fault` does.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{CoreError, NeutronError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NovaError {
    pub status: StatusCode,
    pub message: String,
}

pub type NovaResult<T> = Result<T, NovaError>;

impl NovaError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> NovaError {
        NovaError {
            status,
            message: message.into(),
        }
    }

    /// 400 `badRequest`.
    pub fn bad_request(message: impl Into<String>) -> NovaError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 `itemNotFound` for a server: "Instance <id> could not be found."
    pub fn instance_not_found(id: &str) -> NovaError {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("Instance {id} could not be found."),
        )
    }

    /// 409 `conflictingRequest`.
    pub fn conflict(message: impl Into<String>) -> NovaError {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 403 `forbidden` for a policy rule (`os_compute_api:servers:create`, ...).
    pub fn forbidden(rule: &str) -> NovaError {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("Policy doesn't allow {rule} to be performed."),
        )
    }

    /// 405 `badMethod`.
    pub fn method_not_allowed() -> NovaError {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method specified is not allowed for this resource.",
        )
    }

    /// Nova's fault name for a status (`nova/api/openstack/wsgi.py` `Fault._fault_names`).
    pub fn fault_name(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
            409 => "conflictingRequest",
            413 | 429 => "overLimit",
            415 => "badMediaType",
            501 => "notImplemented",
            503 => "serviceUnavailable",
            _ => "computeFault",
        }
    }
}

impl std::fmt::Display for NovaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for NovaError {}

impl IntoResponse for NovaError {
    fn into_response(self) -> Response {
        let body =
            json!({ self.fault_name(): {"message": self.message, "code": self.status.as_u16()} });
        (self.status, Json(body)).into_response()
    }
}

/// A failure of the networking code the compute API calls (port creation, binding, IPAM): the
/// same status and message, in Nova's shape.
impl From<CoreError> for NovaError {
    fn from(e: CoreError) -> Self {
        let status =
            StatusCode::from_u16(e.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        NovaError::new(status, e.message)
    }
}

impl From<NeutronError> for NovaError {
    fn from(e: NeutronError) -> Self {
        e.0.into()
    }
}

impl From<neutrino_store::Error> for NovaError {
    fn from(e: neutrino_store::Error) -> Self {
        NeutronError::from(e).into()
    }
}

/// A networking failure of a boot as Nova answers it: a network or port that cannot be found
/// and an address in use are the request's fault (400), as Nova's API checks them up front.
pub fn nova_error(e: CoreError) -> NovaError {
    match e.kind.as_str() {
        "NetworkNotFound" | "PortNotFound" => NovaError::bad_request(e.message),
        "IpAddressAlreadyAllocated" | "IpAddressInUse" => {
            NovaError::bad_request(format!("Fixed IP address is already in use: {}", e.message))
        }
        // Nova's `PortLimitExceeded` (an `OverQuota`: 403).
        "OverQuota" => NovaError::new(StatusCode::FORBIDDEN, "Maximum number of ports exceeded"),
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_follow_nova() {
        assert_eq!(NovaError::bad_request("x").fault_name(), "badRequest");
        assert_eq!(
            NovaError::instance_not_found("i").fault_name(),
            "itemNotFound"
        );
        assert_eq!(NovaError::conflict("x").fault_name(), "conflictingRequest");
        assert_eq!(
            NovaError::new(StatusCode::INTERNAL_SERVER_ERROR, "x").fault_name(),
            "computeFault"
        );
        assert_eq!(
            NovaError::forbidden("os_compute_api:servers:create").message,
            "Policy doesn't allow os_compute_api:servers:create to be performed."
        );
    }
}
