-- The dashboard's failure groups and "retry all that match" read failed operations by kind: only failed rows are in
-- this index, so it stays small and reading it does not depend on how many operations succeeded.
CREATE INDEX operations_failed_idx ON operations (kind, id) WHERE status = 'failed';
