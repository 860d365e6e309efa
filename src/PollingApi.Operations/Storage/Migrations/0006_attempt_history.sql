-- Why is it still retrying? Every statement that ends an attempt appends what happened to the operation's history:
-- kept in the row, so it is purged with the operation and costs no row or index entry of its own.
ALTER TABLE operations ADD COLUMN attempt_history jsonb;

-- One entry: the attempt's number, when it started and ended, how (succeeded, transient_failure, permanent_failure,
-- cancelled, lease_lost, timed_out), the safe problem object, the node that ran it and the trace it belongs to. At most
-- the last 100 entries are kept (replays keep adding to one history).
CREATE FUNCTION operations_attempt_ended(history jsonb, attempt integer, started_at timestamptz, ended_at timestamptz,
                                         outcome text, error jsonb, node text, trace_parent text)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN jsonb_array_length(coalesce(history, '[]'::jsonb)) >= 100 THEN history - 0 ELSE coalesce(history, '[]'::jsonb) END)
        || jsonb_build_array(jsonb_build_object(
               'attempt', attempt,
               'startedAt', to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'endedAt', to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'outcome', outcome, 'error', error,
               'node', node, 'traceId', nullif(split_part(coalesce(trace_parent, ''), '-', 2), '')))
$$;
