-- What a command needs beyond its kind: its parameters (JSON: which log lines to read,
-- which backup to restore) and, for an upgrade, the image the platform moves the agent to.
-- The agent's own image changes only when the upgrade succeeds.
ALTER TABLE agent_commands ADD COLUMN params JSONB;
ALTER TABLE agent_commands ADD COLUMN image TEXT;

-- Logs a daemon uploaded for a `logs` command, sealed under the platform keyring (never
-- stored in plain text) and deleted once past `expires_at`.
CREATE TABLE command_logs (
    command UUID PRIMARY KEY REFERENCES agent_commands (id),
    sealed BYTEA NOT NULL,
    bytes BIGINT NOT NULL CHECK (bytes >= 0),
    truncated BOOLEAN NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX command_logs_expires ON command_logs (expires_at);
