-- The CRM's tables, in the `crm` schema (the connection's search_path), beside the telemetry
-- store's when both share a database. Times are Unix milliseconds UTC; money is integer minor
-- units. Every row a tenant owns carries tenant_id, and every query filters on it.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

-- Bearer tokens, hashed (SHA-256 of the whole token; tokens are 256 random bits).
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    role        TEXT NOT NULL CHECK (role IN ('advisor', 'manager', 'integration')),
    subject     TEXT NOT NULL,
    label       TEXT NOT NULL DEFAULT '',
    hash        TEXT NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT,
    revoked_ms  BIGINT
);

CREATE TABLE shops (
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    id                   TEXT NOT NULL,
    name                 TEXT NOT NULL,
    currency             TEXT NOT NULL,
    labor_rate_minor     BIGINT NOT NULL CHECK (labor_rate_minor >= 0),
    diagnostic_fee_minor BIGINT NOT NULL CHECK (diagnostic_fee_minor >= 0),
    supplies_bp          BIGINT NOT NULL CHECK (supplies_bp >= 0),
    supplies_cap_minor   BIGINT NOT NULL CHECK (supplies_cap_minor >= 0),
    tax_bp               BIGINT NOT NULL CHECK (tax_bp >= 0),
    tax_labor            BOOLEAN NOT NULL,
    utc_offset_minutes   BIGINT NOT NULL,
    hours                TEXT NOT NULL,
    bays                 BIGINT NOT NULL CHECK (bays > 0),
    slot_minutes         BIGINT NOT NULL CHECK (slot_minutes > 0),
    is_default           BOOLEAN NOT NULL,
    phone                TEXT NOT NULL DEFAULT '',
    address              TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX shops_one_default ON shops (tenant_id) WHERE is_default;

CREATE TABLE advisors (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    id         TEXT NOT NULL,
    shop_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL DEFAULT '',
    active     BOOLEAN NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, shop_id) REFERENCES shops (tenant_id, id)
);

CREATE TABLE customers (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    phone      TEXT NOT NULL DEFAULT '',
    email      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE vehicles (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    vin           TEXT NOT NULL,
    customer_id   TEXT,
    home_shop_id  TEXT,
    make          TEXT NOT NULL DEFAULT '',
    model_year    BIGINT NOT NULL DEFAULT 0,
    plate         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, vin),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, home_shop_id) REFERENCES shops (tenant_id, id)
);

CREATE TABLE leads (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    shop_id       TEXT NOT NULL,
    vin           TEXT NOT NULL,
    device_id     TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    -- 0 unknown, 1 can wait, 2 service soon, 3 stop now.
    severity      BIGINT NOT NULL,
    -- The same vehicle with the same open problem is one lead (see leads.rs).
    problem       TEXT NOT NULL,
    -- The client key it was created under (lead_keys has every key).
    idempotency_key TEXT NOT NULL,
    faults        TEXT NOT NULL,
    advisor_id    TEXT,
    quote_id      TEXT,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    detected_ms   BIGINT NOT NULL,
    close_reason  TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, shop_id) REFERENCES shops (tenant_id, id)
);
CREATE UNIQUE INDEX leads_one_open_problem ON leads (tenant_id, vin, problem)
    WHERE status NOT IN ('closed_won', 'closed_lost');
CREATE INDEX leads_by_created ON leads (tenant_id, created_ms, id);

-- Every client key a lead was created or found under: a repeated call returns the same lead.
CREATE TABLE lead_keys (
    tenant_id  TEXT NOT NULL,
    client_key TEXT NOT NULL,
    lead_id    TEXT NOT NULL REFERENCES leads(id),
    PRIMARY KEY (tenant_id, client_key)
);

-- The audit trail: who changed what and when.
CREATE TABLE lead_history (
    seq        BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    lead_id    TEXT NOT NULL REFERENCES leads(id),
    at_ms      BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX lead_history_by_lead ON lead_history (lead_id, seq);

CREATE TABLE quotes (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    lead_id            TEXT NOT NULL REFERENCES leads(id),
    shop_id            TEXT NOT NULL,
    version            BIGINT NOT NULL,
    status             TEXT NOT NULL,
    body               TEXT NOT NULL,
    accepted_option    TEXT NOT NULL DEFAULT '',
    decline_reason     TEXT NOT NULL DEFAULT '',
    sent_ms            BIGINT NOT NULL DEFAULT 0,
    link_expires_ms    BIGINT NOT NULL DEFAULT 0,
    link_nonce         TEXT NOT NULL DEFAULT '',
    created_ms         BIGINT NOT NULL,
    updated_ms         BIGINT NOT NULL
);

CREATE TABLE appointments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    shop_id     TEXT NOT NULL,
    lead_id     TEXT NOT NULL REFERENCES leads(id),
    quote_id    TEXT NOT NULL UNIQUE REFERENCES quotes(id),
    start_ms    BIGINT NOT NULL,
    end_ms      BIGINT NOT NULL,
    bay         BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    UNIQUE (tenant_id, shop_id, start_ms, bay)
);

-- A tenant's own parts catalog or labor guide, kept as the checked CSV it was imported from;
-- a tenant without one prices from the shipped data/catalog.
CREATE TABLE catalog_files (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    kind         TEXT NOT NULL CHECK (kind IN ('parts', 'labor')),
    file_name    TEXT NOT NULL,
    body         TEXT NOT NULL,
    row_count    BIGINT NOT NULL,
    imported_ms  BIGINT NOT NULL,
    imported_by  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind)
);
