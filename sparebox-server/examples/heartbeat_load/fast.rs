//! Fast seeding: copies template hosts, seeded through the platform, in plain SQL.
//!
//! The platform path costs a handful of transactions per agent, about 110 hosts a second
//! on SQLite. Here hosts `0..TEMPLATES` are seeded through the platform (host `i` has
//! `i % 9` agents, so each agent count has one template) and every further host `i` is a
//! copy of template `i % TEMPLATES`, written in one transaction by the database's own
//! command-line client (`sqlite3` or `psql`), since the example has no SQL driver of its
//! own. Each copy gets a fresh host id, host key (stored as the server stores it: SHA-256
//! of the key, and its first characters), agent ids, sealed secrets with a fresh gateway
//! token (sealed to the new agent id under the same keyring), command ids, and names
//! `load host {i}` and `load agent {i}.{j}`; every other column is copied from the
//! template as the platform wrote it, whatever columns the tables have. Agent ids inside
//! an agent's text and JSON columns (its last status report names it, and its container
//! id is derived from it) are rewritten to the copy's.
//!
//! Tables the copy does not know how to map must be empty after the templates are seeded;
//! otherwise it stops rather than produce a database the platform would not have.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::process::{Command, Stdio};
use std::time::Instant;

use rand::RngCore;
use sha2::{Digest, Sha256};
use sparebox_core::{AgentId, HostId, Secret};
use sparebox_server::Keyring;

use crate::seed::SeededHost;

/// Template hosts seeded through the platform: one per agent count, 0 to 8.
pub const TEMPLATES: u64 = 9;

/// Prefix of host keys, as the server generates them.
const HOST_KEY_PREFIX: &str = "sbx_host_";

/// Random characters after the prefix that the server keeps to recognise a host key.
const KEY_PREFIX_SHOWN: usize = 6;

/// The secret the platform adds to every agent: the gateway's auth token.
const GATEWAY_TOKEN_ENV: &str = "OPENCLAW_GATEWAY_TOKEN";

/// How long `sqlite3` waits for a lock: the platform's connections, just let go of, may
/// still be checkpointing the write-ahead log as they close.
const SQLITE_TIMEOUT: &str = ".timeout 30000";

/// Rows per `INSERT ... VALUES` statement of the mapping tables.
const ROWS_PER_INSERT: usize = 500;

/// Tables the copy maps, with how their rows hang off a host: copied per host (`hosts`),
/// per agent (`agents` and the tables with an `agent` column), or left alone (one account
/// for all hosts).
const HOST_TABLES: &[&str] = &["hosts"];
const AGENT_TABLES: &[&str] = &["agents", "agent_commands", "agent_events", "agent_samples"];
const SHARED_TABLES: &[&str] = &["accounts", "api_tokens", "sessions", "_sqlx_migrations"];

/// Which database the copy writes to, and how to reach it.
enum Backend {
    Sqlite(String),
    Postgres(String),
}

impl Backend {
    fn new(database: &str) -> Self {
        if database.starts_with("postgres://") || database.starts_with("postgresql://") {
            Self::Postgres(database.to_owned())
        } else {
            Self::Sqlite(database.to_owned())
        }
    }

