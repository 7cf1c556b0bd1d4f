-- qkcat catalog: the current schema, as migrating an empty database through Migrations/ yields it
-- (a test checks this). Schema version 3 = Migrations/0001_initial.sql, 0002_examples_per_component.sql,
-- 0003_search_postings.sql.

-- Which migrations were applied (PRAGMA user_version holds the highest one as well).
CREATE TABLE qkcat_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

-- A model; its shape is fixed across checkpoints.
CREATE TABLE models (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    n_layers   INTEGER NOT NULL,
    n_heads    INTEGER NOT NULL,
    n_kv_heads INTEGER NOT NULL,
    d_head     INTEGER NOT NULL
);

-- A checkpoint of a model. `ordinal` orders a model's checkpoints: the value of the name's trailing
-- digits (step1000 < step2000), or 9223372036854775807 for names without them (main sorts last).
CREATE TABLE checkpoints (
    id       INTEGER PRIMARY KEY,
    model_id INTEGER NOT NULL REFERENCES models (id),
    name     TEXT NOT NULL,
    ordinal  INTEGER NOT NULL,
    UNIQUE (model_id, name)
);

-- One ingested capture: identified by the hash of its content, so ingesting it again is detected.
CREATE TABLE captures (
    id            INTEGER PRIMARY KEY,
    checkpoint_id INTEGER NOT NULL REFERENCES checkpoints (id),
    content_hash  TEXT NOT NULL UNIQUE,
    dataset_json  TEXT,                 -- the capture's `dataset` object (provenance), compact JSON
    positional    TEXT NOT NULL,        -- post-rope, pre-rope or none
    layers_json   TEXT NOT NULL,        -- captured layers, JSON array
    n_prompts     INTEGER NOT NULL,
    n_keys        INTEGER NOT NULL,
    ingested_at   TEXT NOT NULL,
    qkcat_version TEXT NOT NULL,
    energy        REAL NOT NULL,        -- energy fraction that set the ranks
    options_json  TEXT NOT NULL         -- every decomposition option used, JSON object
);
CREATE INDEX captures_by_checkpoint ON captures (checkpoint_id);

-- An attention head of a checkpoint; kv_head is the key/value head it reads (grouped-query attention).
CREATE TABLE heads (
    id            INTEGER PRIMARY KEY,
    checkpoint_id INTEGER NOT NULL REFERENCES checkpoints (id),
    layer         INTEGER NOT NULL,
    head          INTEGER NOT NULL,
    kv_head       INTEGER NOT NULL,
    d_head        INTEGER NOT NULL,
    UNIQUE (checkpoint_id, layer, head)
);
CREATE INDEX heads_by_layer_head ON heads (layer, head);

