//! What only the SQLite backend promises: an in-memory store for other crates' tests, and
//! the file settings it opens with.
#![cfg(feature = "sqlite")]

use chrono::DateTime;
use sparebox_store::sqlite::SqliteStore;
use sparebox_store::{NewAccount, Store, StoreError};

fn account(name: &str) -> NewAccount {
    NewAccount {
        name: name.into(),
        token_hash: name.as_bytes().to_vec(),
        created_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    }
}

#[tokio::test]
async fn in_memory_store_keeps_data_across_calls_and_clones() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let clone = store.clone();

    let created = store.create_account(account("carol")).await.unwrap();

    assert_eq!(
        clone.account_by_token_hash(b"carol").await.unwrap(),
        Some(created)
    );
}

#[tokio::test]
async fn in_memory_stores_are_private_to_each_other() {
    let first = SqliteStore::open_in_memory().await.unwrap();
    let second = SqliteStore::open_in_memory().await.unwrap();

    first.create_account(account("dave")).await.unwrap();

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
