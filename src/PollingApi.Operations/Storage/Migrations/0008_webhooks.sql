-- Webhook subscriptions: a tenant's URL for the events it chose. The secret signs every delivery (Standard Webhooks).
CREATE TABLE webhook_subscriptions (
    id              uuid        PRIMARY KEY,
    tenant          text        NOT NULL,
    url             text        NOT NULL,
    events          text[]      NOT NULL,
    kinds           text[],
    secret          text        NOT NULL,
    created_at      timestamptz NOT NULL,
    disabled_at     timestamptz,
    disabled_reason text
);

CREATE INDEX webhook_subscriptions_tenant_idx ON webhook_subscriptions (tenant) WHERE disabled_at IS NULL;

-- A UUID version 7 (48 bits of Unix milliseconds, then random bits), as the API makes its operation ids, for the
-- deliveries the trigger below stores.
CREATE FUNCTION operations_uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                  PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
           52, 1), 53, 1), 'hex')::uuid
$$;

-- Stores one delivery operation (kind webhooks.deliver) of the event for a subscription.
CREATE FUNCTION webhooks_enqueue(subscription webhook_subscriptions, event_type text, occurred_at timestamptz, data jsonb,
                                 trace_parent text)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    delivery uuid := operations_uuid_v7();
BEGIN
    INSERT INTO operations (id, owner, kind, status, payload, attempts, max_attempts, next_attempt_at, trace_parent,
                            created_at, updated_at)
    VALUES (delivery, subscription.tenant, 'webhooks.deliver', 'pending',
            jsonb_build_object('subscriptionId', subscription.id, 'type', event_type,
                               'occurredAt', to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'data', data),
            0, 10, now(), trace_parent, now(), now());
    RETURN delivery;
END
$$;

-- The deliveries of an operation's end are stored by the statement that ends it, in its transaction: a committed end
-- has its deliveries, and a rolled-back one has none, whichever code path (worker, cancel, lease rescue) ended it.
CREATE FUNCTION webhooks_operation_ended() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    subscription webhook_subscriptions;
    event_type text := 'operation.' || NEW.status;
BEGIN
    FOR subscription IN
        SELECT * FROM webhook_subscriptions
        WHERE tenant = NEW.owner AND disabled_at IS NULL AND event_type = ANY (events)
          AND (kinds IS NULL OR NEW.kind = ANY (kinds))
    LOOP
        PERFORM webhooks_enqueue(subscription, event_type, coalesce(NEW.completed_at, now()), jsonb_build_object(
            'id', NEW.id, 'kind', NEW.kind, 'tenant', NEW.owner, 'status', NEW.status, 'createdAt', NEW.created_at,
            'updatedAt', NEW.updated_at, 'completedAt', NEW.completed_at, 'attempts', NEW.attempts,
            'maxAttempts', NEW.max_attempts, 'cancelRequested', NEW.cancel_requested, 'progress', NEW.progress,
            'result', NEW.result, 'error', NEW.error, 'version', NEW.version), NEW.trace_parent);
    END LOOP;
    RETURN NULL;
END
$$;

-- Fires only for an end (the WHEN clause is checked without calling the function), and never for a delivery's own end.
CREATE TRIGGER webhooks_operation_ended AFTER UPDATE ON operations FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.kind <> 'webhooks.deliver')
    EXECUTE FUNCTION webhooks_operation_ended();
