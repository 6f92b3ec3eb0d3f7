-- Resource samples of agents, for charts of CPU and memory over the last hours. The server
-- records at most one per agent per minute from heartbeats and deletes old ones.

CREATE TABLE agent_samples (
    seq INTEGER PRIMARY KEY,
    agent TEXT NOT NULL REFERENCES agents (id),
    at INTEGER NOT NULL,
    cpu_percent REAL,
    ram_usage_mb INTEGER CHECK (ram_usage_mb >= 0),
    ram_limit_mb INTEGER CHECK (ram_limit_mb >= 0)
);

CREATE INDEX agent_samples_agent_at ON agent_samples (agent, at);
CREATE INDEX agent_samples_at ON agent_samples (at);
