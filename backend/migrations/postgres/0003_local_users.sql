-- Local accounts (username and password at the bridge itself), one JSON record per name, as
-- in the embedded SQLite store.
CREATE TABLE IF NOT EXISTS local_users (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