-- A labelled feature as one capture declares it (two captures may describe the same name differently).
CREATE TABLE features (
    id          INTEGER PRIMARY KEY,
    capture_id  INTEGER NOT NULL REFERENCES captures (id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    description TEXT,
    UNIQUE (capture_id, name)
);
CREATE INDEX features_by_name ON features (name);

-- The decomposition of ΔC for one head and feature: pooled (value NULL) or for one query value.
CREATE TABLE decompositions (
    id              INTEGER PRIMARY KEY,
    head_id         INTEGER NOT NULL REFERENCES heads (id),
    feature_id      INTEGER NOT NULL REFERENCES features (id),
    value           TEXT,
    n_pos_pairs     INTEGER NOT NULL,
    n_neg_pairs     INTEGER NOT NULL,
    frobenius       REAL NOT NULL,      -- ‖ΔC‖_F
    rank            INTEGER NOT NULL,
    energy          REAL NOT NULL,
    singular_values BLOB NOT NULL       -- every singular value, descending, float32
);
-- One pooled and one per value at most, per head and feature (NULLs are distinct in a plain UNIQUE).
CREATE UNIQUE INDEX decompositions_pooled ON decompositions (head_id, feature_id) WHERE value IS NULL;
CREATE UNIQUE INDEX decompositions_per_value ON decompositions (head_id, feature_id, value) WHERE value IS NOT NULL;
CREATE INDEX decompositions_by_head ON decompositions (head_id);
CREATE INDEX decompositions_by_feature ON decompositions (feature_id);

-- One kept singular triple (σ, u, v) of a decomposition.
CREATE TABLE components (
    id               INTEGER PRIMARY KEY,
    decomposition_id INTEGER NOT NULL REFERENCES decompositions (id),
    component_index  INTEGER NOT NULL,
    sigma            REAL NOT NULL,
    energy_share     REAL NOT NULL,     -- σ² / Σσ²
    u                BLOB NOT NULL,     -- query side, d_head float32
    v                BLOB NOT NULL,     -- key side, d_head float32
    auto_label       TEXT NOT NULL,
    human_label      TEXT,
    note             TEXT,
    UNIQUE (decomposition_id, component_index)
);

-- What search orders and filters by, per component: σ and the decomposition's place, copied from
-- decompositions, heads and features at ingest (none of them changes afterwards). Components rows carry
-- two vectors each; this table and its index stay small, so search reads few pages.
CREATE TABLE component_search_keys (
    component_id  INTEGER PRIMARY KEY REFERENCES components (id),
    sigma         REAL NOT NULL,
    checkpoint_id INTEGER NOT NULL REFERENCES checkpoints (id),
    layer         INTEGER NOT NULL,
    head          INTEGER NOT NULL,
    feature_id    INTEGER NOT NULL REFERENCES features (id),
    value         TEXT,
    -- Tokens in the component's searchable full-text columns, as bm25 counts them; NULL once a label or note
    -- changed (ranking then asks the full-text index). Saves ranking a lookup per matching row.
    search_length INTEGER
);
-- Listing by σ, filters checked inside the index: strongest components first.
CREATE INDEX component_search_keys_by_sigma
    ON component_search_keys (sigma, checkpoint_id, layer, head, feature_id, value);

-- The tokens of the prompts that some example cites (and only those), for showing contexts.
CREATE TABLE prompts (
    id           INTEGER PRIMARY KEY,
    capture_id   INTEGER NOT NULL REFERENCES captures (id),
    prompt_index INTEGER NOT NULL,      -- line number in prompts.jsonl, 0-based
    prompt_key   TEXT NOT NULL,         -- the capture's prompt id
    tokens_json  TEXT NOT NULL,         -- JSON array of token strings
    UNIQUE (capture_id, prompt_index)
);

-- Top-activating examples and token aggregates of a component, as compact JSON:
-- {"key": {"high": [...], "low": [...]}, "query": {"high": [...], "low": [...]}}, each list ordered by rank
-- (0 = most extreme). Examples are [prompt_id, position, token, score] (prompt_id is a prompts row id);
-- aggregates are [token, count, mean_score]. Scores are JSON numbers that read back as the exact REAL.
-- Components without any are absent. The views below give one row per example or aggregate.
CREATE TABLE component_examples (
    component_id     INTEGER PRIMARY KEY REFERENCES components (id),
    examples         TEXT NOT NULL,
    token_aggregates TEXT NOT NULL
);

-- Top-activating examples: per component, side (query/key) and end (high/low), ranked from 0.
CREATE VIEW examples (component_id, side, extreme, rank, prompt_id, position, token, score) AS
SELECT ce.component_id, side.key, extreme.key, item.key,
       item.value ->> 0, item.value ->> 1, item.value ->> 2, item.value ->> 3
  FROM component_examples ce, json_each(ce.examples) side, json_each(side.value) extreme,
       json_each(extreme.value) item;

-- Per token string: occurrences and mean score, the strongest at each end of each side.
CREATE VIEW token_aggregates (component_id, side, extreme, rank, token, count, mean_score) AS
SELECT ce.component_id, side.key, extreme.key, item.key, item.value ->> 0, item.value ->> 1, item.value ->> 2
  FROM component_examples ce, json_each(ce.token_aggregates) side, json_each(side.value) extreme,
       json_each(extreme.value) item;

-- Heads and features whose contrast could not be formed (no positive or no negative pair).
CREATE TABLE skips (
    id         INTEGER PRIMARY KEY,
    capture_id INTEGER NOT NULL REFERENCES captures (id),
    layer      INTEGER NOT NULL,
    head       INTEGER,                 -- NULL: every head of the layer
    feature    TEXT NOT NULL,
    value      TEXT,                    -- NULL: pooled
    reason     TEXT NOT NULL
);
CREATE INDEX skips_by_capture ON skips (capture_id);

-- Full-text index of components, rowid = components.id. The store writes a row per component at
-- ingest; the triggers below keep labels and notes in step, so a new human label is searchable at once.
-- `facets` holds exact filter tokens (fl<layer>, fh<head>, and the hex of the UTF-8 names: fm model,
-- fc checkpoint, ff feature, fv value, fk kind), so that filtered searches intersect postings instead
-- of scanning (one capture's components have neighbouring ids, so postings of a filter come in runs).
-- User words are matched in the other columns only and ranked by qkrank (bm25 over the user's words
-- alone, with document counts from search_terms), so filter tokens never cost ranking time.
-- Ġ and Ċ (byte-level BPE's space and newline) separate words.
CREATE VIRTUAL TABLE component_search USING fts5 (
    auto_label,
    human_label,
    note,
    feature,
    tokens,
    names,
    facets,
    tokenize = "unicode61 remove_diacritics 2 separators 'ĠĊ'"
);

-- Per term of the searchable columns (as the FTS5 tokenizer yields it): how many components contain it.
-- bm25's IDF needs these counts; FTS5 would count the postings of every query term on every search.
-- Ingest and label changes keep it exact.
CREATE TABLE search_terms (
    term      TEXT PRIMARY KEY,
    documents INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER components_label_changed AFTER UPDATE OF human_label, note ON components
BEGIN
    UPDATE component_search
       SET human_label = coalesce(NEW.human_label, ''), note = coalesce(NEW.note, '')
     WHERE rowid = NEW.id;
    UPDATE component_search_keys SET search_length = NULL WHERE component_id = NEW.id;
    INSERT INTO search_stale (component_id) VALUES (NEW.id) ON CONFLICT (component_id) DO UPDATE SET indexed = 0;
END;

CREATE TRIGGER components_deleted AFTER DELETE ON components
BEGIN
    DELETE FROM component_search WHERE rowid = OLD.id;
    DELETE FROM component_search_keys WHERE component_id = OLD.id;
    DELETE FROM component_examples WHERE component_id = OLD.id;
    DELETE FROM search_stale WHERE component_id = OLD.id;
    -- The capture's groups still list the row (and a later ingest may reuse its id): searches use FTS5 until the
    -- next writable open rebuilds them.
    DELETE FROM search_indexed_captures
     WHERE capture_id = (SELECT f.capture_id FROM decompositions d JOIN features f ON f.id = d.feature_id
                          WHERE d.id = OLD.decomposition_id);
END;

-- One group: the components of one capture whose searchable text holds `term` with the same weighted frequency
-- (column weights as qkrank's) and the same searchable length. `entries` holds `documents` 32-byte little-endian
-- records, σ largest first then id: component id (i64), σ (f64), checkpoint id (u32), feature id (u32), value code
-- (u32, search_values.id, 0 pooled), layer (u16), head (u16). capture_id NULL: a group of the overlay, which
-- indexes the stale components (below) with their current text.
CREATE TABLE search_postings (
    id         INTEGER PRIMARY KEY,
    term       TEXT NOT NULL,
    capture_id INTEGER REFERENCES captures (id),
    frequency  REAL NOT NULL,
    length     INTEGER NOT NULL,
    documents  INTEGER NOT NULL,
    entries    BLOB NOT NULL
);
CREATE INDEX search_postings_by_term ON search_postings (term, capture_id, frequency, length, documents);

-- Codes of feature values in search_postings entries.
CREATE TABLE search_values (
    id    INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);

-- Captures whose components are in search_postings.
CREATE TABLE search_indexed_captures (
    capture_id INTEGER PRIMARY KEY REFERENCES captures (id)
);

-- Components whose text changed (a human label or note) after their capture's groups were written: searches skip
-- their capture's entries. `indexed` 1: the overlay holds their current text; 0: not yet (FTS5 ranks them).
CREATE TABLE search_stale (
    component_id INTEGER PRIMARY KEY REFERENCES components (id),
    indexed      INTEGER NOT NULL DEFAULT 0
);
