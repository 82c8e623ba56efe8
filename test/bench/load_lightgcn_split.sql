-- Load a LightGCN-format split ("user item item ..." per line) from
-- :datadir/train.txt and test.txt into :prefix_train / :prefix_test.
-- Usage: psql -v datadir=... -v prefix=gowalla -f load_lightgcn_split.sql
\set ON_ERROR_STOP on
\set raw :prefix '_raw'
\set train :prefix '_train'
\set test :prefix '_test'
DROP TABLE IF EXISTS :"raw", :"train", :"test";
CREATE UNLOGGED TABLE :"raw" (split text, line text);
\set trainfile :datadir '/train.txt'
\set testfile :datadir '/test.txt'
\set cmd_train 'cat ' :'trainfile'
\set cmd_test 'cat ' :'testfile'
COPY :"raw" (line) FROM PROGRAM :'cmd_train';
UPDATE :"raw" SET split = 'train';
COPY :"raw" (line) FROM PROGRAM :'cmd_test';
UPDATE :"raw" SET split = 'test' WHERE split IS NULL;
CREATE TABLE :"train" AS
SELECT a[1]::bigint AS user_id, x::bigint AS item_id
FROM (SELECT string_to_array(btrim(line), ' ') AS a FROM :"raw" WHERE split = 'train') s,
     unnest(a[2:]) AS x WHERE x <> '';
CREATE TABLE :"test" AS
SELECT a[1]::bigint AS user_id, x::bigint AS item_id
FROM (SELECT string_to_array(btrim(line), ' ') AS a FROM :"raw" WHERE split = 'test') s,
     unnest(a[2:]) AS x WHERE x <> '';
DROP TABLE :"raw";
ANALYZE :"train";
ANALYZE :"test";
SELECT (SELECT count(*) FROM :"train") AS train_pairs, (SELECT count(*) FROM :"test") AS test_pairs;
