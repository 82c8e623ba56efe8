# Citus: a coordinator and two workers (the vendored Citus, built and
# installed by make test when ../shared/vendor holds it).  Checked here
# (docs/scale-out.md): dsl_rec installs on every node with one CREATE
# EXTENSION on the coordinator; dsl.enable_citus() makes the model tables
# reference tables; dsl.train on the coordinator reads a distributed
# interactions table and stores exactly the model it stores from the same
# pairs in a local table; dsl.evaluate against a distributed test table
# equals dsl.evaluate against a local copy; a recommend over a distributed
# users table is pushed down to the workers (EXPLAIN) and returns what the
# same query returns from a local table, and so does an INSERT ... SELECT
# of it; a retrain, committed or rolled back, is what every worker serves;
# owners and readers hold on the workers, whose role OIDs differ from the
# coordinator's; a stopped worker fails the queries that need its shards
# with a clear error while the other serves, and serves again once back; a
# node added later gets dsl_rec and the models; dsl.train refuses to run on
# a worker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DslFixture;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "Citus is not installed ($pkglibdir/citus.so; make test builds it from ../shared/vendor/citus-13.0.5.tar.gz when present)"
	unless -f "$pkglibdir/citus.so";

my @nodes;
for my $name ('coordinator', 'worker1', 'worker2')
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus,dsl_rec'
max_worker_processes = 16
citus.shard_count = 4
maintenance_work_mem = '256MB'
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus');
	push @nodes, $node;
}
my ($coord, @workers) = @nodes;
my $host = $coord->host;
$coord->safe_psql('postgres', "SELECT citus_set_coordinator_host('$host', " . $coord->port . ')');
$coord->safe_psql('postgres', "SELECT citus_add_node('$host', " . $_->port . ')') for @workers;
is($coord->safe_psql('postgres', 'SELECT count(*) FROM citus_get_active_worker_nodes()'), '2',
	'a coordinator and two active workers');

# --- the extension on every node ----------------------------------------------
$coord->safe_psql('postgres', 'CREATE EXTENSION dsl_rec');
for my $w (@workers)
{
	is($w->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'dsl_rec'}),
		$coord->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'dsl_rec'}),
		$w->name . ': CREATE EXTENSION on the coordinator installed dsl_rec here too');
}

# a role only worker1 has, so that role OIDs differ between the nodes
$workers[0]->safe_psql('postgres', 'SET citus.enable_ddl_propagation = off; CREATE ROLE pad_only_here');

# --- the model tables as reference tables -------------------------------------
$coord->safe_psql('postgres', 'SELECT dsl.enable_citus()');
is($coord->safe_psql('postgres', q{
	SELECT string_agg(logicalrelid::text || ':' || partmethod::text, ' ' ORDER BY logicalrelid::text)
	FROM pg_dist_partition WHERE logicalrelid::text LIKE 'dsl.%'}),
	'dsl.models:n dsl.parameters:n dsl.seen_items:n', 'dsl.enable_citus() makes the model tables reference tables');
my (undef, undef, $notice) = $coord->psql('postgres', 'SELECT dsl.enable_citus()');
like($notice, qr/reference tables already/, '... and says so when run again');
my ($rc, $out, $err) = $workers[0]->psql('postgres', 'SELECT dsl.enable_citus()');
like($err, qr/runs on the coordinator/, 'dsl.enable_citus() on a worker: a clear error');

# --- training from a distributed table ----------------------------------------
$coord->safe_psql('postgres', 'SET dsl_rec.progress = off;' . inter_sql() . q{
	CREATE TABLE inter_dist (user_id bigint, item_id bigint);
	SELECT create_distributed_table('inter_dist', 'user_id');
	INSERT INTO inter_dist SELECT user_id, item_id FROM inter;
	CREATE TABLE test_local AS SELECT user_id, (item_id + 1) % 300 AS item_id FROM inter WHERE user_id % 3 = 0;
	CREATE TABLE test_dist (user_id bigint, item_id bigint);
	SELECT create_distributed_table('test_dist', 'user_id');
	INSERT INTO test_dist SELECT * FROM test_local;
});
is($coord->safe_psql('postgres', q{
	SELECT count(DISTINCT nodeport) FROM citus_shards WHERE table_name = 'inter_dist'::regclass}),
	'2', 'the interactions are spread over both workers');

$coord->safe_psql('postgres', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m_dist', 'inter_dist', dim => 8, density => 0.5, epochs => 3, seed => 7);
	SELECT count(*) FROM dsl.train('m_local', 'inter', dim => 8, density => 0.5, epochs => 3, seed => 7);
	SELECT count(*) FROM dsl.train('g_dist', 'inter_dist', model_type => 'lightgcn', dim => 8, epochs => 2, seed => 7);
	SELECT count(*) FROM dsl.train('g_local', 'inter', model_type => 'lightgcn', dim => 8, epochs => 2, seed => 7);
});
my $stored = q{SELECT md5(string_agg(p.part || p.entity_id || ':' || p.vec::text, ',' ORDER BY p.part, p.entity_id))
	FROM dsl.parameters p JOIN dsl.models m USING (model_id) WHERE m.name = '%s'};
