-- Billing: checkouts waiting for payment, subscriptions, and the payment provider events
-- already applied (so a replayed event changes nothing).

CREATE TABLE checkouts (
    id UUID PRIMARY KEY,
    -- The agent created when the checkout completes; its secrets are sealed to this id.
    agent UUID NOT NULL UNIQUE,
    owner UUID NOT NULL REFERENCES accounts (id),
    host UUID NOT NULL REFERENCES hosts (id),
    name TEXT NOT NULL,
    tier TEXT NOT NULL,
    image TEXT NOT NULL,
    openclaw_config JSONB NOT NULL,
    workspace_files JSONB NOT NULL,
    sealed_secrets BYTEA NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    customer TEXT NOT NULL,
    checkout UUID NOT NULL UNIQUE REFERENCES checkouts (id),
    owner UUID NOT NULL REFERENCES accounts (id),
    -- No foreign key: a needs_refund subscription's agent was never created.
    agent UUID NOT NULL,
    host UUID NOT NULL REFERENCES hosts (id),
    tier TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    status TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX subscriptions_owner ON subscriptions (owner, created_at);

CREATE TABLE billing_events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);
