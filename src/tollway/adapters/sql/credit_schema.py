"""The money credit tables (SQLAlchemy Core, on schema.metadata). Change them only with a migration."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text, UniqueConstraint

from tollway.adapters.sql.schema import BigKey, metadata

credit_grants = Table(
    "credit_grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("funding_method", String(16), nullable=False, comment="none | invoice | external"),
    Column("priority", Integer, nullable=False),
    Column("effective_us", BigInteger, nullable=False),
    Column("expires_after", String(64)),
    Column("expires_us", BigInteger),
    Column("grant_key", String(255), comment="idempotency key, unique per customer"),
    Column("features", Text, comment="JSON array of feature keys; NULL = every line"),
    Column("price_minor", BigInteger),
    Column("invoice_id", String(64)),
    Column("status", String(16), nullable=False, comment="pending | active | expired | voided"),
    Column("metadata", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("voided_us", BigInteger),
    Column("expired_us", BigInteger),
    UniqueConstraint("customer_id", "grant_key", name="uq_credit_grants_key"),
    Index("ix_credit_grants_customer", "customer_id", "created_us"),
)

credit_ledger = Table(
    "credit_ledger",
    metadata,
    Column("seq", BigKey, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False),
    Column("grant_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False, comment="funded | consumed | expired | voided"),
    Column("amount_minor", BigInteger, nullable=False, comment="signed"),
    Column("currency", String(3), nullable=False),
    Column("balance_before_minor", BigInteger, nullable=False),
    Column("balance_after_minor", BigInteger, nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("invoice_id", String(64)),
    Column("invoice_line_id", String(96)),
    Column("once_key", String(200), comment="funded/expired/voided: grant:kind (once each)"),
    UniqueConstraint("id", name="uq_credit_ledger_id"),
    UniqueConstraint("once_key", name="uq_credit_ledger_once"),
    UniqueConstraint("grant_id", "invoice_line_id", name="uq_credit_ledger_line"),
    Index("ix_credit_ledger_customer", "customer_id", "seq"),
    Index("ix_credit_ledger_grant", "grant_id"),
)

unit_grants = Table(
    "unit_grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("feature_key", String(255), nullable=False),
    Column("amount", Text, nullable=False, comment="exact decimal"),
    Column("priority", Integer, nullable=False),
    Column("effective_us", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expiration_duration", String(8)),
    Column("expiration_count", Integer),
    Column("expires_us", BigInteger),
    Column("min_rollover", Text, nullable=False),
    Column("max_rollover", Text),
    Column("recurrence_interval", String(64)),
    Column("recurrence_anchor_us", BigInteger),
    Column("metadata", Text, nullable=False),
    Column("voided_us", BigInteger),
    Index("ix_unit_grants_customer", "customer_id", "feature_key", "created_us"),
)

entitlement_resets = Table(
    "entitlement_resets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("feature_key", String(255), nullable=False),
    Column("effective_us", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("retain_anchor", Boolean, nullable=False),
    Column("preserve_overage", Boolean, nullable=False),
    Index("ix_entitlement_resets_customer", "customer_id", "feature_key", "effective_us"),
)

credit_recharge = Table(
    "credit_recharge",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("threshold_minor", BigInteger, nullable=False),
    Column("recharge_to_minor", BigInteger, comment="top up to this balance, or"),
    Column("amount_minor", BigInteger, comment="a fixed amount"),
    Column("armed", Integer, nullable=False, comment="1: the next crossing below the threshold recharges"),
    Column("crossings", Integer, nullable=False, comment="crossings so far: the grant key auto-recharge:<n>"),
)
