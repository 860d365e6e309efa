-- Queue controls: per-kind settings operators change at run time, operation priorities, and a claim that takes turns
-- between tenants.

-- A kind without a row has the defaults: not paused, no cluster-wide cap, no attempt timeout, priority 5.
CREATE TABLE operation_kinds (
    kind                    text        PRIMARY KEY,
    paused                  boolean     NOT NULL DEFAULT false,
    max_concurrency         integer     CONSTRAINT operation_kinds_max_concurrency_check CHECK (max_concurrency >= 1),
    attempt_timeout_seconds integer     CONSTRAINT operation_kinds_attempt_timeout_check CHECK (attempt_timeout_seconds >= 1),
    priority                smallint    NOT NULL DEFAULT 5 CONSTRAINT operation_kinds_priority_check CHECK (priority BETWEEN 0 AND 9),
    updated_at              timestamptz NOT NULL
);

-- 0 (lowest) to 9; a constant default, so adding the column rewrites nothing.
ALTER TABLE operations ADD COLUMN priority smallint NOT NULL DEFAULT 5
    CONSTRAINT operations_priority_check CHECK (priority BETWEEN 0 AND 9);

-- The order in which due operations of one queue are claimed: when they fell due, moved earlier by one minute per
-- priority level. A priority-9 operation goes before a priority-0 one that fell due up to nine minutes before it, and
-- never before one that has waited longer than that: a low priority waits, it does not starve.
-- Subtracting whole minutes does not depend on the time zone, so the function is truly immutable (the operator it
-- uses is only stable because intervals may hold months and days). Being immutable it can key an index, and as its
-- body is not, PostgreSQL does not inline it: the claim names the same call and the planner matches the index.
CREATE FUNCTION operations_claim_key(next_attempt_at timestamptz, priority smallint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN next_attempt_at - priority * interval '1 minute';

-- One queue per tenant and kind, each in claim order. The claim walks the queues (one index descent each) and takes
-- turns between tenants, so a tenant's backlog cannot hold back another tenant's first operation.
CREATE INDEX operations_queue_idx ON operations (owner, kind, operations_claim_key(next_attempt_at, priority))
    WHERE status = 'pending';

DROP INDEX operations_claimable_idx;
