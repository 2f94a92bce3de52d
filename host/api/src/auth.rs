//! Who is asking: the request context and the policy rules that use it.
//!
//! `noauth` (the default): the project comes from `X-Project-Id` (or `X-Tenant-Id`), the
//! roles from `X-Roles`; with neither header the request runs as the configured default
//! project with the admin role, so that `OS_AUTH_TYPE=none` clients work.
//!
//! `keystone`: every request under `/v2.0` needs an `X-Auth-Token` that Keystone validates
//! ([`super::keystone`]); the project and roles come from the token, never from headers the
//! client could set. `GET /` (the version document) stays open, as in Neutron, and so does the
//! agents' internal API, which has its own secret.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::NeutronError;
use super::keystone::AuthFailure;
pub use neutrino_core::RequestContext;

/// How requests are authenticated (`neutrino serve --auth`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthStrategy {
    /// Identity from `X-Project-Id` / `X-Roles`, or the default project as admin.
    #[default]
    NoAuth,
    /// `X-Auth-Token` validated by Keystone v3 at this URL.
    Keystone { url: String },
}

/// The context of a request under noauth, from its headers.
pub fn context_from_headers(headers: &HeaderMap, default_project: &str) -> RequestContext {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let project = header("x-project-id").or_else(|| header("x-tenant-id"));
    let roles = header("x-roles");
    let project_id = project.unwrap_or(default_project).to_string();
    let user_id = header("x-user-id").unwrap_or(&project_id).to_string();
    match (project, roles) {
        (None, None) => RequestContext {
            project_id,
            user_id,
            roles: vec!["admin".into()],
        },
        (_, roles) => RequestContext {
            project_id,
            user_id,
            roles: roles
                .map(|r| {
                    r.split(',')
                        .map(|s| s.trim().to_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_else(|| vec!["member".into()]),
        },
    }
}

/// The one type handlers see, whichever the strategy: with Keystone, the context the
/// [`authenticate`] middleware put in the request; with noauth, the headers'.
impl FromRequestParts<AppState> for RequestContext {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(context) = parts.extensions.get::<RequestContext>() {
            return Ok(context.clone());
        }
        match &state.keystone {
            None => Ok(context_from_headers(
                &parts.headers,
                &state.config.default_project,
            )),
            // A route outside the authenticated paths asked who is calling: nobody proved it.
            Some(keystone) => Err(unauthorized(&keystone.www_authenticate())),
        }
    }
}

/// Whether a path needs a token under Keystone: everything under `/v2.0` (and the compute
/// API's `/v2.1`), as Neutron's paste pipeline puts `authtoken` in front of the whole v2.0
/// application.
fn needs_token(path: &str) -> bool {
    path.starts_with("/v2.0") || path.starts_with("/v2.1")
}

/// Middleware: validates `X-Auth-Token` with Keystone and hands the context on.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(keystone) = state.keystone.clone() else {
        return next.run(req).await;
    };
    if !needs_token(req.uri().path()) {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok());
    match keystone.authenticate(token).await {
        Ok(context) => {
            req.extensions_mut().insert(context);
            next.run(req).await
        }
        Err(AuthFailure::Unauthorized) => unauthorized(&keystone.www_authenticate()),
        Err(AuthFailure::Unavailable(_)) => NeutronError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is unavailable: the identity service cannot validate the token.",
        )
        .into_response(),
    }
}

/// A missing or rejected token: the body Neutron's WSGI stack gives (webob's 401, not a
/// `NeutronError`: the request never reached Neutron), and Keystone's `WWW-Authenticate`.
pub fn unauthorized(www_authenticate: &str) -> Response {
    let body = serde_json::json!({
        "message": "This server could not verify that you are authorized to access the document you requested. Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand how to supply the credentials required.<br /><br />\n\n\n",
        "code": "401 Unauthorized",
        "title": "Unauthorized",
    });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(www_authenticate) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn no_headers_means_the_default_admin_project() {
        let c = context_from_headers(&headers(&[]), "admin");
        assert_eq!(c.project_id, "admin");
        assert!(c.is_admin());
    }

    #[test]
    fn headers_give_project_and_roles() {
        let c = context_from_headers(
            &headers(&[("x-project-id", "p1"), ("x-roles", "Reader")]),
            "admin",
        );
        assert_eq!(c.project_id, "p1");
        assert!(!c.is_admin());
        assert!(!c.can_write());
        let c = context_from_headers(&headers(&[("x-project-id", "p2")]), "admin");
        assert!(c.can_write() && !c.is_admin());
        assert!(c.owns("p2") && !c.owns("p1"));
    }
}
