-- Accounts become users: sign-in email, password hash and roles; their bearer tokens move
-- to `api_tokens` (several per account, revocable); browser sessions; host settings.

-- NULL email: an account created before sign-up existed, which keeps its API token only.
ALTER TABLE accounts ADD COLUMN email TEXT UNIQUE;
ALTER TABLE accounts ADD COLUMN password_hash TEXT;
-- Role names, comma-separated. Existing accounts could do everything.
ALTER TABLE accounts ADD COLUMN roles TEXT NOT NULL DEFAULT 'host_owner,deployer';
ALTER TABLE accounts ALTER COLUMN roles DROP DEFAULT;
ALTER TABLE accounts DROP CONSTRAINT accounts_name_key;

CREATE TABLE api_tokens (
    id UUID PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    account UUID NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- The old single token of each account becomes its first API token.
INSERT INTO api_tokens (id, account, name, token_hash, prefix, created_at)
SELECT gen_random_uuid(), id, 'account token', token_hash, '', created_at
FROM accounts ORDER BY seq;

ALTER TABLE accounts DROP COLUMN token_hash;

CREATE INDEX api_tokens_account ON api_tokens (account, created_at);

CREATE TABLE sessions (
    id_hash BYTEA PRIMARY KEY,
    account UUID NOT NULL REFERENCES accounts (id),
    csrf_hash BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX sessions_expires ON sessions (expires_at);

ALTER TABLE hosts ADD COLUMN offered_tiers TEXT NOT NULL DEFAULT 'lite,standard,pro,compute';
-- Cents per month by tier name.
ALTER TABLE hosts ADD COLUMN prices JSONB NOT NULL DEFAULT '{}';
ALTER TABLE hosts ADD COLUMN max_agents INTEGER CHECK (max_agents >= 0);
ALTER TABLE hosts ADD COLUMN region TEXT;
