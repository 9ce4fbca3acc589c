-- SQLiteStore, store schema 2 (PRAGMA user_version = 2).
-- Store-wide settings: "namespace", the random id that makes this
-- database's message keys its own.
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- The head of each contact: bounded, replaced by compare-and-set on
-- (version, digest).
CREATE TABLE IF NOT EXISTS consents (
    contact TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    digest TEXT NOT NULL,
    data TEXT NOT NULL
);
-- The log: append-only, one row per event, chained by digest.
CREATE TABLE IF NOT EXISTS events (
    contact TEXT NOT NULL,
    version INTEGER NOT NULL,
    message_id TEXT,
    digest TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (contact, version)
) WITHOUT ROWID;
-- Duplicates of any age: an inbound message id is logged once per contact.
CREATE UNIQUE INDEX IF NOT EXISTS events_message
    ON events (contact, message_id) WHERE message_id IS NOT NULL;
-- The outbox. "open" is 1 while a row may hold its contact's queue (pending,
-- or cancelled while a sender still holds it), so per-contact queries read
-- the open rows only, however many were delivered.
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    contact TEXT NOT NULL,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    leased_until REAL,
    claimed_version INTEGER,
    open INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at REAL,
    provider_id TEXT,
    sent_at REAL,
    delivery TEXT,
    delivery_at REAL,
    error_code TEXT
);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (contact, seq) WHERE open = 1;
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_contact ON outbox (contact, seq);
CREATE INDEX IF NOT EXISTS outbox_provider_id ON outbox (provider_id)
    WHERE provider_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox (seq) WHERE status = 'failed';
-- Erased contacts: the suppression key (the commitment of the contact id)
-- and the redacted logs (JSON of Erasure.to_dict()). No contact id here.
CREATE TABLE IF NOT EXISTS erasures (
    key TEXT PRIMARY KEY,
    erased_at REAL NOT NULL,
    data TEXT NOT NULL
);
