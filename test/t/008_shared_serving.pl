# One copy per server: with dsl_rec in shared_preload_libraries, a served
# model version is loaded once into shared memory and mapped by every
# backend.  Checked here: two sessions share one copy and answer exactly what
# a per-backend copy answers; a REPEATABLE READ session keeps serving the
# version of its snapshot while a third session retrains and the others move
# on; a rolled-back retrain and a version a transaction wrote itself are
# never shared; a reader without rights gets nothing from the shared copy;
# the size limit (dsl_rec.serving_shared_memory) evicts the least recently
# used copy and keeps models larger than itself per backend; a hot standby
# shares its own copies; a MultVAE model's shared copy (with its encoder)
# answers as a per-backend one, and so do copies holding the int8 first
# pass.  Concurrent serving during retrains with shared copies is
# test/t/004_concurrency.pl's second round.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DslFixture;

my $node = PostgreSQL::Test::Cluster->new('shared');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dsl_rec'
maintenance_work_mem = '256MB'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION dsl_rec; SET dsl_rec.progress = off;' . inter_sql() . q{
	CREATE TABLE test_pairs AS SELECT user_id, (item_id + 1) % 300 AS item_id FROM inter WHERE user_id % 3 = 0;
	SELECT count(*) FROM dsl.train('m1', 'inter', dim => 8, epochs => 2, seed => 1);
	SELECT count(*) FROM dsl.train('m2', 'inter', model_type => 'lightgcn', dim => 8, epochs => 2, seed => 2);
	CREATE ROLE regress_outsider LOGIN;
});

my $shared = q{SELECT coalesce(string_agg(s.model_id::text, ',' ORDER BY s.model_id), '') FROM dsl.serving_shared() s};
my $cache = q{SELECT string_agg(name || ':' || shared, ',' ORDER BY name) FROM dsl.serving_cache()};
my $recs = q{SELECT md5(string_agg(r.item_id || ':' || r.score, ',' ORDER BY u, r.rank))
	FROM generate_series(1, 400, 9) u, dsl.recommend('m1', u, 10) r};
my $m1 = $node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'm1'");
my $m2 = $node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'm2'");

# --- two sessions, one copy ---------------------------------------------------
is($node->safe_psql('postgres', $shared), '', 'nothing is shared before the first call');
my $a = $node->background_psql('postgres');
my $b = $node->background_psql('postgres');
my $recs_a = $a->query_safe($recs);
is($a->query_safe($cache), 'm1:true', 'session A serves m1 from the shared copy');
is($node->safe_psql('postgres', $shared), $m1, '... which is listed once');
my $recs_b = $b->query_safe($recs);
is($b->query_safe($cache), 'm1:true', 'session B maps the same copy');
is($node->safe_psql('postgres', $shared), $m1, '... still one copy');
is($recs_b, $recs_a, 'both sessions recommend the same');

# every question a client can ask, shared and per backend
my $with_shared = serving_results($node, 'postgres', 'test_pairs', 'm1', 'm2');
is($node->safe_psql('postgres', $shared), "$m1,$m2", 'both models are shared once');
$node->safe_psql('postgres', 'ALTER SYSTEM SET dsl_rec.serving_shared_memory = 0; SELECT pg_reload_conf()');
$node->poll_query_until('postgres', "SELECT current_setting('dsl_rec.serving_shared_memory') = '0'")
  or die 'reload did not take';
my $per_backend = serving_results($node, 'postgres', 'test_pairs', 'm1', 'm2');
is($node->safe_psql('postgres', "SELECT dsl.recommend('m1', 1, 1) IS NOT NULL; $cache"), "t\nm1:false",
	'with dsl_rec.serving_shared_memory = 0 a session keeps its own copy');
for my $k (sort keys %$with_shared)
{
	is($per_backend->{$k}, $with_shared->{$k}, "$k: the shared copy answers as a per-backend one");
}
$node->safe_psql('postgres', 'ALTER SYSTEM RESET dsl_rec.serving_shared_memory; SELECT pg_reload_conf()');
$node->poll_query_until('postgres', "SELECT current_setting('dsl_rec.serving_shared_memory') = '1GB'")
  or die 'reload did not take';

# --- a retrain while a REPEATABLE READ session serves ----------------------------
$a->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
is($a->query_safe($recs), $recs_a, 'A, in a REPEATABLE READ transaction, serves version 1');
my $trainer = $node->background_psql('postgres');
$trainer->query_safe('SET dsl_rec.progress = off');
$trainer->query_safe("SELECT count(*) FROM dsl.train('m1', 'inter', dim => 8, epochs => 2, seed => 7, replace => true)");
my $m1b = $node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'm1'");
my $recs_v2 = $b->query_safe($recs);
isnt($recs_v2, $recs_a, 'B moves on to the retrained version');
like($node->safe_psql('postgres', $shared), qr/(^|,)$m1b(,|$)/, '... now shared');
unlike($node->safe_psql('postgres', $shared), qr/(^|,)$m1(,|$)/,
	'... and the older version of the name left the directory');
