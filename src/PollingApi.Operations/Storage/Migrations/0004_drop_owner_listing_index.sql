-- Every status change of an operation writes a new row version, and every version gets an entry in every index
-- whose predicate it meets: an index on all rows costs two to three entries per operation. With one owner (there
-- is no authentication yet) the primary key, read backwards, serves the newest-first listing just as well.
-- Bring a per-owner index back when callers are told apart.
DROP INDEX operations_owner_id_idx;
