//! Upgrading a PostgreSQL database created before sign-up existed: accounts keep their
//! ids, hosts and tokens. Runs when `SPAREBOX_TEST_POSTGRES_URL` names a server (see the
//! crate README); skipped otherwise, failed under CI.
#![cfg(feature = "postgres")]

use std::collections::BTreeSet;
use std::str::FromStr;

use sparebox_store::postgres::PgStore;
use sparebox_store::{HostSettings, Role, Store};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use uuid::Uuid;

#[tokio::test]
async fn accounts_from_before_sign_up_keep_their_token_and_hosts() {
    let Ok(url) = std::env::var("SPAREBOX_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "SPAREBOX_TEST_POSTGRES_URL must be set under CI"
        );
        eprintln!("SKIPPED: set SPAREBOX_TEST_POSTGRES_URL to run the PostgreSQL migration test");
        return;
    };
    let server = PgConnectOptions::from_str(&url).unwrap();
    let database = format!("sparebox_migration_{}", Uuid::new_v4().simple());
    let mut admin = server.connect().await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .unwrap();
    let options = server.clone().database(&database);

    let dir = tempfile::tempdir().unwrap();
    let source = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/postgres/0001_initial.sql"
    );
    std::fs::copy(source, dir.path().join("0001_initial.sql")).unwrap();
    let mut conn = options.connect().await.unwrap();
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let account = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO accounts (id, name, token_hash, created_at) VALUES ($1, 'old', $2, now())",
    )
    .bind(account)
    .bind(b"old token hash".to_vec())
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO hosts (id, owner, name, key_hash, key_prefix, created_at) \
         VALUES ($1, $2, 'box', $3, 'sbx_host_1', now())",
    )
    .bind(Uuid::new_v4())
    .bind(account)
    .bind(b"key hash".to_vec())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = PgStore::connect_with(options).await.unwrap();

    let migrated = store
        .account_by_token_hash(b"old token hash")
        .await
        .unwrap()
        .expect("the old token still works");
    assert_eq!(migrated.id, account);
    assert_eq!(migrated.email, None);
    assert_eq!(
        migrated.roles,
        BTreeSet::from([Role::Deployer, Role::HostOwner])
    );
    let tokens = store.api_tokens_for_account(account).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].name, "account token");
    let hosts = store.hosts_for_owner(account).await.unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].settings, HostSettings::default());

    drop(store);
    admin
        .execute(format!("DROP DATABASE {database} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
