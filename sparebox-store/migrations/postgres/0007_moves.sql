-- Agents being moved from one host to another. One row per agent while its move runs; the
-- platform drives it forward from command acks and its periodic sweep, so a server that
-- restarts in the middle of a move picks it up from here.

CREATE TABLE agent_moves (
    agent UUID PRIMARY KEY REFERENCES agents (id),
    from_host UUID NOT NULL REFERENCES hosts (id),
    to_host UUID REFERENCES hosts (id),
    phase TEXT NOT NULL,
    command UUID,
    backup UUID,
    reason TEXT NOT NULL,
    keep_stopped BOOLEAN NOT NULL DEFAULT FALSE,
    started_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
