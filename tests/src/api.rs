//! An API under test: a real store (SQLite in a temp dir, or a fresh PostgreSQL database) behind
//! the real router, called through tower without a socket.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use neutrino::api::{ApiConfig, AppState, router};
use neutrino::server::{ServeOptions, state};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the suite may use: `NEUTRINO_TEST_POSTGRES_URL`, e.g.
/// `postgres://postgres@127.0.0.1:55432/postgres` (scripts/test.sh starts one).
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("NEUTRINO_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

pub struct TestApi {
    router: Router,
    /// The server's state, for tests that call the store or the heartbeat buffer directly.
    pub state: AppState,
    /// The shared agent token, good for every host (`serve --shared-agent-token`; shared by
    /// the servers of [`TestApi::two`]); refused by a [`TestApi::scoped`] server.
    pub agent_token: String,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl TestApi {
    pub async fn new(db: Db) -> TestApi {
        Self::two(db).await.0
    }

    /// Two servers sharing one database, as two `serve` processes would.
    pub async fn two(db: Db) -> (TestApi, TestApi) {
        Self::two_with(db, |_| {}).await
    }

    /// One server whose settings `configure` changes (e.g. a short `agent_down_time`).
    pub async fn with(db: Db, configure: impl Fn(&mut ApiConfig)) -> TestApi {
        Self::two_with(db, configure).await.0
    }

    /// Two servers sharing one database and agent token, both set up by `configure`.
    pub async fn two_with(db: Db, configure: impl Fn(&mut ApiConfig)) -> (TestApi, TestApi) {
        // Server-side errors show in the failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let database = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("shared.db").display()),
            Db::Postgres => fresh_postgres_database().await,
        };
        let token_file = write_agent_token(dir.path());
        let mut config = ApiConfig {
            default_project: "admin-project".into(),
            ..ApiConfig::default()
        };
        configure(&mut config);
        let first = Self::on(Some(database.clone()), &token_file, &config, true).await;
        let second = Self::on(Some(database), &token_file, &config, true).await;
        (
            TestApi {
                router: first.router,
                state: first.state,
                agent_token: first.agent_token,
                _dir: dir,
            },
            second,
        )
    }

    /// One server on a database the test prepared (a file on a small disk, a URL through a
    /// proxy the test cuts).
    pub async fn at(database: String) -> TestApi {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let token_file = write_agent_token(dir.path());
        let config = ApiConfig {
            default_project: "admin-project".into(),
            ..ApiConfig::default()
        };
        let api = Self::on(Some(database), &token_file, &config, true).await;
        TestApi {
            router: api.router,
            state: api.state,
            agent_token: api.agent_token,
            _dir: dir,
        }
    }

    /// One server as `serve` runs by default: no shared agent token, each host's agent with
    /// its own credential ([`TestApi::enroll`]). Its `agent_token` (the file's) is refused.
    pub async fn scoped(db: Db) -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        let database = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("scoped.db").display()),
            Db::Postgres => fresh_postgres_database().await,
        };
        let token_file = write_agent_token(dir.path());
        let config = ApiConfig {
            default_project: "admin-project".into(),
            ..ApiConfig::default()
        };
        let api = Self::on(Some(database), &token_file, &config, false).await;
        TestApi {
            router: api.router,
            state: api.state,
            agent_token: api.agent_token,
            _dir: dir,
        }
    }

    /// `neutrino agent enroll HOST`: a new credential for `host`; answers its token.
    pub async fn enroll(&self, host: &str) -> String {
        neutrino::api::internal::enroll(&self.state.store, host)
            .await
            .unwrap()
    }

    /// `neutrino agent revoke HOST`: answers whether `host` had a credential.
    pub async fn revoke(&self, host: &str) -> bool {
        neutrino::api::internal::revoke(&self.state.store, host)
            .await
            .unwrap()
    }

    /// An agent's heartbeat sent with `token`.
    pub async fn report_with(&self, token: &str, report: Value) -> Reply {
        let body = serde_json::json!({ "agent": report })
            .to_string()
            .into_bytes();
        self.request(
            Method::POST,
            "/internal/agents/report",
            &[("x-neutrino-agent-token", token)],
            body,
        )
        .await
    }

    /// A request of the internal API with `token` (`body`: JSON, or empty for a GET).
    pub async fn internal(&self, token: &str, method: Method, path: &str, body: Vec<u8>) -> Reply {
        self.request(method, path, &[("x-neutrino-agent-token", token)], body)
            .await
    }

    async fn on(
        database: Option<String>,
        token_file: &std::path::Path,
        config: &ApiConfig,
        shared_agent_token: bool,
    ) -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database,
            data_dir: dir.path().to_path_buf(),
            agent_token_file: Some(token_file.to_path_buf()),
            shared_agent_token,
            api: config.clone(),
        };
        let state = state(&options).await.expect("app state");
        TestApi {
            router: router(state.clone()),
            state,
            agent_token: std::fs::read_to_string(token_file).unwrap(),
            _dir: dir,
        }
    }

    /// Lifts the default (admin) project's quotas of networks, subnets and ports, for tests
    /// that make more than Neutron's defaults allow (100 networks, 100 subnets, 500 ports).
    pub async fn unlimited_quotas(&self) {
        let r = self
            .call(
                Method::PUT,
                "/v2.0/quotas/admin-project",
                Some(serde_json::json!({"quota": {"network": -1, "subnet": -1, "port": -1}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    /// An agent's heartbeat: `POST /internal/agents/report` with `{"agent": report}`.
    pub async fn report(&self, report: Value) -> Reply {
        let body = serde_json::json!({ "agent": report })
            .to_string()
            .into_bytes();
        self.request(
            Method::POST,
            "/internal/agents/report",
            &[("x-neutrino-agent-token", &self.agent_token)],
            body,
        )
        .await
    }

    /// A request as the default (admin) identity.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(None, method, path, body).await
    }

    /// A request with `X-Project-Id`/`X-Roles` headers when `who` is given.
    pub async fn call_as(
        &self,
        who: Option<(&str, &str)>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        self.raw(
            who,
            method,
            path,
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        )
        .await
    }

    pub async fn raw(
        &self,
        who: Option<(&str, &str)>,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Reply {
        match who {
            Some((project, roles)) => {
                self.request(
                    method,
                    path,
                    &[("x-project-id", project), ("x-roles", roles)],
                    body,
                )
                .await
            }
            None => self.request(method, path, &[], body).await,
        }
    }

    /// A GET whose answer is text (`/metrics`): status, headers and body.
    pub async fn get_text(&self, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// A request with the given headers and raw body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "neutrino.test:9696");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl Reply {
    /// The `NeutronError` type, if this is an error.
    pub fn error_type(&self) -> &str {
        self.body["NeutronError"]["type"].as_str().unwrap_or("")
    }

    pub fn error_message(&self) -> &str {
        self.body["NeutronError"]["message"].as_str().unwrap_or("")
    }
}

/// A new, empty database on the test PostgreSQL server, for one test: its URL.
pub async fn fresh_postgres_database() -> String {
    let admin = postgres_admin_url().expect("NEUTRINO_TEST_POSTGRES_URL");
    let name = format!("neutrino_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect to test PostgreSQL");
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .expect("create database");
    let (base, _) = admin.rsplit_once('/').expect("URL with a database");
    format!("{base}/{name}")
}

/// Runs an async test body on SQLite and, in a second test, on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                ($body)($crate::api::TestApi::new($crate::api::Db::Sqlite).await).await
            }

            #[tokio::test]
            async fn postgres() {
                ($body)($crate::api::TestApi::new($crate::api::Db::Postgres).await).await
            }
        }
    };
}

/// Runs an async test body, given the database, on SQLite and, in a second test, on
/// PostgreSQL: for tests that build their servers themselves (settings, two servers).
#[macro_export]
macro_rules! for_both_databases {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                ($body)($crate::api::Db::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                ($body)($crate::api::Db::Postgres).await
            }
        }
    };
}

/// A fresh shared agent token in `<dir>/agent-token`: the file's path.
fn write_agent_token(dir: &std::path::Path) -> std::path::PathBuf {
    let token_file = dir.join("agent-token");
    std::fs::write(
        &token_file,
        format!("test-token-{}", uuid::Uuid::new_v4().simple()),
    )
    .unwrap();
    token_file
}
