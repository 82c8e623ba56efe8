-- test/bench/keep_fresh.sql - the bench's "keeping fresh" block: a model
-- trained yesterday, continued on today's grown table (dsl.train(...,
-- warm_start => ...), defaults otherwise), against a training from scratch
-- on today's table with the same settings as yesterday's.
--
-- Replay: "yesterday" is the training split without every pair of a seeded
-- 2 % of its users (users who arrived since) and without a seeded 3 % of the
-- other pairs (what the others did since); "today" is the whole training
-- split.  The test split is scored for all users, for the users yesterday's
-- model knew, and for the new users alone.  dsl.evaluate counts test users a
-- model does not know apart (users_unknown) and leaves them out, so
-- yesterday's model is scored on the users it knows only.
--
-- Variables: outdir source test density epochs seed k
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SET maintenance_work_mem = '2GB';
SET dsl_rec.progress = off;

DROP TABLE IF EXISTS fresh_yesterday, fresh_test_known, fresh_test_new;
CREATE TABLE fresh_yesterday AS
SELECT user_id, item_id FROM :source
WHERE abs(hashtext('u' || user_id)) % 100 >= 2
  AND abs(hashtext(user_id || ':' || item_id)) % 100 >= 3;
CREATE TABLE fresh_test_known AS
SELECT * FROM :test t WHERE EXISTS (SELECT FROM fresh_yesterday y WHERE y.user_id = t.user_id);
CREATE TABLE fresh_test_new AS
SELECT * FROM :test t WHERE NOT EXISTS (SELECT FROM fresh_yesterday y WHERE y.user_id = t.user_id);
ANALYZE fresh_yesterday;

\set f :outdir '/replay.csv'
\o :f
SELECT (SELECT count(*) FROM fresh_yesterday) AS yesterday_pairs,
       (SELECT count(*) FROM :source) AS today_pairs,
       (SELECT count(DISTINCT user_id) FROM fresh_yesterday) AS yesterday_users,
       (SELECT count(DISTINCT user_id) FROM :source) AS today_users,
       (SELECT count(DISTINCT user_id) FROM fresh_test_new) AS new_test_users;

-- yesterday's model
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) FROM dsl.train('fresh_yesterday', 'fresh_yesterday', density => :density,
                               epochs => :epochs, seed => :seed, replace => true) \g /dev/null
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS s_yesterday \gset

-- today: the continuation (defaults) ...
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) FROM dsl.train('fresh_continued', :'source', seed => :seed,
                               warm_start => 'fresh_yesterday', replace => true) \g /dev/null
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS s_continued \gset

-- ... and a training from scratch with yesterday's settings
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) FROM dsl.train('fresh_retrained', :'source', density => :density,
                               epochs => :epochs, seed => :seed, replace => true) \g /dev/null
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS s_retrained \gset

\set f :outdir '/fresh.csv'
\o :f
SELECT m.name AS run, m.epochs, m.new_interactions,
       CASE m.name WHEN 'fresh_yesterday' THEN :s_yesterday
                   WHEN 'fresh_continued' THEN :s_continued ELSE :s_retrained END AS call_seconds,
       (m.hyperparams->>'lr') AS lr, (m.hyperparams->>'update_ratio') AS update_ratio,
       a.recall, a.ndcg, k.recall AS recall_known, n.recall AS recall_new, a.users_unknown
FROM dsl.models m,
     -- one evaluation per model and test set, its metrics side by side
     LATERAL (SELECT max(value) FILTER (WHERE metric = 'recall') AS recall,
                     max(value) FILTER (WHERE metric = 'ndcg') AS ndcg,
                     max(value) FILTER (WHERE metric = 'users_unknown') AS users_unknown
              FROM dsl.evaluate(m.name, :'test', 'user_id', 'item_id', :k)) a,
     LATERAL (SELECT max(value) FILTER (WHERE metric = 'recall') AS recall
              FROM dsl.evaluate(m.name, 'fresh_test_known', 'user_id', 'item_id', :k)) k,
     LATERAL (SELECT max(value) FILTER (WHERE metric = 'recall') AS recall
              FROM dsl.evaluate(m.name, 'fresh_test_new', 'user_id', 'item_id', :k)) n
WHERE m.name IN ('fresh_yesterday', 'fresh_continued', 'fresh_retrained')
ORDER BY m.model_id;
\o