for my $t ('m', 'g')
{
	my $dist = $coord->safe_psql('postgres', sprintf($stored, "${t}_dist"));
	isnt($dist, '', "$t: the model trained from the distributed table is stored");
	is($dist, $coord->safe_psql('postgres', sprintf($stored, "${t}_local")),
		"$t: ... with exactly the parameters of the same training from a local table");
}
is($coord->safe_psql('postgres', q{SELECT n_users || ' ' || n_items || ' ' || n_interactions FROM dsl.models WHERE name = 'm_dist'}),
	$coord->safe_psql('postgres', q{SELECT n_users || ' ' || n_items || ' ' || n_interactions FROM dsl.models WHERE name = 'm_local'}),
	'... and the same counts');

# --- evaluation against a distributed test table --------------------------------
my $eval = q{SELECT string_agg(metric || '=' || value, ' ' ORDER BY metric) FROM dsl.evaluate('m_dist', '%s')};
my $eval_local = $coord->safe_psql('postgres', sprintf($eval, 'test_local'));
like($eval_local, qr/recall=0\.\d+/, 'evaluate against the local test table');
is($coord->safe_psql('postgres', sprintf($eval, 'test_dist')), $eval_local,
	'evaluate against the distributed test table gives the same metrics');

# --- serving pushed down to the workers ----------------------------------------
$coord->safe_psql('postgres', q{
	CREATE TABLE users_local AS SELECT DISTINCT user_id FROM inter;
	CREATE TABLE users_dist AS SELECT * FROM users_local;
	SELECT create_distributed_table('users_dist', 'user_id');
	CREATE TABLE recs (user_id bigint, item_id bigint, score real, rank int);
	SELECT create_distributed_table('recs', 'user_id');
	CREATE TABLE recs_local (user_id bigint, item_id bigint, score real, rank int);
});
my $recq = q{SELECT count(*) || ' ' || md5(string_agg(u.user_id || ':' || r.item_id || ':' || r.score || ':' || r.rank, ',' ORDER BY u.user_id, r.rank))
	FROM %s u, LATERAL dsl.recommend('%s', u.user_id, 5) r};
my $plan = $coord->safe_psql('postgres', q{EXPLAIN (COSTS OFF)
	SELECT u.user_id, r.* FROM users_dist u, LATERAL dsl.recommend('m_dist', u.user_id, 5) r});
like($plan, qr/Task Count: 4.*Node: host=.*Function Scan on recommend r/s,
	'recommend over a distributed users table is pushed down: four tasks run it on the workers');
my $local = $coord->safe_psql('postgres', sprintf($recq, 'users_local', 'm_dist'));
like($local, qr/^2000 /, 'on the coordinator, from a local users table: 5 items for each of 400 users');
is($coord->safe_psql('postgres', sprintf($recq, 'users_dist', 'm_dist')), $local,
	'pushed down to the workers: the same recommendations, scores and ranks');

$plan = $coord->safe_psql('postgres', q{EXPLAIN (COSTS OFF)
	INSERT INTO recs SELECT u.user_id, r.item_id, r.score, r.rank
	FROM users_dist u, LATERAL dsl.recommend('m_dist', u.user_id, 5) r});
like($plan, qr/Task Count: 4.*Function Scan on recommend r/s, 'INSERT ... SELECT: the recommends run on the workers too');
$coord->safe_psql('postgres', q{
	INSERT INTO recs SELECT u.user_id, r.item_id, r.score, r.rank
	FROM users_dist u, LATERAL dsl.recommend('m_dist', u.user_id, 5) r;
	INSERT INTO recs_local SELECT u.user_id, r.item_id, r.score, r.rank
	FROM users_local u, LATERAL dsl.recommend('m_dist', u.user_id, 5) r});
my $rows = q{SELECT count(*) || ' ' || md5(string_agg(user_id || ':' || item_id || ':' || score || ':' || rank, ',' ORDER BY user_id, rank)) FROM %s};
is($coord->safe_psql('postgres', sprintf($rows, 'recs')), $coord->safe_psql('postgres', sprintf($rows, 'recs_local')),
	'... and store the same rows as from a local table');

