-- At most one current signing key per algorithm. Replicas (or a CLI run) that started together
-- on an empty store could each create one, and then signed with keys the others did not
-- export. A store written before this rule may hold several: all but the newest (by creation,
-- then kid in byte order, the one the bridge signed with) are retired now and stay published
-- for 90000 s (the longest token lifetime the settings allow, a day, plus an hour of leeway),
-- so every token they signed still verifies. Then a unique index makes a second current key of
-- an algorithm impossible: `INSERT ... ON CONFLICT DO NOTHING` lets one creator win.
UPDATE signing_keys AS old
SET retired_at = EXTRACT(EPOCH FROM now())::BIGINT,
    publish_until = EXTRACT(EPOCH FROM now())::BIGINT + 90000
WHERE old.retired_at IS NULL AND EXISTS (
    SELECT 1 FROM signing_keys AS newer
    WHERE newer.alg = old.alg AND newer.retired_at IS NULL
      AND (newer.created_at > old.created_at
           OR (newer.created_at = old.created_at
               AND newer.kid COLLATE "C" > old.kid COLLATE "C"))
);

CREATE UNIQUE INDEX IF NOT EXISTS signing_keys_one_current
    ON signing_keys (alg) WHERE retired_at IS NULL;
