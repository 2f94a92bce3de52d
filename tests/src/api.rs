//! An API under test: a real store (SQLite in a temp dir, or a fresh PostgreSQL database) behind
//! the real router, called through tower without a socket.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use neutrino::api::ApiConfig;
use neutrino::server::{ServeOptions, app};

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
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl TestApi {
    pub async fn new(db: Db) -> TestApi {
        Self::two(db).await.0
    }

    /// Two servers sharing one database, as two `serve` processes would.
    pub async fn two(db: Db) -> (TestApi, TestApi) {
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
        let first = Self::on(Some(database.clone())).await;
        let second = Self::on(Some(database)).await;
        (
            TestApi {
                router: first.router,
                _dir: dir,
            },
            second,
        )
    }

    async fn on(database: Option<String>) -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        let options = ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            database,
            data_dir: dir.path().to_path_buf(),
            api: ApiConfig {
                default_project: "admin-project".into(),
                ..ApiConfig::default()
            },
        };
        TestApi {
            router: app(&options).await.expect("app"),
            _dir: dir,
        }
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
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "neutrino.test:9696");
        if let Some((project, roles)) = who {
            req = req.header("x-project-id", project).header("x-roles", roles);
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
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply { status, body }
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

/// A new, empty database on the test PostgreSQL server, for one test.
async fn fresh_postgres_database() -> String {
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
