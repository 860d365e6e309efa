-- Accounts and their double-entry ledger. Amounts are in minor units (cents).
CREATE TABLE accounts (
    id         uuid        PRIMARY KEY,
    currency   text        NOT NULL CONSTRAINT accounts_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    balance    bigint      NOT NULL CONSTRAINT accounts_balance_check CHECK (balance >= 0),
    created_at timestamptz NOT NULL
);

-- Every movement of money: a transfer writes one debit (negative) and one credit (positive) under the
-- transfer's operation id; opening an account writes one credit of the opening balance.
CREATE TABLE ledger_entries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id uuid        NOT NULL,
    account_id   uuid        NOT NULL REFERENCES accounts (id),
    amount       bigint      NOT NULL CONSTRAINT ledger_entries_amount_check CHECK (amount <> 0),
    created_at   timestamptz NOT NULL
);

CREATE INDEX ledger_entries_operation_idx ON ledger_entries (operation_id);
CREATE INDEX ledger_entries_account_idx ON ledger_entries (account_id);
