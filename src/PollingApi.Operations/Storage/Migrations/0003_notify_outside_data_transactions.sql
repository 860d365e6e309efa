-- Notifications move out of the data transactions: a transaction that NOTIFYs holds a database-wide lock
-- through its commit, which would serialise every submit and completion behind one WAL flush at a time.
-- The nodes now publish coalesced notifications right after their own commits (OperationNotifier).
DROP TRIGGER operations_notify ON operations;
DROP FUNCTION operations_notify();
