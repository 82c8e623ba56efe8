# Crashes: kill -9 of the backend that trains (the postmaster then restarts
# the whole cluster), once in the middle of training and once after the new
# model's rows were inserted but before COMMIT.  After crash recovery the
# previous model is intact and serves as before, no row of the aborted run is
# visible, and training works again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use DslFixture;

my $node = PostgreSQL::Test::Cluster->new('faults');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'dsl_rec'
maintenance_work_mem = '256MB'
restart_after_crash = on
});
$node->start;

$node->safe_psql('postgres',
	'CREATE EXTENSION dsl_rec; SET dsl_rec.progress = off;' . inter_sql() . big_sql()
	  . q{SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 2, seed => 1);});

my $state = q{
	SELECT (SELECT string_agg(model_id || ':' || name || ':' || owner || ':' || n_users || ':' || n_items, ',' ORDER BY model_id) FROM dsl.models),
	       (SELECT count(*) || ':' || md5(string_agg(model_id || part || entity_id || vec::text, ',' ORDER BY model_id, part, entity_id)) FROM dsl.parameters),
	       (SELECT count(*) || ':' || md5(string_agg(model_id || ':' || user_id || items::text, ',' ORDER BY model_id, user_id)) FROM dsl.seen_items)};
my $recs = q{
	SELECT string_agg(r.item_id || ':' || r.score, ',' ORDER BY u, r.rank)
	FROM generate_series(1, 400, 37) u, dsl.recommend('m', u, 10) r};
my $orphans = q{
	SELECT (SELECT count(*) FROM dsl.parameters p WHERE NOT EXISTS (SELECT FROM dsl.models m WHERE m.model_id = p.model_id))
	     + (SELECT count(*) FROM dsl.seen_items s WHERE NOT EXISTS (SELECT FROM dsl.models m WHERE m.model_id = s.model_id))};

my $before = $node->safe_psql('postgres', $state);
my $recs_before = $node->safe_psql('postgres', $recs);
like($before, qr/^\d+:m:/, 'a model to protect');

# Run SQL commands in the background, one session named $app.
sub start_session
{
	my ($app, @sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d',
			$node->connstr('postgres') . " application_name=$app",
			map { ('-c', $_) } @sql ],
		'<', '/dev/null', '>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# kill -9 the backend of session $app once $cond holds for it, then wait for
# the cluster to come back; returns what psql said
sub kill9_when
{
	my ($app, $cond) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = '$app' AND $cond")
	  or die "session $app never reached: $cond";
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = '$app'");
	my $offset = -s $node->logfile;
	ok(kill('KILL', $pid), "kill -9 of backend $pid ($app)");
	# the postmaster kills every backend, recovers and accepts connections
	# again; wait for the restart to begin first, or the poll below could
	# be answered by a backend that has not been told about the crash yet
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	$node->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die "the cluster did not come back";
	return $pid;
}

# --- kill -9 in the middle of training ---------------------------------------
my ($h, $out, $err) = start_session('trainer1',
	'SET dsl_rec.progress = off',
	"SELECT count(*) FROM dsl.train('m', 'big', dim => 64, epochs => 1000, replace => true)");
my $log_offset = -s $node->logfile;
kill9_when('trainer1', "state = 'active' AND query LIKE '%dsl.train%' AND now() - query_start > interval '1 second'");
$h->finish;
like($$err, qr/server closed the connection|connection to server was lost|terminating connection/,
	'the training session lost its connection');
ok($node->log_contains('was terminated by signal 9', $log_offset), 'the postmaster saw the crash');
is($node->safe_psql('postgres', $state), $before, 'after recovery: the previous model is intact');
is($node->safe_psql('postgres', $orphans), '0', 'no orphaned parameter or seen rows');
is($node->safe_psql('postgres', $recs), $recs_before, 'the model serves the same recommendations');

# --- kill -9 after the new rows were inserted, before COMMIT -----------------
($h, $out, $err) = start_session('trainer2',
	'SET dsl_rec.progress = off',
	'BEGIN',
	"SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 3, seed => 2, replace => true)",
	"SELECT count(*) FROM dsl.train('m_new', 'inter', dim => 8, epochs => 1, seed => 3)",
	'SELECT pg_sleep(600)',
	'COMMIT');
$log_offset = -s $node->logfile;
kill9_when('trainer2', "state = 'active' AND query LIKE '%pg_sleep%'");
$h->finish;
unlike($$out, qr/COMMIT/, 'the transaction never committed');
ok($node->log_contains('was terminated by signal 9', $log_offset), 'the postmaster saw the second crash');
is($node->safe_psql('postgres', $state), $before,
	'after recovery: the replaced model is back, the new one is absent');
is($node->safe_psql('postgres', $orphans), '0', 'no orphaned rows of the aborted run');
is($node->safe_psql('postgres', $recs), $recs_before, 'the model serves the same recommendations');
is($node->safe_psql('postgres', "SELECT count(*) FROM dsl.models WHERE name = 'm_new'"), '0',
	'the model created in the aborted transaction does not exist');

# --- and training works again --------------------------------------------------
$node->safe_psql('postgres', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 2, seed => 4, replace => true);
	SELECT count(*) FROM dsl.train('m_new', 'inter', dim => 8, epochs => 1, seed => 3);
});
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT model_id) FROM dsl.models'), '2|2',
	'retraining and a new model work after the crashes');
cmp_ok($node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'm'"), '>',
	(split /:/, $before)[0], 'the new version has a new model_id');
is($node->safe_psql('postgres', "SELECT count(*) FROM dsl.recommend('m', 1, 10)"), '10',
	'and serves');

$node->stop;
done_testing();
