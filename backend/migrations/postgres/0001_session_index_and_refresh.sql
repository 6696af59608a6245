-- The session index (provider sid/sub -> bridge sessions) and the refresh outcomes replicas
-- share. tower-sessions' own table (tower_sessions.session) is created by its store.
CREATE TABLE IF NOT EXISTS session_index (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    session_id TEXT NOT NULL,
    PRIMARY KEY (kind, value, session_id)
);
CREATE INDEX IF NOT EXISTS session_index_by_session ON session_index (session_id);

CREATE TABLE IF NOT EXISTS refresh_outcomes (
    key TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
