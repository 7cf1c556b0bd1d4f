-- qkcat catalog: the current schema, as migrating an empty database through Migrations/ yields it
-- (a test checks this). Schema version 4 = Migrations/0001_initial.sql, 0002_examples_per_component.sql,
-- 0003_search_postings.sql, 0004_search_keys.sql.

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

-- Where a component lives and its σ, copied from decompositions, heads, features at ingest (none of them changes
-- afterwards). rank_key orders components for search: σ as float32 largest first (bits 30–60), then id (bits 0–29).
CREATE TABLE component_keys (
    rank_key      INTEGER PRIMARY KEY,
    component_id  INTEGER NOT NULL UNIQUE REFERENCES components (id),
    checkpoint_id INTEGER NOT NULL REFERENCES checkpoints (id),
    layer         INTEGER NOT NULL,
    head          INTEGER NOT NULL,
    feature       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    value         TEXT,
    sigma         REAL NOT NULL
);
CREATE INDEX component_keys_by_head ON component_keys (layer, head);
CREATE INDEX component_keys_by_checkpoint ON component_keys (checkpoint_id);
CREATE INDEX component_keys_by_feature ON component_keys (feature);
CREATE INDEX component_keys_by_value ON component_keys (value);
CREATE INDEX component_keys_by_kind ON component_keys (kind);

-- The words of each component, in up to three rows whose rowid is its rank_key plus a tier in bits 61–62:
-- tier 0 its human label and note (only when it has one), tier 1 its automatic label, tier 2 everything
-- searchable (automatic label, feature and value, top tokens, model and checkpoint names in `words`; human label
-- and note in `label`). Matches in rowid order come tier by tier, σ largest first within a tier.
-- Ġ and Ċ (byte-level BPE's space and newline) separate words.
CREATE VIRTUAL TABLE component_text USING fts5 (
    words,
    label,
    tokenize = "unicode61 remove_diacritics 2 separators 'ĠĊ'"
);

-- A human label or note is searchable at once, however it was written (qkcat label, or SQL by hand).
CREATE TRIGGER components_label_changed AFTER UPDATE OF human_label, note ON components
BEGIN
    DELETE FROM component_text WHERE rowid = (SELECT rank_key FROM component_keys WHERE component_id = NEW.id);
    INSERT INTO component_text (rowid, words, label)
    SELECT rank_key, '', coalesce(NEW.human_label, '') || char(10) || coalesce(NEW.note, '')
      FROM component_keys
     WHERE component_id = NEW.id AND (NEW.human_label IS NOT NULL OR NEW.note IS NOT NULL);
    UPDATE component_text SET label = coalesce(NEW.human_label, '') || char(10) || coalesce(NEW.note, '')
     WHERE rowid = (SELECT rank_key | (2 << 61) FROM component_keys WHERE component_id = NEW.id);
END;

CREATE TRIGGER components_deleted AFTER DELETE ON components
BEGIN
    DELETE FROM component_text
     WHERE rowid IN (SELECT rank_key | (tier.value << 61)
                       FROM component_keys, (SELECT 0 AS value UNION ALL SELECT 1 UNION ALL SELECT 2) tier
                      WHERE component_id = OLD.id);
    DELETE FROM component_keys WHERE component_id = OLD.id;
    DELETE FROM component_examples WHERE component_id = OLD.id;
END;
