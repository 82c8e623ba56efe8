# Citus: a coordinator and two workers (the vendored Citus, built and
# installed by make test when ../shared/vendor holds it).  Checked here:
# dsl_rec installs on every node with one CREATE EXTENSION on the
# coordinator; dsl.train on the coordinator reads a distributed
# interactions table and stores exactly the model it stores from the same
# pairs in a local table; dsl.evaluate against a distributed test table
# equals dsl.evaluate against a local copy.  Serving pushed down to the
# workers is not supported yet: such a query fails with a clear error
# (docs/citus.md).
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

# serving on the coordinator works as on one server; a query that Citus
# pushes down to the workers runs dsl.recommend there, where there is no
# model (docs/citus.md): a clear error, not a wrong answer
$coord->safe_psql('postgres', q{
	CREATE TABLE users_dist AS SELECT DISTINCT user_id FROM inter;
	SELECT create_distributed_table('users_dist', 'user_id');
});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM dsl.recommend('m_dist', 5, 3)}), '3',
	'dsl.recommend on the coordinator');
my ($rc, $out, $err) = $coord->psql('postgres', q{
	SELECT count(*) FROM users_dist u, LATERAL dsl.recommend('m_dist', u.user_id, 3) r});
isnt($rc, 0, 'a recommend pushed down to the workers fails ...');
like($err, qr/model "m_dist" does not exist/, '... saying the model does not exist there');

# the model's own tables stay local to the coordinator
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE 'dsl.%'}),
	'0', 'dsl.models and dsl.parameters are not distributed');

$_->stop for @nodes;
done_testing();
