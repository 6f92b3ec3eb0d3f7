-- What a command needs beyond its kind: its parameters (JSON: which log lines to read,
-- which backup to restore) and, for an upgrade, the image the platform moves the agent to.
-- The agent's own image changes only when the upgrade succeeds.
ALTER TABLE agent_commands ADD COLUMN params TEXT;
ALTER TABLE agent_commands ADD COLUMN image TEXT;

-- Logs a daemon uploaded for a `logs` command, sealed under the platform keyring (never
-- stored in plain text) and deleted once past `expires_at`.
CREATE TABLE command_logs (
    command TEXT PRIMARY KEY NOT NULL REFERENCES agent_commands (id),
    sealed BLOB NOT NULL,
    bytes INTEGER NOT NULL CHECK (bytes >= 0),
    truncated INTEGER NOT NULL CHECK (truncated IN (0, 1)),
    uploaded_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX command_logs_expires ON command_logs (expires_at);