is($a->query_safe($recs), $recs_a, 'A still serves version 1 (its snapshot; its mapping outlives the listing)');
$a->query_safe('COMMIT');
is($a->query_safe($recs), $recs_v2, 'after its transaction A serves version 2');

# --- versions that must not be shared ---------------------------------------------
$trainer->query_safe('BEGIN');
$trainer->query_safe("SELECT count(*) FROM dsl.train('m1', 'inter', dim => 8, epochs => 1, seed => 9, replace => true)");
my $m1c = $trainer->query_safe("SELECT model_id FROM dsl.models WHERE name = 'm1'");
$trainer->query_safe("SELECT count(*) FROM dsl.recommend('m1', 5, 10)");
is($trainer->query_safe("SELECT shared FROM dsl.serving_cache() WHERE model_id = $m1c"), 'f',
	'a version served in the transaction that wrote it is kept per backend');
unlike($node->safe_psql('postgres', $shared), qr/(^|,)$m1c(,|$)/, '... and not listed');
$trainer->query_safe('ROLLBACK');
is($b->query_safe($recs), $recs_v2, 'after the rollback B serves version 2 as before');
$trainer->quit;

# --- readers' rights -----------------------------------------------------------------
my ($ret, $out, $err) = $node->psql('postgres', "SELECT count(*) FROM dsl.recommend('m1', 5, 10)",
	extra_params => [ '-U', 'regress_outsider' ]);
like($err, qr/model "m1" does not exist/, 'a role that cannot see m1 gets nothing from its shared copy');
$node->safe_psql('postgres', "SELECT dsl.grant_model('m1', 'regress_outsider')");
is($node->safe_psql('postgres', "SELECT md5(string_agg(r.item_id || ':' || r.score, ',' ORDER BY u, r.rank))
	FROM generate_series(1, 400, 9) u, dsl.recommend('m1', u, 10) r; $cache",
	extra_params => [ '-U', 'regress_outsider' ]), "$recs_v2\nm1:true",
	'once granted, it maps the same copy and gets the same answers');
# one backend, two roles: two local entries over one mapping
$b->query_safe('SET ROLE regress_outsider');
is($b->query_safe($recs), $recs_v2, 'a second role in session B ...');
$b->query_safe('RESET ROLE');
is($b->query_safe("SELECT count(*) FROM dsl.serving_cache() WHERE name = 'm1' AND shared"), '2',
	'... gets its own entry over the same mapping');
$a->quit;
$b->quit;

# --- the size limit ---------------------------------------------------------------
# 1 MB: room for either of two models of about 600 kB, not for both, and
# not for a model of 1.8 MB
$node->safe_psql('postgres', "ALTER SYSTEM SET dsl_rec.serving_shared_memory = '1MB'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('dsl_rec.serving_shared_memory') = '1MB'")
  or die 'reload did not take';
$node->safe_psql('postgres', q{SET dsl_rec.progress = off;
	CREATE TABLE mid AS SELECT u AS user_id, (u * 7 + k * 13) % 1000 AS item_id
	FROM generate_series(1, 2000) u, generate_series(1, 15) k;
	CREATE TABLE wide AS SELECT u AS user_id, (u * 7 + k * 13) % 3000 AS item_id
	FROM generate_series(1, 4000) u, generate_series(1, 15) k;
	SELECT count(*) FROM dsl.train('mid1', 'mid', dim => 32, density => 1, epochs => 1, seed => 1);
	SELECT count(*) FROM dsl.train('mid2', 'mid', dim => 32, density => 1, epochs => 1, seed => 2);
	SELECT count(*) FROM dsl.train('big', 'wide', dim => 64, density => 1, epochs => 1, seed => 1)});
my $mid1 = $node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'mid1'");
my $mid2 = $node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'mid2'");
is($node->safe_psql('postgres', "SELECT count(*) FROM dsl.recommend('big', 5, 10); $cache"),
	"10\nbig:false", 'a model larger than the limit is served per backend');
$node->safe_psql('postgres', "SELECT count(*) FROM dsl.recommend('mid1', 5, 10)");
my $mid1_bytes = $node->safe_psql('postgres', "SELECT bytes FROM dsl.serving_shared() WHERE model_id = $mid1");
cmp_ok($mid1_bytes, '>', 512 * 1024, "mid1 is shared ($mid1_bytes bytes, over half the limit)");
$node->safe_psql('postgres', "SELECT count(*) FROM dsl.recommend('mid2', 5, 10)");
is($node->safe_psql('postgres', $shared), $mid2,
	'serving mid2 evicted the least recently used copies, mid1 among them');
cmp_ok($node->safe_psql('postgres', 'SELECT sum(bytes) FROM dsl.serving_shared()'), '<=', 1024 * 1024,
	'the shared copies stay within the limit');
