# Serving while the model is replaced: pgbench clients call dsl.recommend for
# random users while another session retrains-and-replaces the same model
# five times.  No call fails, and every result is exactly what the model
# version visible in that call's snapshot returns: the old or the new model,
# never a mix.  Two rounds: every connection with its own copy of a served
# model, then with dsl_rec preloaded, every connection mapping the server's
# one shared copy of each version (docs/serving.md).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use DslFixture;
use Time::HiRes qw(time usleep);

my $n_retrains = 5;
my $n_users = 420;    # 400 trained users and 20 cold-start ones

sub round
{
	my ($preload) = @_;
	my $mode = $preload ? 'shared copies' : 'per-backend copies';
	note "--- round with $mode";
	my $node = PostgreSQL::Test::Cluster->new($preload ? 'concurrency_shared' : 'concurrency');
	$node->init;
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'dsl_rec'") if $preload;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION dsl_rec; SET dsl_rec.progress = off;' . inter_sql() . qq{
		SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 2, seed => 1);

		-- the model version visible in the caller's snapshot and an md5 of what
		-- dsl.recommend returned in that same snapshot
		CREATE FUNCTION snap_recs(u bigint, OUT model_id bigint, OUT result text)
		LANGUAGE sql STABLE AS \$\$
			SELECT (SELECT m.model_id FROM dsl.models m WHERE m.name = 'm'),
			       (SELECT md5(string_agg(r.item_id || ':' || coalesce(r.score::text, 'cold'), ',' ORDER BY r.rank))
			          FROM dsl.recommend('m', u, 10) r)
		\$\$;
		-- what the pgbench clients got
		CREATE TABLE calls (model_id bigint, user_id bigint, result text, at timestamptz DEFAULT clock_timestamp());
		-- what each version returns, recorded right after it was trained
		CREATE TABLE versions (model_id bigint, user_id bigint, result text, PRIMARY KEY (model_id, user_id));
	});

	my $record_version = qq{
		INSERT INTO versions SELECT s.model_id, u, s.result
		FROM generate_series(1, $n_users) u, snap_recs(u) s};
	$node->safe_psql('postgres', $record_version);

	my $script = $node->basedir . '/recommend.pgbench';
	PostgreSQL::Test::Utils::append_to_file($script, qq{
\\set u random(1, $n_users)
INSERT INTO calls (model_id, user_id, result) SELECT s.model_id, :u, s.result FROM snap_recs(:u) s;
});

	# 4 clients for up to 30 s, at most 400 calls per second in all (the machine
	# is shared); stopped early once the last version has been served
	my ($out, $err) = ('', '');
	my $log_offset = -s $node->logfile;
	my $bench = IPC::Run::start(
		[ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', '30', '-R', '400', '-f', $script,
			$node->connstr('postgres') ],
		'<', '/dev/null', '>', \$out, '2>', \$err);

	my $wait_served = sub {
		my ($model_id, $calls) = @_;
		my $deadline = time() + 20;
		while (time() < $deadline)
		{
			return 1 if $node->safe_psql('postgres',
				"SELECT count(*) >= $calls FROM calls WHERE model_id = $model_id") eq 't';
			usleep(50_000);
		}
		return 0;
	};

	my $trainer = $node->background_psql('postgres');
	$trainer->query_safe('SET dsl_rec.progress = off');
	$trainer->query_safe('SET client_min_messages = warning');    # the NOTICE without the preload
	my @versions = ($node->safe_psql('postgres', "SELECT model_id FROM dsl.models WHERE name = 'm'"));
	for my $i (1 .. $n_retrains)
	{
		ok($wait_served->($versions[-1], 20), "version $versions[-1] was served");
		$trainer->query_safe(
			"SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 2, seed => $i + 1, replace => true)");
		$trainer->query_safe($record_version);
		push @versions, $trainer->query_safe("SELECT model_id FROM dsl.models WHERE name = 'm'");
	}
	ok($wait_served->($versions[-1], 20), "version $versions[-1] was served");
	$trainer->quit;

	# pgbench is still running (a client that fails aborts, and pgbench exits
	# once all have); stop it, then look for errors on both sides
	$bench->pump_nb;
	ok($bench->pumpable, 'pgbench was still running all along');
	$bench->signal('INT');
	$bench->finish;
	note "pgbench:\n$out\n$err";
	unlike($err, qr/error|abort|fail/i, 'pgbench reported no error');
	ok(!$node->log_contains('ERROR:', $log_offset), 'the server logged no error during the run');

	is($node->safe_psql('postgres', 'SELECT count(DISTINCT model_id) FROM versions'), $n_retrains + 1,
		'six model versions were recorded');
	my $n_calls = $node->safe_psql('postgres', 'SELECT count(*) FROM calls');
	cmp_ok($n_calls, '>=', 20 * ($n_retrains + 1), "$n_calls calls were logged");
	is($node->safe_psql('postgres', 'SELECT count(DISTINCT model_id) FROM calls'), $n_retrains + 1,
		'the calls saw every version');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM calls WHERE model_id IS NULL OR result IS NULL'), '0',
		'every call saw a model and got rows');
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM calls c LEFT JOIN versions v USING (model_id, user_id)
		WHERE v.result IS DISTINCT FROM c.result}), '0',
		'every result equals what the version of its snapshot returns');
	# the versions really differ, so a mix would have been noticed
	cmp_ok($node->safe_psql('postgres', q{
		SELECT count(*) FROM versions a JOIN versions b USING (user_id)
		WHERE a.model_id < b.model_id AND a.result <> b.result}), '>', 0,
		'consecutive versions recommend differently');
	# calls that ran while a retrain committed: some served the old version
	# after the new one existed
	note $node->safe_psql('postgres', q{
		SELECT 'calls per version: ' || string_agg(model_id || '=' || n, ', ' ORDER BY model_id)
		FROM (SELECT model_id, count(*) n FROM calls GROUP BY model_id) s});
	# the last version's shared copy is listed (older ones are evicted when a
	# newer one is shared, unless an older snapshot brought one back)
	my $listed = $node->safe_psql('postgres', 'SELECT string_agg(model_id::text, \',\') FROM dsl.serving_shared()');
	if ($preload)
	{
		like($listed, qr/(^|,)$versions[-1](,|$)/, "the last version is shared (listed: $listed)");
	}
	else
	{
		is($listed, '', 'nothing is shared without the preload');
	}

	$node->stop;
}

round(0);
round(1);
done_testing();
