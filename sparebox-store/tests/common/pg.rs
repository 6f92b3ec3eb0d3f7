//! The PostgreSQL backend for the conformance suite: a fresh database per test on the
//! server named by `SPAREBOX_TEST_POSTGRES_URL`.

use std::str::FromStr;

use sparebox_store::postgres::PgStore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use uuid::Uuid;

use super::Backend;

/// The variable naming the test server, e.g. `postgres://postgres@127.0.0.1:55432/postgres`.
const URL_VAR: &str = "SPAREBOX_TEST_POSTGRES_URL";

/// A database created for one test and dropped by [`PgBackend::finish`].
pub struct PgBackend {
    server: PgConnectOptions,
    database: String,
}

impl PgBackend {
    /// Creates a fresh database, or returns `None` (after saying so) when no server is
    /// configured. Under CI a missing server fails the test instead.
    pub async fn new() -> Option<Self> {
        let Ok(url) = std::env::var(URL_VAR) else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{URL_VAR} is not set but CI is: the PostgreSQL conformance suite must run \
                     in CI (start a server with scripts/start-postgres.sh)"
                );
            }
            eprintln!(
                "SKIPPED: PostgreSQL conformance test; set {URL_VAR} to run it \
                 (see sparebox-store/README.md)"
            );
            return None;
        };
        let server = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|err| panic!("{URL_VAR} is not a PostgreSQL URL: {err}"));
        let database = format!("sparebox_test_{}", Uuid::new_v4().simple());
        let mut admin = server.connect().await.expect("connect to the test server");
        admin
            .execute(format!("CREATE DATABASE {database}").as_str())
            .await
            .expect("create a test database");
        admin.close().await.expect("close admin connection");
        Some(Self { server, database })
    }

    /// Drops the test's database. A failed test skips this and leaves its database behind
    /// for inspection; the throwaway server is the place to clean them up.
    pub async fn finish(self) {
        let mut admin = self
            .server
            .connect()
            .await
            .expect("connect to the test server");
        admin
            .execute(format!("DROP DATABASE {} WITH (FORCE)", self.database).as_str())
            .await
            .expect("drop the test database");
    }
}

impl Backend for PgBackend {
    type Store = PgStore;

    async fn open(&self) -> PgStore {
        PgStore::connect_with(self.server.clone().database(&self.database))
            .await
            .expect("connect postgres store")
    }
}
