//! Who is asking: the request context and the policy rules that use it.
//!
//! Only `noauth` exists so far: the project comes from `X-Project-Id` (or `X-Tenant-Id`), the
//! roles from `X-Roles`; with neither header the request runs as the configured default
//! project with the admin role, so that `OS_AUTH_TYPE=none` clients work.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use serde_json::{Map, Value};

use super::AppState;
use super::body;
use super::error::NeutronError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub project_id: String,
    pub roles: Vec<String>,
}

impl RequestContext {
    pub fn from_headers(headers: &HeaderMap, default_project: &str) -> RequestContext {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let project = header("x-project-id").or_else(|| header("x-tenant-id"));
        let roles = header("x-roles");
        match (project, roles) {
            (None, None) => RequestContext {
                project_id: default_project.to_string(),
                roles: vec!["admin".into()],
            },
            (project, roles) => RequestContext {
                project_id: project.unwrap_or(default_project).to_string(),
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

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }

    /// A reader may look but not change anything.
    pub fn can_write(&self) -> bool {
        self.roles.iter().any(|r| r == "admin" || r == "member")
    }

    /// Writes need the member or admin role.
    pub fn require_write(&self, action: &str) -> Result<(), NeutronError> {
        if self.can_write() {
            Ok(())
        } else {
            Err(NeutronError::forbidden(action))
        }
    }

    /// May this request see (and, if it can write, change) a resource owned by `owner`?
    pub fn owns(&self, owner: &str) -> bool {
        self.is_admin() || self.project_id == owner
    }
}

impl RequestContext {
    /// The project a create is for: the body's `project_id`/`tenant_id` (which must agree, and
    /// which only an admin may set to another project), else the caller's.
    pub fn project_for_create(&self, b: &Map<String, Value>) -> Result<String, NeutronError> {
        let project = body::string(b, "project_id", 255)?;
        let tenant = body::string(b, "tenant_id", 255)?;
        if let (Some(p), Some(t)) = (&project, &tenant)
            && p != t
        {
            return Err(NeutronError::bad_request(
                "'project_id' and 'tenant_id' do not match",
            ));
        }
        let project = project
            .or(tenant)
            .unwrap_or_else(|| self.project_id.clone());
        if project != self.project_id && !self.is_admin() {
            return Err(NeutronError::bad_request(
                "Specifying 'project_id' other than the authenticated project in request is not allowed for the current user.",
            ));
        }
        Ok(project)
    }
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = NeutronError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(RequestContext::from_headers(
            &parts.headers,
            &state.config.default_project,
        ))
    }
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
        let c = RequestContext::from_headers(&headers(&[]), "admin");
        assert_eq!(c.project_id, "admin");
        assert!(c.is_admin());
    }

    #[test]
    fn headers_give_project_and_roles() {
        let c = RequestContext::from_headers(
            &headers(&[("x-project-id", "p1"), ("x-roles", "Reader")]),
            "admin",
        );
        assert_eq!(c.project_id, "p1");
        assert!(!c.is_admin());
        assert!(!c.can_write());
        let c = RequestContext::from_headers(&headers(&[("x-project-id", "p2")]), "admin");
        assert!(c.can_write() && !c.is_admin());
        assert!(c.owns("p2") && !c.owns("p1"));
    }
}
