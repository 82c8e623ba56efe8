-- test/bench/load_ml1m.sql - MovieLens-1M implicit pairs (UserID<TAB>MovieID,
-- file :pairsfile) and a seeded per-user 80/20 split made by dsl.split().
-- Usage: psql -v pairsfile=.../ml-1m_implicit_pairs.tsv -v split_seed=1
--             -v test_fraction=0.2 -f load_ml1m.sql
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP TABLE IF EXISTS ml1m_pairs, ml1m_split, ml1m_train, ml1m_test;
CREATE UNLOGGED TABLE ml1m_pairs (user_id bigint, item_id bigint);
\set cmd_pairs 'cat ' :'pairsfile'
COPY ml1m_pairs FROM PROGRAM :'cmd_pairs';
CREATE UNLOGGED TABLE ml1m_split AS
SELECT * FROM dsl.split('ml1m_pairs', 'user_id', 'item_id', :test_fraction, :split_seed);
CREATE TABLE ml1m_train AS SELECT user_id, item_id FROM ml1m_split WHERE NOT is_test;
CREATE TABLE ml1m_test AS SELECT user_id, item_id FROM ml1m_split WHERE is_test;
DROP TABLE ml1m_split;
ANALYZE ml1m_train;
ANALYZE ml1m_test;
SELECT (SELECT count(*) FROM ml1m_pairs) AS pairs,
       (SELECT count(*) FROM ml1m_train) AS train_pairs,
       (SELECT count(*) FROM ml1m_test) AS test_pairs;
