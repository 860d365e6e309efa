-- Callers are told apart now: every operation belongs to the tenant that submitted it (the owner column), and lists are
-- per tenant again. Rows stored before this migration belong to the tenant 'default'.
CREATE INDEX operations_owner_id_idx ON operations (owner, id DESC);

-- API keys: only a SHA-256 hash of each key is kept (the key itself is shown once, when it is created). Keys are 256
-- random bits, so a fast hash is enough: there is nothing to guess.
CREATE TABLE api_keys (
    id         uuid        PRIMARY KEY,
    tenant     text        NOT NULL,
    name       text        NOT NULL,
    scopes     text[]      NOT NULL,
    key_hash   bytea       NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE,
    key_prefix text        NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
