-- qkcat catalog, migration 0002: examples and token aggregates as one row per component.
--
-- A row per example (160 per component at top 20) made ingest's store phase cost about a third of the engine's
-- time. One row per component now holds them as compact JSON; the views `examples` and `token_aggregates` read
-- them back with the old tables' columns, so queries written against those tables keep working.

-- Per component: {"key": {"high": [...], "low": [...]}, "query": {"high": [...], "low": [...]}}, each list
-- ordered by rank (0 = most extreme). Examples are [prompt_id, position, token, score] (prompt_id is a prompts
-- row id); aggregates are [token, count, mean_score]. Scores are JSON numbers that read back as the exact REAL.
CREATE TABLE component_examples (
    component_id     INTEGER PRIMARY KEY REFERENCES components (id),
    examples         TEXT NOT NULL,
    token_aggregates TEXT NOT NULL
);

-- The old rows, in rank order (aggregates keep arrival order, which the ordered subqueries set). A REAL becomes
-- text with 17 significant digits (json_array writes 15, which loses bits); ±infinity becomes ±1e999.
INSERT INTO component_examples (component_id, examples, token_aggregates)
WITH
example_lists (component_id, side, extreme, list) AS (
    SELECT component_id, side, extreme,
           json_group_array(json_array(prompt_id, position, token,
               json(CASE WHEN score > 1.7976931348623157e308 THEN '1e999'
                         WHEN score < -1.7976931348623157e308 THEN '-1e999'
                         ELSE printf('%!.17g', score) END)))
      FROM (SELECT * FROM examples ORDER BY component_id, side, extreme, rank)
     GROUP BY component_id, side, extreme
),
aggregate_lists (component_id, side, extreme, list) AS (
    SELECT component_id, side, extreme,
           json_group_array(json_array(token, count,
               json(CASE WHEN mean_score > 1.7976931348623157e308 THEN '1e999'
                         WHEN mean_score < -1.7976931348623157e308 THEN '-1e999'
                         ELSE printf('%!.17g', mean_score) END)))
      FROM (SELECT * FROM token_aggregates ORDER BY component_id, side, extreme, rank)
     GROUP BY component_id, side, extreme
),
cited (component_id) AS (
    SELECT component_id FROM examples UNION SELECT component_id FROM token_aggregates
)
SELECT c.component_id,
       json_object(
           'key', json_object(
               'high', json(coalesce((SELECT list FROM example_lists l WHERE l.component_id = c.component_id
                                         AND l.side = 'key' AND l.extreme = 'high'), '[]')),
               'low', json(coalesce((SELECT list FROM example_lists l WHERE l.component_id = c.component_id
                                        AND l.side = 'key' AND l.extreme = 'low'), '[]'))),
           'query', json_object(
               'high', json(coalesce((SELECT list FROM example_lists l WHERE l.component_id = c.component_id
                                         AND l.side = 'query' AND l.extreme = 'high'), '[]')),
               'low', json(coalesce((SELECT list FROM example_lists l WHERE l.component_id = c.component_id
                                        AND l.side = 'query' AND l.extreme = 'low'), '[]')))),
       json_object(
           'key', json_object(
               'high', json(coalesce((SELECT list FROM aggregate_lists l WHERE l.component_id = c.component_id
                                         AND l.side = 'key' AND l.extreme = 'high'), '[]')),
               'low', json(coalesce((SELECT list FROM aggregate_lists l WHERE l.component_id = c.component_id
                                        AND l.side = 'key' AND l.extreme = 'low'), '[]'))),
           'query', json_object(
               'high', json(coalesce((SELECT list FROM aggregate_lists l WHERE l.component_id = c.component_id
                                         AND l.side = 'query' AND l.extreme = 'high'), '[]')),
               'low', json(coalesce((SELECT list FROM aggregate_lists l WHERE l.component_id = c.component_id
                                        AND l.side = 'query' AND l.extreme = 'low'), '[]'))))
  FROM cited c
 ORDER BY c.component_id;

DROP TABLE examples;
DROP TABLE token_aggregates;

-- Top-activating examples, one row each, as the table of migration 0001 had them.
CREATE VIEW examples (component_id, side, extreme, rank, prompt_id, position, token, score) AS
SELECT ce.component_id, side.key, extreme.key, item.key,
       item.value ->> 0, item.value ->> 1, item.value ->> 2, item.value ->> 3
  FROM component_examples ce, json_each(ce.examples) side, json_each(side.value) extreme,
       json_each(extreme.value) item;

-- Per token string: occurrences and mean score, one row each, as the table of migration 0001 had them.
CREATE VIEW token_aggregates (component_id, side, extreme, rank, token, count, mean_score) AS
SELECT ce.component_id, side.key, extreme.key, item.key, item.value ->> 0, item.value ->> 1, item.value ->> 2
  FROM component_examples ce, json_each(ce.token_aggregates) side, json_each(side.value) extreme,
       json_each(extreme.value) item;

-- A component's examples go with it.
DROP TRIGGER components_deleted;
CREATE TRIGGER components_deleted AFTER DELETE ON components
BEGIN
    DELETE FROM component_search WHERE rowid = OLD.id;
    DELETE FROM component_search_keys WHERE component_id = OLD.id;
    DELETE FROM component_examples WHERE component_id = OLD.id;
END;