# --- a retrain becomes visible on every node with the coordinator's commit ------
my $version = q{SELECT model_id FROM dsl.models WHERE name = 'm_dist'};
my $old_id = $coord->safe_psql('postgres', $version);
$coord->safe_psql('postgres', q{
	SET dsl_rec.progress = off;
	BEGIN;
	SELECT count(*) FROM dsl.train('m_dist', 'inter_dist', dim => 8, density => 0.5, epochs => 3, seed => 8, replace => true);
	ROLLBACK;
});
is($_->safe_psql('postgres', $version), $old_id, $_->name . ': a rolled-back retrain left the old version') for @workers;
is($coord->safe_psql('postgres', sprintf($recq, 'users_dist', 'm_dist')), $local, '... and the workers serve it');
$coord->safe_psql('postgres', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m_dist', 'inter_dist', dim => 8, density => 0.5, epochs => 3, seed => 8, replace => true);
});
my $new_id = $coord->safe_psql('postgres', $version);
isnt($new_id, $old_id, 'the retrain committed a new version');
is($_->safe_psql('postgres', $version), $new_id, $_->name . ': the new version, with the commit') for @workers;
my $new_local = $coord->safe_psql('postgres', sprintf($recq, 'users_local', 'm_dist'));
isnt($new_local, $local, 'the new version recommends differently');
is($coord->safe_psql('postgres', sprintf($recq, 'users_dist', 'm_dist')), $new_local,
	'pushed down, every worker serves the new version (no worker keeps the old one cached)');

# --- owners and readers on the workers -------------------------------------------
$coord->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN;
	GRANT SELECT ON inter, users_dist, users_local TO alice, bob, carol;
	SET ROLE alice;
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m_alice', 'inter', dim => 8, epochs => 2, seed => 3);
	SELECT dsl.grant_model('m_alice', 'bob');
});
isnt($workers[0]->safe_psql('postgres', q{SELECT oid FROM pg_roles WHERE rolname = 'alice'}),
	$coord->safe_psql('postgres', q{SELECT oid FROM pg_roles WHERE rolname = 'alice'}),
	'alice has another OID on worker1 than on the coordinator');
is($_->safe_psql('postgres', q{SELECT owner || ' ' || readers::text FROM dsl.models WHERE name = 'm_alice'}),
	'alice {bob}', $_->name . ': the model row names its owner and reader by their roles here') for @workers;
my $alice_local = $coord->safe_psql('postgres', 'SET ROLE alice; ' . sprintf($recq, 'users_local', 'm_alice'));
for my $role ('alice', 'bob')
{
	is($coord->safe_psql('postgres', "SET ROLE $role; " . sprintf($recq, 'users_dist', 'm_alice')), $alice_local,
		"$role (" . ($role eq 'alice' ? 'owner' : 'reader') . "): served on the workers, as on the coordinator");
}
($rc, $out, $err) = $coord->psql('postgres', 'SET ROLE carol; ' . sprintf($recq, 'users_dist', 'm_alice'));
like($err, qr/model "m_alice" does not exist/, 'carol (neither): the workers do not show her the model');
($rc, $out, $err) = $workers[0]->psql('postgres', q{SET ROLE carol; SELECT count(*) FROM dsl.parameters});
is($out, '0', 'carol reads no parameter rows on a worker either');
($rc, $out, $err) = $workers[0]->psql('postgres', q{SET ROLE bob; DELETE FROM dsl.models WHERE name = 'm_alice'});
is($workers[0]->safe_psql('postgres', q{SELECT count(*) FROM dsl.models WHERE name = 'm_alice'}), '1',
	'a reader cannot delete the model from a worker');

# --- a worker stops while serving ------------------------------------------------
my $on_w1 = $coord->safe_psql('postgres', sprintf(q{
	SELECT min(user_id) FROM users_local u
	WHERE (SELECT nodeport FROM citus_shards s
	       WHERE s.shardid = get_shard_id_for_distribution_column('users_dist', u.user_id)) = %d}, $workers[0]->port));
my $one = q{SELECT count(*) FROM users_dist u, LATERAL dsl.recommend('m_dist', u.user_id, 5) r WHERE u.user_id = %s};
$workers[1]->stop('immediate');
($rc, $out, $err) = $coord->psql('postgres', sprintf($recq, 'users_dist', 'm_dist'));
isnt($rc, 0, 'worker2 stopped: a query that needs its shards fails ...');
like($err, qr/connection to the remote node .*failed|could not connect|connection .*refused/i, '... saying it cannot reach the node');
is($coord->safe_psql('postgres', sprintf($one, $on_w1)), '5', 'users on worker1 are still served');
$workers[1]->start;
is($coord->safe_psql('postgres', sprintf($recq, 'users_dist', 'm_dist')), $new_local,
	'worker2 back: every user served again, as before');

