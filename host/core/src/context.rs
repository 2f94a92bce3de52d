//! Who is asking, as the services see it: the project, the user and the roles (the API makes
//! it from a token or headers), and the ownership and role checks that use them.

use serde_json::{Map, Value};

use crate::body;
use crate::error::NeutronError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub project_id: String,
    /// The user (Keystone's `user.id`; with noauth `X-User-Id`, else the project id, as Nova's
    /// noauth does with a token `admin:admin`). Only the compute API records it.
    pub user_id: String,
    pub roles: Vec<String>,
}

impl RequestContext {
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
