-- Agents being moved from one host to another. One row per agent while its move runs; the
-- platform drives it forward from command acks and its periodic sweep, so a server that
-- restarts in the middle of a move picks it up from here.

CREATE TABLE agent_moves (
    agent TEXT PRIMARY KEY NOT NULL REFERENCES agents (id),
    from_host TEXT NOT NULL REFERENCES hosts (id),
    to_host TEXT REFERENCES hosts (id),
    phase TEXT NOT NULL,
    command TEXT,
    backup TEXT,
    reason TEXT NOT NULL,
    keep_stopped INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
