-- test/bench/recommend_all.sql - time dsl.recommend_all(model, k) in a fresh
-- connection: the first call includes loading the model into the backend's
-- serving cache, the second is warm.  Variables: model k outfile
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) AS rows1, count(DISTINCT user_id) AS users1 FROM dsl.recommend_all(:'model', :k) \gset
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
SELECT count(*) AS rows2 FROM dsl.recommend_all(:'model', :k) \gset
SELECT extract(epoch FROM clock_timestamp()) AS t2 \gset
\o :outfile
SELECT :'model' AS model, :k AS k, :rows1 AS rows, :users1 AS users,
       :t1 - :t0 AS cold_seconds, :t2 - :t1 AS warm_seconds;
\o
