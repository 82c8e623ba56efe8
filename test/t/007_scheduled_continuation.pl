# The recipe of docs/lifecycle.md, run as written: pg_cron continues a model
# on its grown interactions table every minute.  A run continues the stored
# model and records what was new; a run that finds the model being trained
# by another session fails with 55P03 in cron.job_run_details and leaves the
# stored model as it was.  pg_cron's schedule has a one-minute resolution,
# so the test waits for up to two minute boundaries.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DslFixture;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "pg_cron is not installed ($pkglibdir/pg_cron.so; make test installs postgresql-15-cron)"
	unless -f "$pkglibdir/pg_cron.so";

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
# background workers: pg_cron needs no TCP connection to the server
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_cron,dsl_rec'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;

# yesterday's table and model; then today's pairs arrive (30 new users and
# a share of new pairs of the others)
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron; CREATE EXTENSION dsl_rec;'
	  . inter_sql() . q{
	DELETE FROM inter WHERE user_id > 370 OR (user_id * 3 + item_id) % 20 = 0;
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 10, seed => 1);
	INSERT INTO inter
	SELECT u, (u * 7 + k * 13) % 300 FROM generate_series(1, 400) u, generate_series(1, 15) k
	EXCEPT SELECT user_id, item_id FROM inter;
});
my $first_id = $node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'm'");
my $new_pairs = $node->safe_psql('postgres', q{
	SELECT count(*) FROM inter i
	WHERE NOT EXISTS (SELECT FROM dsl.seen_items s JOIN dsl.models m USING (model_id)
	                  WHERE m.name = 'm' AND s.user_id = i.user_id AND i.item_id = ANY (s.items))});

# the nightly job of the recipe, every minute here
$node->safe_psql('postgres', q{
	SELECT cron.schedule('dsl-continue-m', '* * * * *',
		$$SELECT count(*) FROM dsl.train('m', 'inter', warm_start => 'm', replace => true)$$)});

sub wait_run
{
	my ($n) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) >= $n FROM cron.job_run_details
		WHERE status IN ('succeeded', 'failed')});
}

ok(wait_run(1), 'the scheduled continuation ran');
is($node->safe_psql('postgres',
		"SELECT status || ': ' || return_message FROM cron.job_run_details ORDER BY runid LIMIT 1"),
	'succeeded: SELECT 1', 'it succeeded');
my $second = $node->safe_psql('postgres', q{
	SELECT model_id || ',' || continued_from || ',' || new_interactions || ',' || n_users
	       || ',' || (hyperparams->>'warm_start') || ',' || dim
	FROM dsl.models WHERE name = 'm'});
my ($second_id, $from, $new, $users, $ws, $dim) = split /,/, $second;
isnt($second_id, $first_id, 'a new version of the model was stored');
is($from, $first_id, 'it records the version it continued');
is($new, $new_pairs, 'and how many pairs were new');
is($users, 400, 'the new users have rows');
is($dim, 8, 'model_type, dim and density came from the stored model');

# a training of the same name is under way in another session (here: its
# name lock, taken as dsl.train takes it; test 004 trains two for real):
# the next run fails at once and the stored model stays as it was
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN; SELECT pg_advisory_xact_lock(1146309714, hashtext('m'))});
my $params_before = $node->safe_psql('postgres', q{
	SELECT md5(string_agg(part || entity_id || vec::text, ',' ORDER BY part, entity_id))
	FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'm'});
ok(wait_run(2), 'the next scheduled run ran');
like($node->safe_psql('postgres',
		"SELECT status || ': ' || return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 1"),
	qr/^failed: ERROR: +model "m" is being trained by another session/,
	'it failed: the model is being trained by another session');
$holder->query_safe('ROLLBACK');
$holder->quit;
is($node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'm'"), $second_id,
	'the stored version is unchanged');
is($node->safe_psql('postgres', q{
	SELECT md5(string_agg(part || entity_id || vec::text, ',' ORDER BY part, entity_id))
	FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'm'}), $params_before,
	'and so are its parameters');

$node->safe_psql('postgres', q{SELECT cron.unschedule('dsl-continue-m')});
$node->stop;
done_testing();
