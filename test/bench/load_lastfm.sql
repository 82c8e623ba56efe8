-- test/bench/load_lastfm.sql - the LightGCN-PyTorch Last.fm split:
-- data1.txt (train) and test1.txt (test), "user<TAB>item<TAB>weight" with
-- 1-based ids and CRLF line ends (COPY's text format accepts them).  The ids
-- are kept as they are (dsl_rec maps arbitrary ids); the weight is ignored
-- (implicit feedback).
-- Usage: psql -v trainfile=... -v testfile=... -f load_lastfm.sql
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP TABLE IF EXISTS lastfm_train_raw, lastfm_test_raw, lastfm_train, lastfm_test;
CREATE UNLOGGED TABLE lastfm_train_raw (user_id bigint, item_id bigint, weight text);
CREATE UNLOGGED TABLE lastfm_test_raw (user_id bigint, item_id bigint, weight text);
\set cmd_train 'cat ' :'trainfile'
\set cmd_test 'cat ' :'testfile'
COPY lastfm_train_raw FROM PROGRAM :'cmd_train';
COPY lastfm_test_raw FROM PROGRAM :'cmd_test';
CREATE TABLE lastfm_train AS SELECT DISTINCT user_id, item_id FROM lastfm_train_raw;
CREATE TABLE lastfm_test AS SELECT DISTINCT user_id, item_id FROM lastfm_test_raw;
DROP TABLE lastfm_train_raw, lastfm_test_raw;
ANALYZE lastfm_train;
ANALYZE lastfm_test;
SELECT (SELECT count(*) FROM lastfm_train) AS train_pairs,
       (SELECT count(*) FROM lastfm_test) AS test_pairs;
