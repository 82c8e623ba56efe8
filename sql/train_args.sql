-- dsl.train(): every invalid argument is an error naming the parameter
SET client_min_messages = warning;
CREATE TABLE ta (user_id bigint, item_id bigint, score real, label text, "User Id" int);
INSERT INTO ta VALUES (1, 10, 1, 'a', 1), (1, 11, 1, 'b', 1), (2, 10, 1, 'c', 2), (2, 12, 1, 'd', 2);
CREATE TABLE ta_empty (user_id bigint, item_id bigint);
CREATE TABLE ta_nulls (user_id bigint, item_id bigint);
INSERT INTO ta_nulls VALUES (NULL, 1), (2, NULL), (NULL, NULL);
CREATE SEQUENCE ta_seq;

-- hyperparameters out of range
SELECT * FROM dsl.train('m', 'ta', density => 0);
SELECT * FROM dsl.train('m', 'ta', density => 1.5);
SELECT * FROM dsl.train('m', 'ta', density => 'NaN');
SELECT * FROM dsl.train('m', 'ta', density => -0.1);
SELECT * FROM dsl.train('m', 'ta', dim => 0);
SELECT * FROM dsl.train('m', 'ta', dim => 1025);
SELECT * FROM dsl.train('m', 'ta', epochs => 0);
SELECT * FROM dsl.train('m', 'ta', batch_size => 0);
SELECT * FROM dsl.train('m', 'ta', lr => 0);
SELECT * FROM dsl.train('m', 'ta', lr => 'Infinity');
SELECT * FROM dsl.train('m', 'ta', lr => -0.001);
SELECT * FROM dsl.train('m', 'ta', reg => 'NaN');
SELECT * FROM dsl.train('m', 'ta', reg => -1);
SELECT * FROM dsl.train('m', 'ta', update_ratio => 1.5);
SELECT * FROM dsl.train('m', 'ta', update_interval => 0);
SELECT * FROM dsl.train('m', 'ta', growth => 'magic');
SELECT * FROM dsl.train('m', 'ta', growth => 'momentum');
SELECT * FROM dsl.train('m', 'ta', prune => 'gradient');
SELECT * FROM dsl.train('m', 'ta', schedule => 'linear');
SELECT * FROM dsl.train('m', 'ta', sparsity => 'dense');
SELECT * FROM dsl.train('m', 'ta', model_type => 'svd');
SELECT * FROM dsl.train('m', 'ta', model_type => 'ncf');
-- the one list of model types, also behind dsl.models' CHECK
SELECT dsl.model_types(), 'neumf' = ANY (dsl.model_types()) AS neumf_known;
SELECT * FROM dsl.train('m', 'ta', eval_every => 0);
SELECT * FROM dsl.train('m', 'ta', patience => -1);
SELECT * FROM dsl.train('m', 'ta', k => 0);
SELECT * FROM dsl.train('', 'ta');
-- options
SELECT * FROM dsl.train('m', 'ta', options => '[1]');
SELECT * FROM dsl.train('m', 'ta', options => '3');
SELECT * FROM dsl.train('m', 'ta', options => '{"layers": 3}');
SELECT * FROM dsl.train('m', 'ta', options => '{"init_std": "big"}');
SELECT * FROM dsl.train('m', 'ta', options => '{"init_std": -1}');
SELECT * FROM dsl.train('m', 'ta', options => '{"adam_beta1": 1}');
SELECT * FROM dsl.train('m', 'ta', options => '{"growth_batches": 0}');
SELECT * FROM dsl.train('m', 'ta', options => '{"growth_batches": 1.5}');
SELECT * FROM dsl.train('m', 'ta', options => '{"growth_batches": 2000000}');
SELECT * FROM dsl.train('m', 'ta', update_ratio => 0.1, options => '{"update_ratio_min": 0.2}');
-- NULL arguments
SELECT * FROM dsl.train(NULL, 'ta');
SELECT * FROM dsl.train('m', NULL);
SELECT * FROM dsl.train('m', 'ta', user_col => NULL);
SELECT * FROM dsl.train('m', 'ta', growth => NULL);
-- NULL is the default for model_type, dim, density (and update_ratio):
-- 'mf', 64, 0.5 (a continuation's: the stored model's, train_warm.sql)
SELECT count(*) FROM dsl.train('m_nulls', 'ta', model_type => NULL, dim => NULL, density => NULL,
                               update_ratio => NULL, epochs => 1);
SELECT model_type, dim, density, (hyperparams->>'update_ratio')::float8 AS update_ratio
FROM dsl.models WHERE name = 'm_nulls';
SELECT dsl.drop_model('m_nulls');
SELECT * FROM dsl.train('m', 'ta', seed => NULL);
SELECT * FROM dsl.train('m', 'ta', options => NULL);
-- the source and its columns
SELECT * FROM dsl.train('m', 'no_such_table');
SELECT * FROM dsl.train('m', 'ta', user_col => 'uid');
SELECT * FROM dsl.train('m', 'ta', user_col => 'USER_ID');
SELECT * FROM dsl.train('m', 'ta', item_col => 'score');
SELECT * FROM dsl.train('m', 'ta', item_col => 'label');
SELECT * FROM dsl.train('m', 'ta', item_col => 'ctid');
SELECT * FROM dsl.train('m', 'ta', item_col => '');
SELECT * FROM dsl.train('m', 'ta_empty');
SELECT * FROM dsl.train('m', 'ta_nulls');
SELECT * FROM dsl.train('m', 'ta_seq');
-- quoted, mixed-case column names are matched exactly
SELECT count(*) FROM dsl.train('m', 'ta', user_col => 'User Id', epochs => 1, dim => 4);
SELECT user_col FROM dsl.models WHERE name = 'm';
-- nothing was left behind by the failures
SELECT count(*) FROM dsl.models WHERE name <> 'm';
SELECT dsl.drop_model('m');
SELECT dsl.drop_model('m');
SELECT dsl.drop_model('m', if_exists => true);
SELECT dsl.drop_model(NULL);
