-- Every accepted command is one row. Status changes are conditional UPDATEs (see OperationStore).
CREATE TABLE operations (
    id               uuid        PRIMARY KEY,
    owner            text        NOT NULL,
    kind             text        NOT NULL,
    status           text        NOT NULL
        CONSTRAINT operations_status_check CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    payload          jsonb       NOT NULL,
    result           jsonb,
    error            jsonb,
    idempotency_key  text,
    request_hash     bytea,
    attempts         integer     NOT NULL DEFAULT 0 CONSTRAINT operations_attempts_check CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL CONSTRAINT operations_max_attempts_check CHECK (max_attempts >= 1),
    next_attempt_at  timestamptz NOT NULL,
    locked_by        text,
    locked_until     timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    progress         jsonb,
    trace_parent     text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    version          integer     NOT NULL DEFAULT 1,
    CONSTRAINT operations_lease_check CHECK ((status = 'running') = (locked_by IS NOT NULL AND locked_until IS NOT NULL))
);

-- The claim statement reads only this index: pending rows in the order they fall due.
CREATE INDEX operations_claimable_idx ON operations (next_attempt_at) WHERE status = 'pending';

-- Lease rescue reads only running rows.
CREATE INDEX operations_lease_idx ON operations (locked_until) WHERE status = 'running';

-- One operation per caller and idempotency key; concurrent duplicates collide here.
CREATE UNIQUE INDEX operations_idempotency_idx ON operations (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Listing a caller's operations, newest first (UUIDv7 ids are time-ordered).
CREATE INDEX operations_owner_id_idx ON operations (owner, id DESC);

-- Completed rows are updated a few times and then deleted: leave room for HOT updates and vacuum early.
ALTER TABLE operations SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
