"""The SQL schema (SQLAlchemy Core). Change it only together with a new Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Autoincrementing 64-bit key on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigKey = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("seq", BigKey, primary_key=True, autoincrement=True),
    Column("source", String(255), nullable=False),
    Column("id", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("time_us", BigInteger, nullable=False, comment="event time, microseconds since the epoch, UTC"),
    Column("stored_us", BigInteger, nullable=False, comment="when the store accepted it (ingested_us before 0020)"),
    Column("data", Text, nullable=False, comment="the CloudEvent data object, JSON"),
    # Migration 0020: duplicates are looked up by this hash and told apart by (source, id) (ingest.py).
    Column("key_hash", Integer, nullable=False, comment="CRC-32 of source then id, signed (ingest.key_hash)"),
    Index("ix_events_key_hash", "key_hash"),
    Index("ix_events_type_time", "type", "time_us"),
    Index("ix_events_type_subject_time", "type", "subject", "time_us"),
)

# Migration 0021: one row per gateway call (adapters/sql/calls.py); its CloudEvents are derived on read.
llm_call_shapes = Table(
    "llm_call_shapes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(255), nullable=False),
    Column("requested_model", String(255), nullable=False),
    Column("upstream_model", String(255), nullable=False),
    Column("provider", String(255), nullable=False),
    Column("route", String(255), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("flags", Integer, nullable=False, comment="1 streamed, 2 partial, 4 estimated, 8 interrupted"),
    UniqueConstraint(
        "model",
        "requested_model",
        "upstream_model",
        "provider",
        "route",
        "status_code",
        "flags",
        name="uq_llm_call_shapes",
    ),
)

llm_calls = Table(
    "llm_calls",
    metadata,
    Column("seq", BigKey, primary_key=True, autoincrement=False, comment="first of the call's 5 sequence numbers"),
    Column("key_hash", Integer, nullable=False, comment="CRC-32 of the request id, signed (calls.request_hash)"),
    Column("request_id", String(255), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("stored_us", BigInteger, nullable=False),
    Column("shape", Integer, nullable=False, comment="llm_call_shapes.id"),
    Column("input", Integer, nullable=False),
    Column("output", Integer, nullable=False),
    Column("cache_read", Integer, nullable=False),
    Column("cache_write", Integer, nullable=False),
    Column("reasoning", Integer, nullable=False),
    Column("cost_input", Text),
    Column("cost_output", Text),
    Column("cost_cache_read", Text),
    Column("cost_cache_write", Text),
    Column("cost_total", Text),
    Column("duration_ms", Integer),
    Index("ix_llm_calls_key_hash", "key_hash"),
    Index("ix_llm_calls_time", "time_us"),
    Index("ix_llm_calls_subject_time", "subject", "time_us"),
)

meters = Table(
    "meters",
    metadata,
    Column("slug", String(63), primary_key=True),
    Column("record", Text, nullable=False, comment="the meter definition, JSON (Meter.to_record)"),
    Column("managed_by", String(16), nullable=False, comment="builtin | config | api"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column(
        "rolled_seq", BigInteger, nullable=False, server_default="0", comment="events up to this seq are in rollups"
    ),
)

subjects = Table(
    "subjects",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("first_seen_us", BigInteger, nullable=False, comment="when the store first saw the subject"),
)

meter_rollups = Table(
    "meter_rollups",
    metadata,
    Column("meter", String(63), primary_key=True),
    Column("level_us", BigInteger, primary_key=True, comment="bucket width: minute, hour or day"),
    Column("bucket_us", BigInteger, primary_key=True, comment="bucket start, UTC micros"),
    Column("subject", String(255), primary_key=True),
    Column("dims", Text, primary_key=True, comment="the meter's groupBy values, JSON array"),
    Column("count", BigInteger, nullable=False),
    Column("total", Text, nullable=False, comment="exact decimal sum"),
    Column("minimum", Text),
    Column("maximum", Text),
    Column("latest", Text),
    Column("latest_us", BigInteger),
    Column("latest_seq", BigInteger),
    Column("first_us", BigInteger),
    # Subject before bucket (migration 0006): a subject's range read is one key range, statistics or not.
    PrimaryKeyConstraint("meter", "level_us", "subject", "bucket_us", "dims", name="meter_rollups_pkey"),
    sqlite_with_rowid=False,  # migration 0019: the rows live in the key's b-tree, not twice
)

meter_rollup_values = Table(
    "meter_rollup_values",
    metadata,
    Column("meter", String(63), primary_key=True),
    Column("level_us", BigInteger, primary_key=True),
    Column("bucket_us", BigInteger, primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("dims", Text, primary_key=True),
    Column("digest", String(64), primary_key=True, comment="SHA-256 of a UNIQUE_COUNT value"),
    PrimaryKeyConstraint(
        "meter", "level_us", "subject", "bucket_us", "dims", "digest", name="meter_rollup_values_pkey"
    ),
    sqlite_with_rowid=False,
)

# -- invoicing (migration 0005) ---------------------------------------------------------------

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("billing_key", String(255), nullable=True, comment="subscription:open | subscription:period start us"),
    Column("customer_id", String(64), nullable=False),
    Column("subscription_id", String(64)),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False, comment="draft | issued | paid | void | uncollectible"),
    Column("number", String(32), comment="TW-YYYY-nnnnnn, assigned when issued"),
    Column("period_start_us", BigInteger, nullable=False),
    Column("period_end_us", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False, comment="sum of the lines' amount_minor (saturated)"),
    Column("total_minor_exact", Text, comment="the exact total when it does not fit in 64 bits"),
    Column("issued_us", BigInteger),
    Column("due_us", BigInteger),
    Column("paid_us", BigInteger),
    Column("voided_us", BigInteger),
    Column("uncollectible_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("stripe_invoice_id", String(255)),
    Column("stripe_status", String(32)),
    Column("metadata", Text, nullable=False, comment="JSON object"),
    UniqueConstraint("billing_key", name="uq_invoices_billing_key"),
    UniqueConstraint("number", name="uq_invoices_number"),
    Index("ix_invoices_customer", "customer_id", "created_us"),
    Index("ix_invoices_status", "status", "created_us"),
    Index("ix_invoices_subscription", "subscription_id", "period_end_us"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", String(64), ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("id", String(96), nullable=False),
    Column("kind", String(16), nullable=False, comment="usage | flat | adjustment"),
    Column("rate_card_key", String(255), nullable=False),
    Column("description", Text, nullable=False),
    Column("period_start_us", BigInteger, nullable=False),
    Column("period_end_us", BigInteger, nullable=False),
    Column("amount", Text, nullable=False, comment="exact decimal"),
    Column("amount_minor", BigInteger, nullable=False, comment="saturated at +/-(2^63 - 1)"),
    Column("amount_minor_exact", Text, comment="the exact amount when it does not fit in 64 bits"),
    Column("feature_key", String(255)),
    Column("subscription_id", String(64)),
    Column("charge", Text, comment="usage lines: the priced steps, JSON"),
    Column("slices", Text, nullable=False, comment="JSON array of {group_by, quantity}"),
    Column("proration", Text),
    Column("adjusts_invoice_id", String(64)),
    Column("metadata", Text, nullable=False),
    Column("stripe_invoice_item_id", String(255)),
    UniqueConstraint("id", name="uq_invoice_lines_id"),
    Index("ix_invoice_lines_adjusts", "adjusts_invoice_id"),
)

invoice_number_series = Table(
    "invoice_number_series",
    metadata,
    Column("series", String(32), primary_key=True, comment="TW-YYYY"),
    Column("last_number", BigInteger, nullable=False),
)

billing_claims = Table(
    "billing_claims",
    metadata,
    Column("billing_key", String(255), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("claimed_until_us", BigInteger, nullable=False),
)

invoice_outbox = Table(
    "invoice_outbox",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("invoice_id", String(64), ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False, comment="stripe.sync | stripe.void"),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("done_us", BigInteger),
    Column("last_error", Text),
    UniqueConstraint("invoice_id", "kind", name="uq_invoice_outbox_invoice_kind"),
    Index("ix_invoice_outbox_due", "done_us", "next_attempt_us"),
)

stripe_webhook_events = Table(
    "stripe_webhook_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("received_us", BigInteger, nullable=False),
)

# -- identity: consumers, API keys (digests only) and the version counter gateways poll --------------------

consumers = Table(
    "consumers",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("managed_by", String(16), nullable=False, comment="config | api"),
    Column("models", Text, comment="allowed model names, JSON array; NULL: every model"),
    Column("metadata", Text, nullable=False, comment="JSON object of strings"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(26), primary_key=True, comment="ULID"),
    Column("username", String(128), nullable=False, comment="the consumer (kept after it is deleted)"),
    Column("name", String(100)),
    Column("prefix", String(16), comment="the first characters of the plain key"),
    Column("digest", String(71), nullable=False, comment="sha256:<hex> of the plain key, which is never stored"),
    Column("models", Text, comment="allowed model names, JSON array; NULL: the consumer's"),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger),
    Column("revoked_us", BigInteger),
    Column("last_used_day", String(10), comment="UTC day of the last use, YYYY-MM-DD"),
    UniqueConstraint("digest", name="uq_api_keys_digest"),
    Index("ix_api_keys_username", "username", "created_us"),
)

identity_version = Table(
    "identity_version",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False, comment="bumped with every consumer or key change"),
)

# -- catalog: features, plans, customers, subscriptions (domain objects as JSON records, catalog_codec.py)

catalog_features = Table(
    "catalog_features",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("key", String(64), nullable=False),
    Column("meter_slug", String(63)),
    Column("managed_by", String(16), nullable=False, comment="api | config"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("archived_us", BigInteger),
    Column("record", Text, nullable=False, comment="name, filters, metadata: JSON"),
)
Index(
    "uq_catalog_features_live_key",
    catalog_features.c.key,
    unique=True,
    sqlite_where=catalog_features.c.archived_us.is_(None),
    postgresql_where=catalog_features.c.archived_us.is_(None),
)

catalog_plans = Table(
    "catalog_plans",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("key", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False, comment="draft | published | archived"),
    Column("managed_by", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("record", Text, nullable=False, comment="the plan version with its phases and rate cards: JSON"),
    UniqueConstraint("key", "version", name="uq_catalog_plans_key_version"),
)
# at most one draft and one published version per key
Index(
    "uq_catalog_plans_draft",
    catalog_plans.c.key,
    unique=True,
    sqlite_where=catalog_plans.c.status == "draft",
    postgresql_where=catalog_plans.c.status == "draft",
)
Index(
    "uq_catalog_plans_published",
    catalog_plans.c.key,
    unique=True,
    sqlite_where=catalog_plans.c.status == "published",
    postgresql_where=catalog_plans.c.status == "published",
)

catalog_customers = Table(
    "catalog_customers",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("key", String(64), nullable=False),
    Column("managed_by", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("deleted_us", BigInteger),
    Column("record", Text, nullable=False, comment="the customer: JSON"),
)
Index(
    "uq_catalog_customers_live_key",
    catalog_customers.c.key,
    unique=True,
    sqlite_where=catalog_customers.c.deleted_us.is_(None),
    postgresql_where=catalog_customers.c.deleted_us.is_(None),
)

catalog_customer_subjects = Table(
    "catalog_customer_subjects",
    metadata,
    Column("subject", String(255), primary_key=True, comment="a subject belongs to one customer at most"),
    Column("customer_id", String(26), ForeignKey("catalog_customers.id"), nullable=False),
    Index("ix_catalog_customer_subjects_customer", "customer_id"),
)

catalog_subscriptions = Table(
    "catalog_subscriptions",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("customer_id", String(26), ForeignKey("catalog_customers.id"), nullable=False),
    Column("plan_id", String(26), ForeignKey("catalog_plans.id"), nullable=False),
    Column("active_from_us", BigInteger, nullable=False),
    Column("active_to_us", BigInteger),
    Column("record", Text, nullable=False, comment="the subscription: JSON"),
    Index("ix_catalog_subscriptions_customer", "customer_id", "active_from_us"),
)

# -- spend control: budgets (spend/budgets.py); every write bumps the catalog's version row

spend_budgets = Table(
    "spend_budgets",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("scope", String(16), nullable=False, comment="customer | consumer | key"),
    Column("target", String(255), nullable=False, comment="customer key, consumer username or API key id"),
    Column("kind", String(16), nullable=False, comment="money | tokens"),
    Column("limit_amount", Text, nullable=False, comment="a decimal as text"),
    Column("window", String(16), nullable=False, comment="billing_period | month | day | hour | lifetime"),
    Column("hard", Boolean, nullable=False),
    Column("name", Text, nullable=False),
    Column("managed_by", String(16), nullable=False, comment="api | config"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("on_exceeded", String(16), nullable=False, server_default="refuse", comment="refuse | degrade"),
    Column("route_to", Text, comment="degrade: the cheaper model calls are routed to (else max_tokens is lowered)"),
    Column("on_redis_failure", String(8), comment="open | closed (NULL: TOLLWAY_SPEND_REDIS_FAILURE)"),
)

spend_rate_limits = Table(
    "spend_rate_limits",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("scope", String(16), nullable=False, comment="consumer | key | customer | model"),
    Column("target", String(255), nullable=False, comment="username, API key id, customer key, model name, or *"),
    Column(
        "metric",
        String(16),
        nullable=False,
        comment="requests | tokens | input_tokens | output_tokens | cost | in_flight",
    ),
    Column("limit_amount", Text, nullable=False, comment="a decimal as text"),
    Column("window", String(16), comment="minute | hour | day (NULL: in_flight)"),
    Column("name", Text, nullable=False),
    Column("managed_by", String(16), nullable=False, comment="api | config"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("on_redis_failure", String(8), comment="open | closed (NULL: TOLLWAY_SPEND_REDIS_FAILURE)"),
)

# -- customer portal tokens (portal/tokens.py): stored as SHA-256 digests

portal_tokens = Table(
    "portal_tokens",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("digest", String(80), nullable=False, unique=True, comment="sha256:<hex> of the plain token"),
    Column("subject", String(255), comment="the subject it reads (or NULL: a customer's)"),
    Column("customer_key", String(255), comment="the customer it reads (or NULL: a subject's)"),
    Column("allowed_meters", Text, comment="JSON array of meter slugs, NULL: every meter"),
    Column("expires_us", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("invalidated_us", BigInteger),
)
