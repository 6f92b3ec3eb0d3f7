-- Resource samples of agents, for charts of CPU and memory over the last hours. The server
-- records at most one per agent per minute from heartbeats and deletes old ones.

CREATE TABLE agent_samples (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent UUID NOT NULL REFERENCES agents (id),
    at TIMESTAMPTZ NOT NULL,
    cpu_percent DOUBLE PRECISION,
    ram_usage_mb BIGINT CHECK (ram_usage_mb >= 0),
    ram_limit_mb BIGINT CHECK (ram_limit_mb >= 0)
);

CREATE INDEX agent_samples_agent_at ON agent_samples (agent, at);
CREATE INDEX agent_samples_at ON agent_samples (at);
