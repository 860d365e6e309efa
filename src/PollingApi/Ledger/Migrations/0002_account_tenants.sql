-- Accounts belong to the tenant that opened them; another tenant's account is unknown to a caller. Accounts opened
-- before this migration belong to the tenant 'default'.
ALTER TABLE accounts ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE accounts ALTER COLUMN tenant DROP DEFAULT;
