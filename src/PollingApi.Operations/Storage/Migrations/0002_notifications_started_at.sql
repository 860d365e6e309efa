-- When the current attempt started: the basis of the run-time statistics behind Retry-After.
ALTER TABLE operations ADD COLUMN started_at timestamptz;

-- Retention purges and run-time statistics read terminal rows by completion time.
CREATE INDEX operations_completed_idx ON operations (completed_at) WHERE completed_at IS NOT NULL;

-- One notification path per node: every node LISTENs once and fans notifications out in-process.
--   pollingapi_operation_done:   an operation reached a terminal status (wakes long-polls and Prefer: wait)
--   pollingapi_operation_cancel: cancellation of a running operation was requested (fires its handler's token)
CREATE FUNCTION operations_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('succeeded', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status THEN
        PERFORM pg_notify('pollingapi_operation_done', NEW.id::text);
    ELSIF NEW.status = 'running' AND NEW.cancel_requested AND NOT OLD.cancel_requested THEN
        PERFORM pg_notify('pollingapi_operation_cancel', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER operations_notify
    AFTER UPDATE ON operations
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.cancel_requested IS DISTINCT FROM NEW.cancel_requested)
    EXECUTE FUNCTION operations_notify();
