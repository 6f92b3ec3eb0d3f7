-- Sparebox store, SQLite flavour.
-- Ids are hyphenated UUID text, timestamps are INTEGER microseconds since the Unix epoch
-- (UTC), JSON is TEXT, hashes and sealed secrets are BLOBs.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE hosts (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    hardware TEXT,
    isolation TEXT,
    daemon_version TEXT,
    last_heartbeat_at INTEGER,
    created_at INTEGER NOT NULL
);

CREATE INDEX hosts_owner ON hosts (owner);

CREATE TABLE agents (
    id TEXT PRIMARY KEY NOT NULL,
    host TEXT NOT NULL REFERENCES hosts (id),
    owner TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('lite', 'standard', 'pro', 'compute')),
    image TEXT NOT NULL,
    openclaw_config TEXT NOT NULL,
    workspace_files TEXT NOT NULL,
    sealed_secrets BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending_deploy', 'deploying', 'running', 'stopped',
        'error', 'host_offline', 'undeploying', 'undeployed')),
    deploy_stage TEXT,
    error TEXT,
    last_report TEXT,
    last_report_at INTEGER,
    created_at INTEGER NOT NULL
);

CREATE INDEX agents_host_state ON agents (host, state);
CREATE INDEX agents_owner ON agents (owner, created_at);

CREATE TABLE agent_commands (
    id TEXT PRIMARY KEY NOT NULL,
    agent TEXT NOT NULL REFERENCES agents (id),
    host TEXT NOT NULL REFERENCES hosts (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'acked', 'failed', 'expired',
        'superseded')),
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    acked_at INTEGER,
    error TEXT,
    late_ack INTEGER NOT NULL DEFAULT 0 CHECK (late_ack IN (0, 1))
);

CREATE INDEX agent_commands_host_status ON agent_commands (host, status, created_at);
CREATE INDEX agent_commands_status_created ON agent_commands (status, created_at);
CREATE INDEX agent_commands_agent ON agent_commands (agent, created_at);

CREATE TABLE agent_events (
    seq INTEGER PRIMARY KEY,
    agent TEXT NOT NULL REFERENCES agents (id),
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    at INTEGER NOT NULL
);

CREATE INDEX agent_events_agent ON agent_events (agent, at);
