-- Backups of agents' state. The archive itself lives in a file the server writes (sealed
-- at rest); a row says which agent and host it came from, how large it is and its digest.
-- The id is the backup command's id.

CREATE TABLE backups (
    id TEXT PRIMARY KEY NOT NULL,
    agent TEXT NOT NULL REFERENCES agents (id),
    host TEXT NOT NULL REFERENCES hosts (id),
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX backups_agent ON backups (agent, created_at);

-- A deployer's schedule: a backup every interval_hours, counted from the last one queued.
CREATE TABLE backup_schedules (
    agent TEXT PRIMARY KEY NOT NULL REFERENCES agents (id),
    interval_hours INTEGER NOT NULL CHECK (interval_hours > 0),
    last_queued_at INTEGER
);