# --- a node added later -----------------------------------------------------------
# It gets dsl_rec from Citus with the node, and copies of the model tables
# when Citus replicates the reference tables to it (a copy over a
# connection from the coordinator: citus.local_hostname is the socket
# directory here).  Its role OIDs differ from the coordinator's too.
my $w3 = PostgreSQL::Test::Cluster->new('worker3');
$w3->init;
$w3->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus,dsl_rec'
max_worker_processes = 16
});
$w3->start;
push @nodes, $w3;
$w3->safe_psql('postgres', 'CREATE EXTENSION citus; CREATE ROLE pad_3a; CREATE ROLE pad_3b');
$coord->safe_psql('postgres', "ALTER SYSTEM SET citus.local_hostname = '$host'; SELECT pg_reload_conf()");
$coord->safe_psql('postgres', "SELECT citus_add_node('$host', " . $w3->port . ')');
$coord->safe_psql('postgres', "SELECT replicate_reference_tables('block_writes')");
is($w3->safe_psql('postgres', q{SELECT owner || ' ' || readers::text FROM dsl.models WHERE name = 'm_alice'}),
	$coord->safe_psql('postgres', q{SELECT owner::oid || ' {' || readers[1]::oid || '}' FROM dsl.models WHERE name = 'm_alice'}),
	'worker3: Citus copied owner and readers as the coordinator\'s role OIDs ...');
(undef, undef, $notice) = $coord->psql('postgres', 'SELECT dsl.enable_citus()');
like($notice, qr/owner and readers of \d+ model\(s\) were sent again, by name/, '... and dsl.enable_citus() sends them again by name');
is($w3->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'dsl_rec'}),
	$coord->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'dsl_rec'}),
	'worker3, added later: Citus installed dsl_rec there');
is($w3->safe_psql('postgres', q{SET citus.override_table_visibility = off;
	SELECT count(*) FROM pg_tables WHERE schemaname = 'dsl' AND tablename ~ '^(models|parameters|seen_items)_[0-9]+$'}),
	'3', '... and, once Citus replicated the reference tables, a copy of each model table');
isnt($w3->safe_psql('postgres', q{SELECT oid FROM pg_roles WHERE rolname = 'alice'}),
	$coord->safe_psql('postgres', q{SELECT oid FROM pg_roles WHERE rolname = 'alice'}),
	'alice has another OID on worker3 too');
is($w3->safe_psql('postgres', q{SELECT owner || ' ' || readers::text FROM dsl.models WHERE name = 'm_alice'}),
	'alice {bob}', '... and the copied model row names its owner and reader by their roles');
my $top = q{SET ROLE bob; SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank) FROM dsl.recommend('m_alice', 5, 5)};
is($w3->safe_psql('postgres', $top), $coord->safe_psql('postgres', $top), '... and serves bob what the coordinator does');

# a training on a worker would take a model id from the worker's own sequence
($rc, $out, $err) = $workers[0]->psql('postgres', q{
	CREATE TABLE w_inter AS SELECT u AS user_id, u % 5 AS item_id FROM generate_series(1, 50) u;
	SELECT count(*) FROM dsl.train('m_worker', 'w_inter', dim => 4, epochs => 1)});
like($err, qr/dsl\.train\(\) runs on the Citus coordinator, not on a worker/, 'dsl.train on a worker: a clear error');

# the model tables stay reference tables; the interactions stay distributed
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'dsl.%' AND partmethod = 'n'}),
	'3', 'the model tables are still reference tables');

# --- dropping the extension ----------------------------------------------------------
# without CASCADE: refused while models exist; with CASCADE, rolled back:
# everything still served; committed: no shard table of the model tables
# left on any node, and Citus' metadata holds none
($rc, $out, $err) = $coord->psql('postgres', 'DROP EXTENSION dsl_rec');
like($err, qr/cannot drop extension dsl_rec because it holds \d+ trained models/, 'DROP EXTENSION without CASCADE: refused');
$coord->safe_psql('postgres', 'BEGIN; DROP EXTENSION dsl_rec CASCADE; ROLLBACK');
is($coord->safe_psql('postgres', sprintf($recq, 'users_dist', 'm_dist')), $new_local,
	'DROP EXTENSION CASCADE rolled back: every worker still serves the model');
$coord->safe_psql('postgres', 'DROP EXTENSION dsl_rec CASCADE');
my $left = q{SET citus.override_table_visibility = off;
	SELECT count(*) FROM pg_tables WHERE schemaname = 'dsl'};
is($_->safe_psql('postgres', $left), '0', $_->name . ': DROP EXTENSION CASCADE left no model table or shard of one')
	for ($coord, @workers, $w3);
is($coord->safe_psql('postgres', 'SELECT count(*) FROM pg_dist_partition'), '4',
	'... and Citus keeps only the four distributed tables of the test');

$_->stop for @nodes;
done_testing();
