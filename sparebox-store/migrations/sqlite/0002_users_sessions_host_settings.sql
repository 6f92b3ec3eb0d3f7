-- Accounts become users: sign-in email, password hash and roles; their bearer tokens move
-- to `api_tokens` (several per account, revocable); browser sessions; host settings.
--
-- SQLite cannot drop a UNIQUE column, so `accounts` is rebuilt with the same ids.

-- Foreign-key checks wait for the end of this migration's transaction: dropping the old
-- table orphans the rows of hosts, agents and api_tokens for a moment, and inserting the
-- same ids into the rebuilt table adopts them again.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    account TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The old single token of each account becomes its first API token.
INSERT INTO api_tokens (id, account, name, token_hash, prefix, created_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4'
             || substr(hex(randomblob(2)), 2) || '-'
             || substr('89ab', 1 + (abs(random()) % 4), 1)
             || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
       id, 'account token', token_hash, '', created_at
FROM accounts;

CREATE TEMP TABLE accounts_before (id TEXT, name TEXT, created_at INTEGER);
INSERT INTO accounts_before SELECT id, name, created_at FROM accounts ORDER BY rowid;

DROP TABLE accounts;

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    -- NULL for accounts created before sign-up existed: they keep their API token only.
    email TEXT UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT,
    -- Role names, comma-separated.
    roles TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Existing accounts could do everything, so they get both roles.
INSERT INTO accounts (id, email, name, password_hash, roles, created_at)
SELECT id, NULL, name, NULL, 'host_owner,deployer', created_at FROM accounts_before;

DROP TABLE accounts_before;

CREATE INDEX api_tokens_account ON api_tokens (account, created_at);

CREATE TABLE sessions (
    id_hash BLOB PRIMARY KEY NOT NULL,
    account TEXT NOT NULL REFERENCES accounts (id),
    csrf_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX sessions_expires ON sessions (expires_at);

ALTER TABLE hosts ADD COLUMN offered_tiers TEXT NOT NULL DEFAULT 'lite,standard,pro,compute';
-- Cents per month by tier name, JSON.
ALTER TABLE hosts ADD COLUMN prices TEXT NOT NULL DEFAULT '{}';
ALTER TABLE hosts ADD COLUMN max_agents INTEGER CHECK (max_agents >= 0);
ALTER TABLE hosts ADD COLUMN region TEXT;