    /// The client, ready to read a script on its standard input and stop at the first error.
    fn client(&self) -> Command {
        match self {
            Self::Sqlite(path) => {
                let mut command = Command::new("sqlite3");
                command.args(["-bail", "-batch", "-cmd", SQLITE_TIMEOUT, path]);
                command
            }
            Self::Postgres(url) => {
                let mut command = Command::new("psql");
                command.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url]);
                command
            }
        }
    }

    /// Rows of one query, columns split on `|`.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let mut command = match self {
            Self::Sqlite(path) => {
                let mut command = Command::new("sqlite3");
                command
                    .args(["-bail", "-batch", "-list", "-cmd", SQLITE_TIMEOUT])
                    .args([path, sql]);
                command
            }
            Self::Postgres(url) => {
                let mut command = Command::new("psql");
                command.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql]);
                command
            }
        };
        let output = command
            .output()
            .unwrap_or_else(|err| panic!("run {command:?} (is it installed?): {err}"));
        assert!(
            output.status.success(),
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("query output is UTF-8")
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split('|').map(str::to_owned).collect())
            .collect()
    }

    /// Every table of the schema.
    fn tables(&self) -> Vec<String> {
        let sql = match self {
            Self::Sqlite(_) => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Self::Postgres(_) => {
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name"
            }
        };
        self.query(sql)
            .into_iter()
            .map(|row| row[0].clone())
            .collect()
    }

    /// The columns of `table` an insert must set (not generated ones), with whether each
    /// holds text (or JSON) in which an agent id may appear.
    fn columns(&self, table: &str) -> Vec<(String, bool)> {
        match self {
            Self::Sqlite(_) => self
                .query(&format!(
                    "SELECT name, upper(type), pk FROM pragma_table_info('{table}') ORDER BY cid"
                ))
                .into_iter()
                // An INTEGER PRIMARY KEY is the rowid: the copy gets the next one.
                .filter(|row| !(row[1] == "INTEGER" && row[2] == "1"))
                .map(|row| (row[0].clone(), row[1] == "TEXT"))
                .collect(),
            Self::Postgres(_) => self
                .query(&format!(
                    "SELECT column_name, data_type FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = '{table}' \
                     AND is_identity = 'NO' AND is_generated = 'NEVER' \
                     ORDER BY ordinal_position"
                ))
                .into_iter()
                .map(|row| {
                    let text = matches!(row[1].as_str(), "text" | "jsonb" | "json");
                    (row[0].clone(), text)
                })
                .collect(),
        }
    }

    /// A literal of `bytes` in this database's SQL.
    fn blob(&self, bytes: &[u8]) -> String {
        match self {
            Self::Sqlite(_) => format!("X'{}'", hex::encode(bytes)),
            Self::Postgres(_) => format!("'\\x{}'::bytea", hex::encode(bytes)),
        }
    }

    /// An expression giving a fresh random (version 4) UUID for every row.
    fn fresh_uuid(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => {
                "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' \
                 || substr(hex(randomblob(2)), 2) || '-' \
                 || substr('89ab', 1 + (abs(random()) % 4), 1) \
                 || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
            }
            Self::Postgres(_) => "gen_random_uuid()",
        }
    }

    /// `expr` (a text or JSON column of a template agent row `t`) with the template's
    /// agent id replaced by the copy's (`m.id`), hyphenated and plain.
    fn rewrite_agent_id(&self, expr: &str, json: bool) -> String {
        match self {
            Self::Sqlite(_) => format!(
                "replace(replace({expr}, t.id, m.id), \
                 replace(t.id, '-', ''), replace(m.id, '-', ''))"
            ),
            Self::Postgres(_) => {
                let replaced = format!(
                    "replace(replace({expr}::text, t.id::text, m.id::text), \
                     replace(t.id::text, '-', ''), replace(m.id::text, '-', ''))"
                );
                if json {
                    format!("{replaced}::jsonb")
                } else {
                    replaced
                }
            }
        }
    }

    /// The mapping tables' definitions.
    fn mapping_tables(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => {
                "CREATE TEMP TABLE seed_hosts (template TEXT NOT NULL, id TEXT NOT NULL, \
                     name TEXT NOT NULL, key_hash BLOB NOT NULL, key_prefix TEXT NOT NULL);\n\
                 CREATE TEMP TABLE seed_agents (template TEXT NOT NULL, id TEXT NOT NULL, \
                     host TEXT NOT NULL, name TEXT NOT NULL, sealed_secrets BLOB NOT NULL);\n"
            }
            Self::Postgres(_) => {
                "CREATE TEMP TABLE seed_hosts (template UUID NOT NULL, id UUID NOT NULL, \
                     name TEXT NOT NULL, key_hash BYTEA NOT NULL, key_prefix TEXT NOT NULL);\n\
                 CREATE TEMP TABLE seed_agents (template UUID NOT NULL, id UUID NOT NULL, \
                     host UUID NOT NULL, name TEXT NOT NULL, sealed_secrets BYTEA NOT NULL);\n"
            }
        }
    }
}

