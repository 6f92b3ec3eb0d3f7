-- Sparebox store, PostgreSQL flavour.
-- `seq` columns give a stable insertion order for rows with equal timestamps.

CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    name TEXT NOT NULL UNIQUE,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE hosts (
    id UUID PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    owner UUID NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    key_hash BYTEA NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    hardware JSONB,
    isolation TEXT,
    daemon_version TEXT,
    last_heartbeat_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX hosts_owner ON hosts (owner);

CREATE TABLE agents (
    id UUID PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    host UUID NOT NULL REFERENCES hosts (id),
    owner UUID NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('lite', 'standard', 'pro', 'compute')),
    image TEXT NOT NULL,
    openclaw_config JSONB NOT NULL,
    workspace_files JSONB NOT NULL,
    sealed_secrets BYTEA NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending_deploy', 'deploying', 'running', 'stopped',
        'error', 'host_offline', 'undeploying', 'undeployed')),
    deploy_stage TEXT,
    error TEXT,
    last_report JSONB,
    last_report_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX agents_host_state ON agents (host, state);
CREATE INDEX agents_owner ON agents (owner, created_at);

CREATE TABLE agent_commands (
    id UUID PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    agent UUID NOT NULL REFERENCES agents (id),
    host UUID NOT NULL REFERENCES hosts (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'acked', 'failed', 'expired',
        'superseded')),
    created_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ,
    acked_at TIMESTAMPTZ,
    error TEXT,
    late_ack BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX agent_commands_host_status ON agent_commands (host, status, created_at);
CREATE INDEX agent_commands_status_created ON agent_commands (status, created_at);
CREATE INDEX agent_commands_agent ON agent_commands (agent, created_at);

CREATE TABLE agent_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent UUID NOT NULL REFERENCES agents (id),
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);

CREATE INDEX agent_events_agent ON agent_events (agent, at);
