-- Billing: checkouts waiting for payment, subscriptions, and the payment provider events
-- already applied (so a replayed event changes nothing).

CREATE TABLE checkouts (
    id TEXT PRIMARY KEY NOT NULL,
    -- The agent created when the checkout completes; its secrets are sealed to this id.
    agent TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL REFERENCES accounts (id),
    host TEXT NOT NULL REFERENCES hosts (id),
    name TEXT NOT NULL,
    tier TEXT NOT NULL,
    image TEXT NOT NULL,
    openclaw_config TEXT NOT NULL,
    workspace_files TEXT NOT NULL,
    sealed_secrets BLOB NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    created_at INTEGER NOT NULL,
    completed_at INTEGER
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY NOT NULL,
    customer TEXT NOT NULL,
    checkout TEXT NOT NULL UNIQUE REFERENCES checkouts (id),
    owner TEXT NOT NULL REFERENCES accounts (id),
    -- No foreign key: a needs_refund subscription's agent was never created.
    agent TEXT NOT NULL,
    host TEXT NOT NULL REFERENCES hosts (id),
    tier TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX subscriptions_owner ON subscriptions (owner, created_at);

CREATE TABLE billing_events (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
