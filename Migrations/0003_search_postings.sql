-- qkcat migration 3: an impact-ordered search index beside the full-text one.
--
-- Ranking a common word through FTS5 costs time per matching row (every row is scored); this index keeps, per
-- capture and term, the components holding the term grouped by what their bm25 score depends on (weighted
-- frequency, searchable length) and sorted by σ within a group, so a search reads groups best first and stops
-- after `limit` hits. Ingest writes it with the capture; a catalog migrated from an earlier version gets it built
-- on its first writable open (captures listed in search_indexed_captures are done).

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

DROP TRIGGER components_label_changed;
CREATE TRIGGER components_label_changed AFTER UPDATE OF human_label, note ON components
BEGIN
    UPDATE component_search
       SET human_label = coalesce(NEW.human_label, ''), note = coalesce(NEW.note, '')
     WHERE rowid = NEW.id;
    UPDATE component_search_keys SET search_length = NULL WHERE component_id = NEW.id;
    INSERT INTO search_stale (component_id) VALUES (NEW.id) ON CONFLICT (component_id) DO UPDATE SET indexed = 0;
END;

DROP TRIGGER components_deleted;
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
