//! What only the SQLite backend promises: an in-memory store for other crates' tests, and
//! the file settings it opens with.
#![cfg(feature = "sqlite")]

use chrono::DateTime;
use sparebox_store::sqlite::SqliteStore;
use std::collections::BTreeSet;

use sparebox_store::{NewAccount, NewApiToken, Role, Store, StoreError};
use uuid::Uuid;

fn account(name: &str) -> (NewAccount, NewApiToken) {
    let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let id = Uuid::new_v4();
    let account = NewAccount {
        id,
        email: format!("{name}@example.com"),
        name: name.into(),
        password_hash: "not a real hash".into(),
        roles: BTreeSet::from([Role::Deployer]),
        created_at: at,
    };
    let token = NewApiToken {
        id: Uuid::new_v4(),
        account: id,
        name: "first".into(),
        token_hash: name.as_bytes().to_vec(),
        prefix: String::new(),
        created_at: at,
    };
    (account, token)
}

#[tokio::test]
async fn in_memory_store_keeps_data_across_calls_and_clones() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let clone = store.clone();

    let (new, token) = account("carol");
    let (created, _) = store.create_account(new, token).await.unwrap();

    assert_eq!(
        clone.account_by_token_hash(b"carol").await.unwrap(),
        Some(created)
    );
}

#[tokio::test]
async fn in_memory_stores_are_private_to_each_other() {
    let first = SqliteStore::open_in_memory().await.unwrap();
    let second = SqliteStore::open_in_memory().await.unwrap();

    let (new, token) = account("dave");
    first.create_account(new, token).await.unwrap();

    assert_eq!(second.account_by_token_hash(b"dave").await.unwrap(), None);
}

#[tokio::test]
async fn open_creates_the_file_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");

    SqliteStore::open(&path).await.unwrap();

    assert!(path.exists());
    assert!(wal_mode(&path).await, "journal mode is not wal");
}

async fn wal_mode(path: &std::path::Path) -> bool {
    use sqlx::{Connection, SqliteConnection};
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    mode == "wal"
}

#[tokio::test]
async fn open_in_a_missing_directory_is_a_database_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/sparebox.db");

    let err = SqliteStore::open(&path).await.unwrap_err();

    assert!(matches!(err, StoreError::Database(_)), "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[tokio::test]
async fn foreign_keys_stay_on_after_the_migrations_on_a_single_connection() {
    let store = SqliteStore::open_in_memory().await.unwrap();

    let err = store
        .create_host(sparebox_store::NewHost {
            owner: Uuid::new_v4(),
            name: "orphan".into(),
            key_hash: vec![1; 32],
            key_prefix: "sbx_host_0000".into(),
            created_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        })
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "account",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn accounts_from_before_sign_up_keep_their_token_and_hosts() {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let first_only = dir.path().join("migrations");
    std::fs::create_dir(&first_only).unwrap();
    let source = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite/0001_initial.sql"
    );
    std::fs::copy(source, first_only.join("0001_initial.sql")).unwrap();
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true)
        .connect()
        .await
        .unwrap();
    let migrator = sqlx::migrate::Migrator::new(first_only.as_path())
        .await
        .unwrap();
    migrator.run(&mut conn).await.unwrap();
    let account = Uuid::new_v4();
    let host = Uuid::new_v4();
    sqlx::query("INSERT INTO accounts (id, name, token_hash, created_at) VALUES (?, 'old', ?, 5)")
        .bind(account.to_string())
        .bind(b"old token hash".to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO hosts (id, owner, name, key_hash, key_prefix, created_at) \
         VALUES (?, ?, 'box', ?, 'sbx_host_1', 6)",
    )
    .bind(host.to_string())
    .bind(account.to_string())
    .bind(b"key hash".to_vec())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = SqliteStore::open(&path).await.unwrap();

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
    assert_eq!(hosts[0].settings, sparebox_store::HostSettings::default());
}
