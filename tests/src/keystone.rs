//! A real Keystone for the tests of `--auth keystone`: started by `scripts/keystone.sh` (which
//! installs it into `.venv` when needed), provisioned through its own REST API as an operator
//! would, stopped when dropped.

use std::path::PathBuf;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

pub struct Keystone {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    admin_password: String,
    dir: String,
    client: reqwest::Client,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/keystone.sh")
}

impl Keystone {
    /// Starts a fresh instance. Panics, loudly and with the reason, when Keystone cannot run:
    /// a test that needs it must fail, never pass without it (`scripts/test.sh` skips these
    /// tests, with a banner, only when Keystone cannot be installed at all).
    pub fn start() -> Keystone {
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            // The server exits with this test process, even if it is killed.
            .env(
                "NEUTRINO_KEYSTONE_WATCH_PID",
                std::process::id().to_string(),
            )
            .output()
            .expect("run scripts/keystone.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = stdout.split_whitespace().collect();
        if !out.status.success() || fields.len() != 3 {
            panic!(
                "\n################################################################\n\
                 A REAL KEYSTONE COULD NOT BE STARTED (scripts/keystone.sh start):\n{}\n{}\n\
                 ################################################################",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        Keystone {
            url: fields[0].to_string(),
            admin_password: fields[1].to_string(),
            dir: fields[2].to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// Stops the server (the directory goes too); requests fail from now on.
    pub fn stop(&mut self) {
        if self.dir.is_empty() {
            return;
        }
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.dir])
            .status();
        self.dir.clear();
    }

    /// A project-scoped token for a user of the Default domain.
    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}
        }});
        let r = self
            .client
            .post(format!("{}/v3/auth/tokens", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("Keystone answers");
        assert_eq!(r.status(), StatusCode::CREATED, "token for {user}");
        r.headers()["x-subject-token"].to_str().unwrap().to_string()
    }

    /// The bootstrap administrator's token (project `admin`, role `admin`).
    pub async fn admin_token(&self) -> String {
        self.token("admin", &self.admin_password, "admin").await
    }

    async fn call(
        &self,
        admin: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .client
            .request(method.clone(), format!("{}/v3{path}", self.url))
            .header("x-auth-token", admin);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("Keystone answers");
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates a project in the Default domain; returns its id.
    pub async fn create_project(&self, admin: &str, name: &str) -> String {
        let r = self
            .call(
                admin,
                reqwest::Method::POST,
                "/projects",
                Some(json!({"project": {"name": name, "domain_id": "default"}})),
            )
            .await;
        r["project"]["id"].as_str().unwrap().to_string()
    }

    /// Creates a user in the Default domain; returns its id.
    pub async fn create_user(&self, admin: &str, name: &str, password: &str) -> String {
        let r = self
            .call(
                admin,
                reqwest::Method::POST,
                "/users",
                Some(json!({"user": {"name": name, "domain_id": "default", "password": password}})),
            )
            .await;
        r["user"]["id"].as_str().unwrap().to_string()
    }

    /// Gives a user a role (by name: `admin`, `member`, `reader`) on a project.
    pub async fn grant(&self, admin: &str, project_id: &str, user_id: &str, role: &str) {
        let roles = self
            .call(
                admin,
                reqwest::Method::GET,
                &format!("/roles?name={role}"),
                None,
            )
            .await;
        let role_id = roles["roles"][0]["id"].as_str().expect("role exists");
        self.call(
            admin,
            reqwest::Method::PUT,
            &format!("/projects/{project_id}/users/{user_id}/roles/{role_id}"),
            None,
        )
        .await;
    }

    /// Revokes a token (it stays valid in caches that already hold it).
    pub async fn revoke(&self, admin: &str, token: &str) {
        let r = self
            .client
            .delete(format!("{}/v3/auth/tokens", self.url))
            .header("x-auth-token", admin)
            .header("x-subject-token", token)
            .send()
            .await
            .expect("Keystone answers");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        self.stop();
    }
}
