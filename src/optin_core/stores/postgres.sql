-- PostgresStore, store schema 2: the logical schema of SQLiteStore
-- (schema.sql), in PostgreSQL's types. Applied in one transaction by the
-- store's migrations (postgres.py), which record it in optin_core_schema.
--
-- Store-wide settings: "namespace", the random id that makes this
-- database's message keys its own.
CREATE TABLE meta (
    name text PRIMARY KEY,
    value text NOT NULL
);
-- The head of each contact: bounded, replaced by compare-and-set on
-- (version, digest). data is the ASCII JSON of Consent.to_dict().
CREATE TABLE consents (
    contact text PRIMARY KEY,
    version integer NOT NULL CHECK (version > 0),
    state text NOT NULL,
    digest text NOT NULL,
    data text NOT NULL
);
-- The log: append-only, one row per event, chained by digest. message_id
-- is the provider's id as UTF-8 bytes (surrogates passed through), so that
-- any id a webhook carries, NULs included, is a key.
CREATE TABLE events (
    contact text NOT NULL,
    version integer NOT NULL,
    message_id bytea,
    digest text NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (contact, version)
);
-- Duplicates of any age: an inbound message id is logged once per contact.
CREATE UNIQUE INDEX events_message
    ON events (contact, message_id) WHERE message_id IS NOT NULL;
-- The outbox. seq orders a contact's messages (its writes are serialized by
-- the head's row lock, so seq follows the order of its decisions). "open"
-- is true while a row may hold its contact's queue (pending, or cancelled
-- while a sender still holds it), so per-contact queries read the open rows
-- only, however many were delivered. status: pending, sent, cancelled,
-- expired, failed (the dead letter), quarantined (unreadable, set aside).
CREATE TABLE outbox (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL UNIQUE,
    contact text NOT NULL,
    version integer NOT NULL,
    position integer NOT NULL,
    kind text NOT NULL,
    data text NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    leased_until timestamptz,
    claimed_version integer,
    open boolean NOT NULL DEFAULT true,
    -- Set while the row is claimed when messages of the contact wait
    -- behind it: its sender then looks for the next one once it is sent.
    behind boolean NOT NULL DEFAULT false,
    -- Delivery: failed attempts, the last error and when to try again;
    -- the provider's id and what its status callbacks said.
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    next_attempt_at timestamptz,
    provider_id text,
    sent_at timestamptz,
    delivery text,
    delivery_at timestamptz,
    error_code text
);
CREATE INDEX outbox_open ON outbox (contact, seq) WHERE open;
CREATE INDEX outbox_pending ON outbox (seq) WHERE status = 'pending';
CREATE INDEX outbox_contact ON outbox (contact, seq);
CREATE INDEX outbox_provider_id ON outbox (provider_id)
    WHERE provider_id IS NOT NULL;
CREATE INDEX outbox_failed ON outbox (seq) WHERE status = 'failed';
-- Erased contacts: the suppression key (the commitment of the contact id)
-- and the redacted logs (JSON of Erasure.to_dict()). No contact id here.
CREATE TABLE erasures (
    key text PRIMARY KEY,
    erased_at timestamptz NOT NULL,
    data text NOT NULL
);
