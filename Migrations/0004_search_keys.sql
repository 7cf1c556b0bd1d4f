-- qkcat migration 4: search over one keys table and a words-only full-text index.
--
-- Filters are plain SQL over component_keys (one row per component: where it lives and its σ); the full-text
-- index holds words only. Both are keyed by the component's search order, `rank_key` = σ rounded to float32
-- (largest first) then id, so that FTS5 hands out matches best first (ORDER BY rowid) and a search stops after
-- `limit` hits. `qkcat_rank_key(sigma, id)` is the function qkcat registers to compute it (the same as ingest's).
-- Everything the impact-ordered index of migration 3 needed is dropped.

DROP TRIGGER components_label_changed;
DROP TRIGGER components_deleted;
DROP TABLE search_stale;
DROP TABLE search_indexed_captures;
DROP TABLE search_values;
DROP TABLE search_postings;
DROP TABLE search_terms;
DROP TABLE component_search_keys;

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

INSERT INTO component_keys (rank_key, component_id, checkpoint_id, layer, head, feature, kind, value, sigma)
SELECT qkcat_rank_key(c.sigma, c.id), c.id, h.checkpoint_id, h.layer, h.head, f.name, f.kind, d.value, c.sigma
  FROM components c
  JOIN decompositions d ON d.id = c.decomposition_id
  JOIN heads h ON h.id = d.head_id
  JOIN features f ON f.id = d.feature_id;

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

INSERT INTO component_text (rowid, words, label)
SELECT k.rank_key | (1 << 61), s.auto_label, ''
  FROM component_search s JOIN component_keys k ON k.component_id = s.rowid;
INSERT INTO component_text (rowid, words, label)
SELECT k.rank_key | (2 << 61), s.auto_label || ' ' || s.feature || ' ' || s.tokens || ' ' || s.names,
       s.human_label || char(10) || s.note
  FROM component_search s JOIN component_keys k ON k.component_id = s.rowid;
INSERT INTO component_text (rowid, words, label)
SELECT k.rank_key, '', s.human_label || char(10) || s.note
  FROM component_search s JOIN component_keys k ON k.component_id = s.rowid
 WHERE s.human_label <> '' OR s.note <> '';

DROP TABLE component_search;

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
