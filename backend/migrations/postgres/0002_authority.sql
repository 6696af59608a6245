-- The bridge's token authority, shared by every replica: signing keys (private halves sealed
-- under the key-encryption key), service users with their public keys, and the replay records
-- of their assertions. The same tables as in the embedded SQLite store.
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    sealed_private BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    publish_until BIGINT
);

CREATE TABLE IF NOT EXISTS service_users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- JSON arrays of strings, as in SQLite.
    roles TEXT NOT NULL,
    groups_ TEXT NOT NULL,
    permissions TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS service_user_keys (
    key_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES service_users(id),
    alg TEXT NOT NULL,
    public_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS service_user_keys_by_user ON service_user_keys (user_id);

CREATE TABLE IF NOT EXISTS used_assertions (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX IF NOT EXISTS used_assertions_expiry ON used_assertions (expires_at);