/// Copies `templates` (hosts `0..TEMPLATES`, in order) to hosts `range`; returns the copies.
pub fn replicate(
    database: &str,
    keyring: &Keyring,
    templates: &[SeededHost],
    range: Range<u64>,
) -> Vec<SeededHost> {
    assert_eq!(
        templates.len() as u64,
        TEMPLATES,
        "one template per agent count"
    );
    let started = Instant::now();
    let backend = Backend::new(database);
    let tables = backend.tables();
    check_unmapped_tables(&backend, &tables);

    let mut client = backend
        .client()
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("start {:?} (is it installed?): {err}", backend.client()));
    let mut script = BufWriter::with_capacity(1 << 20, client.stdin.take().expect("stdin"));
    if let Backend::Sqlite(_) = backend {
        // A benchmark database: a crash while seeding means seeding again.
        writeln!(script, "PRAGMA synchronous = OFF;").expect("write script");
    }
    writeln!(script, "BEGIN;\n{}", backend.mapping_tables()).expect("write script");

    let mut copies = Vec::with_capacity(range.end.saturating_sub(range.start) as usize);
    let mut host_rows = Vec::new();
    let mut agent_rows = Vec::new();
    for i in range {
        let template = &templates[(i % TEMPLATES) as usize];
        let copy = SeededHost {
            id: HostId::new_random(),
            key: format!("{HOST_KEY_PREFIX}{}", hex::encode(random_bytes())),
            agents: template
                .agents
                .iter()
                .map(|_| AgentId::new_random())
                .collect(),
        };
        let key_prefix: String = copy
            .key
            .chars()
            .take(HOST_KEY_PREFIX.len() + KEY_PREFIX_SHOWN)
            .collect();
        host_rows.push(format!(
            "('{}', '{}', 'load host {i}', {}, '{key_prefix}')",
            template.id,
            copy.id,
            backend.blob(&Sha256::digest(copy.key.as_bytes())),
        ));
        for (j, (from, to)) in template.agents.iter().zip(&copy.agents).enumerate() {
            let secrets = BTreeMap::from([(
                GATEWAY_TOKEN_ENV.to_owned(),
                Secret::new(hex::encode(random_bytes())),
            )]);
            let sealed = keyring
                .seal_secrets(*to, &secrets)
                .expect("seal agent secrets");
            agent_rows.push(format!(
                "('{from}', '{to}', '{}', 'load agent {i}.{j}', {})",
                copy.id,
                backend.blob(&sealed),
            ));
        }
        if host_rows.len() >= ROWS_PER_INSERT {
            insert(&mut script, "seed_hosts", &mut host_rows);
        }
        if agent_rows.len() >= ROWS_PER_INSERT {
            insert(&mut script, "seed_agents", &mut agent_rows);
        }
        copies.push(copy);
    }
    insert(&mut script, "seed_hosts", &mut host_rows);
    insert(&mut script, "seed_agents", &mut agent_rows);

    for table in HOST_TABLES.iter().chain(AGENT_TABLES) {
        if tables.iter().any(|t| t == table) {
            writeln!(script, "{}", copy_statement(&backend, table)).expect("write script");
        }
    }
    writeln!(script, "COMMIT;").expect("write script");
    let generated = started.elapsed();
    drop(script.into_inner().expect("flush script"));
    let status = client.wait().expect("wait for the database client");
    assert!(status.success(), "the database client failed: {status}");
    eprintln!(
        "copied {} hosts in {:.1?} ({generated:.1?} of it generating rows)",
        copies.len(),
        started.elapsed()
    );
    copies
}

/// Stops when a table the copy does not map holds rows: a copy would then lack them.
fn check_unmapped_tables(backend: &Backend, tables: &[String]) {
    let known = |t: &String| {
        HOST_TABLES
            .iter()
            .chain(AGENT_TABLES)
            .chain(SHARED_TABLES)
            .any(|k| k == t)
    };
    let unmapped: Vec<&String> = tables.iter().filter(|t| !known(t)).collect();
    if unmapped.is_empty() {
        return;
    }
    let counts: Vec<String> = unmapped
        .iter()
        .map(|t| format!("SELECT '{t}', count(*) FROM {t}"))
        .collect();
    for row in backend.query(&counts.join(" UNION ALL ")) {
        assert_eq!(
            row[1], "0",
            "table {} has rows after seeding the templates; the fast seeder does not copy it",
            row[0]
        );
    }
}

/// One `INSERT ... SELECT` copying `table`'s rows of the templates to their copies.
fn copy_statement(backend: &Backend, table: &str) -> String {
    let columns = backend.columns(table);
    let per_host = HOST_TABLES.contains(&table);
    let exprs: Vec<String> = columns
        .iter()
        .map(|(column, text)| match (per_host, table, column.as_str()) {
            (true, _, "id" | "name" | "key_hash" | "key_prefix") => format!("m.{column}"),
            (false, "agents", "id" | "host" | "name" | "sealed_secrets") => format!("m.{column}"),
            (false, "agents", _) if *text => {
                let json = backend_is_json(backend, table, column);
                backend.rewrite_agent_id(&format!("t.{column}"), json)
            }
            (false, _, "id") => backend.fresh_uuid().to_owned(),
            (false, _, "agent") => "m.id".to_owned(),
            (false, _, "host") => "m.host".to_owned(),
            _ => format!("t.{column}"),
        })
        .collect();
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let (mapping, join) = match (per_host, table) {
        (true, _) => ("seed_hosts", "t.id"),
        (false, "agents") => ("seed_agents", "t.id"),
        (false, _) => ("seed_agents", "t.agent"),
    };
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM {table} t JOIN {mapping} m ON {join} = m.template;",
        names.join(", "),
        exprs.join(", "),
    )
}

/// Whether `column` of `table` is JSON on PostgreSQL (SQLite keeps JSON as text).
fn backend_is_json(backend: &Backend, table: &str, column: &str) -> bool {
    match backend {
        Backend::Sqlite(_) => false,
        Backend::Postgres(_) => backend
            .query(&format!(
                "SELECT data_type FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' \
                 AND column_name = '{column}'"
            ))
            .first()
            .is_some_and(|row| row[0] == "jsonb" || row[0] == "json"),
    }
}

/// Writes the pending `rows` into the mapping `table` and clears them.
fn insert(script: &mut impl Write, table: &str, rows: &mut Vec<String>) {
    if rows.is_empty() {
        return;
    }
    writeln!(script, "INSERT INTO {table} VALUES {};", rows.join(",\n")).expect("write script");
    rows.clear();
}

/// 32 random bytes, as the server draws for host keys and gateway tokens.
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}
