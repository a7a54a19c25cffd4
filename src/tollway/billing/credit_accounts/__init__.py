"""Money credit use cases above invoicing: grants, balances, the ledger and top-up invoices (see README.md)."""
