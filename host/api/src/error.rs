//! `NeutronError` over HTTP: the services' error (`neutrino_core::error`) answered in Neutron's
//! shape: `{"NeutronError": {"type": "<ExceptionClass>", "message": "...", "detail": ""}}`.
//! A newtype, as the response impl cannot be written for another crate's type; `?` converts
//! a service's error at the handler's edge.

use std::ops::Deref;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use neutrino_core::error::Status;
use serde_json::json;

pub use neutrino_core::error::NeutronError as CoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeutronError(pub CoreError);

pub type ApiResult<T> = Result<T, NeutronError>;

impl NeutronError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        NeutronError(CoreError::new(status_of(status), kind, message))
    }

    /// The status as the HTTP stack types it.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        NeutronError(CoreError::bad_request(message))
    }

    pub fn invalid_input(reason: impl std::fmt::Display) -> Self {
        NeutronError(CoreError::invalid_input(reason))
    }

    pub fn bad(kind: &str, message: impl Into<String>) -> Self {
        NeutronError(CoreError::bad(kind, message))
    }

    pub fn not_found(kind: &str, message: impl Into<String>) -> Self {
        NeutronError(CoreError::not_found(kind, message))
    }

    pub fn no_such_path() -> Self {
        NeutronError(CoreError::no_such_path())
    }

    pub fn conflict(kind: &str, message: impl Into<String>) -> Self {
        NeutronError(CoreError::conflict(kind, message))
    }

    pub fn forbidden(action: &str) -> Self {
        NeutronError(CoreError::forbidden(action))
    }

    pub fn method_not_allowed() -> Self {
        NeutronError(CoreError::method_not_allowed())
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        NeutronError(CoreError::internal(cause))
    }
}

/// The services' status number as the HTTP stack's.
fn status_of(status: StatusCode) -> Status {
    Status::from_u16(status.as_u16()).unwrap_or(Status::INTERNAL_SERVER_ERROR)
}

impl Deref for NeutronError {
    type Target = CoreError;

    fn deref(&self) -> &CoreError {
        &self.0
    }
}

impl std::fmt::Display for NeutronError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for NeutronError {}

impl From<CoreError> for NeutronError {
    fn from(e: CoreError) -> Self {
        NeutronError(e)
    }
}

/// A store failure the handler did not expect: as the services map it (503 or 500).
impl From<neutrino_store::Error> for NeutronError {
    fn from(e: neutrino_store::Error) -> Self {
        NeutronError(e.into())
    }
}

impl IntoResponse for NeutronError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let CoreError { kind, message, .. } = self.0;
        let body = json!({"NeutronError": {"type": kind, "message": message, "detail": ""}});
        (status, Json(body)).into_response()
    }
}
