-- DPoP (RFC 9449): proofs already used, shared by every replica. A row is the SHA-256 of the
-- key's thumbprint and the proof's `jti`, kept until the proof would be refused for its age
-- anyway; the bridge deletes expired rows every few seconds. The same table as in SQLite.
CREATE TABLE IF NOT EXISTS dpop_proofs (
    key BYTEA PRIMARY KEY,
    until BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS dpop_proofs_until ON dpop_proofs (until);

-- Secrets every replica must share, made by whichever replica needs one first (the DPoP
-- server nonces' HMAC key).
CREATE TABLE IF NOT EXISTS shared_secrets (
    name TEXT PRIMARY KEY,
    secret BYTEA NOT NULL
);