is($node->safe_psql('postgres', "SELECT count(*) FROM dsl.recommend('mid1', 5, 10); $cache; $shared"),
	"10\nmid1:true\n$mid1", 'mid1, served again, comes back and evicts mid2');

# --- a hot standby shares its own copies -------------------------------------------
$node->safe_psql('postgres', 'ALTER SYSTEM RESET dsl_rec.serving_shared_memory; SELECT pg_reload_conf()');
$node->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('shared_standby');
$standby->init_from_backup($node, 'b', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
is($standby->safe_psql('postgres', "$recs; $cache"), "$recs_v2\nm1:true",
	'the standby serves m1 from its shared copy, with the same answers');
is($standby->safe_psql('postgres', $shared), $m1b, '... listed in its own directory');

# --- a MultVAE model: its encoder is part of the shared copy --------------------------------
$node->safe_psql('postgres', q{SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m3', 'inter', model_type => 'multvae', dim => 9, epochs => 2,
	                               seed => 3, options => '{"latent": 4}')});
my $m3 = $node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'm3'");
my $vae_shared = serving_results($node, 'postgres', 'test_pairs', 'm3');
like($node->safe_psql('postgres', $shared), qr/(^|,)$m3(,|$)/, 'a MultVAE model is shared');
$node->safe_psql('postgres', 'ALTER SYSTEM SET dsl_rec.serving_shared_memory = 0; SELECT pg_reload_conf()');
$node->poll_query_until('postgres', "SELECT current_setting('dsl_rec.serving_shared_memory') = '0'")
  or die 'reload did not take';
my $vae_local = serving_results($node, 'postgres', 'test_pairs', 'm3');
for my $k (sort keys %$vae_shared)
{
	is($vae_local->{$k}, $vae_shared->{$k}, "$k: the shared copy answers as a per-backend one");
}
$node->safe_psql('postgres', 'ALTER SYSTEM RESET dsl_rec.serving_shared_memory; SELECT pg_reload_conf()');

# --- the int8 first pass (serve_q8.h) is part of the shared copy ------------------------
# Loaded with dsl_rec.debug_serving_prescore = on (small tables get no copy
# under 'auto'), shared, it answers as a per-backend load without it.
$node->safe_psql('postgres', q{SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('q1', 'inter', dim => 8, epochs => 2, seed => 1);
	SELECT count(*) FROM dsl.train('q3', 'inter', model_type => 'multvae', dim => 9, epochs => 2,
	                               seed => 3, options => '{"latent": 4}')});
$node->safe_psql('postgres', 'ALTER SYSTEM SET dsl_rec.debug_serving_prescore = on; SELECT pg_reload_conf()');
$node->poll_query_until('postgres', "SELECT current_setting('dsl_rec.debug_serving_prescore') = 'on'")
  or die 'reload did not take';
my $q8_shared = serving_results($node, 'postgres', 'test_pairs', 'q1', 'q3');
is($node->safe_psql('postgres', q{SELECT count(*) FROM dsl.serving_shared() s
	JOIN dsl.models m USING (model_id) WHERE m.name IN ('q1', 'q3')}), '2',
	'models loaded with the int8 copy are shared');
$node->safe_psql('postgres', q{ALTER SYSTEM SET dsl_rec.serving_shared_memory = 0;
	ALTER SYSTEM SET dsl_rec.debug_serving_prescore = off; SELECT pg_reload_conf()});
$node->poll_query_until('postgres', "SELECT current_setting('dsl_rec.debug_serving_prescore') = 'off'")
  or die 'reload did not take';
my $q8_local = serving_results($node, 'postgres', 'test_pairs', 'q1', 'q3');
for my $k (sort keys %$q8_shared)
{
	is($q8_local->{$k}, $q8_shared->{$k},
		"$k: the shared copy with the int8 pass answers as a per-backend one without");
}
$node->safe_psql('postgres', q{ALTER SYSTEM RESET dsl_rec.serving_shared_memory;
	ALTER SYSTEM RESET dsl_rec.debug_serving_prescore; SELECT pg_reload_conf()});

# --- no preload: one copy per connection, and a NOTICE says so ---------------------------
my $plain = PostgreSQL::Test::Cluster->new('not_preloaded');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION dsl_rec; SET dsl_rec.progress = off;' . inter_sql()
	  . q{SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 1, seed => 1);});
($ret, $out, $err) = $plain->psql('postgres',
	"SELECT count(*) FROM dsl.recommend('m', 5, 10); SELECT count(*) FROM dsl.recommend('m', 6, 10); $cache");
is($out, "10\n10\nm:false", 'without the preload the connection keeps its own copy');
my @notices = ($err =~ /NOTICE:  dsl_rec is not in shared_preload_libraries/g);
is(scalar(@notices), 1, '... and is told so once');
is($plain->safe_psql('postgres', 'SELECT count(*) FROM dsl.serving_shared()'), '0',
	'dsl.serving_shared() lists nothing there');

$plain->stop;
$standby->stop;
$node->stop;
done_testing();
