# Models are ordinary rows: they stream to a hot standby, which serves
# exactly what the primary serves (and refuses to train), and they survive a
# pg_dump / pg_restore into a fresh cluster with owners, readers and the
# model-id sequence.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use DslFixture;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'dsl_rec'");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION dsl_rec;
	CREATE ROLE regress_owner;
	CREATE ROLE regress_reader;
} . inter_sql() . q{
	CREATE TABLE test_pairs AS
	SELECT user_id, item_id FROM dsl.split('inter', test_fraction => 0.2, seed => 1) WHERE is_test;
	GRANT SELECT ON inter TO regress_owner;
});
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# models trained after the standby started reach it through streaming
$primary->safe_psql('postgres', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m1', 'inter', dim => 8, epochs => 2, seed => 1);
	SET ROLE regress_owner;
	SELECT count(*) FROM dsl.train('m2', 'inter', dim => 4, density => 0.25, epochs => 2, seed => 2);
	SELECT dsl.grant_model('m2', 'regress_reader');
});
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

# everything a client can ask of the models (DslFixture::serving_results)
my $on_primary = serving_results($primary, 'postgres', 'test_pairs', 'm1', 'm2');
ok(length($on_primary->{'m1 recommend'}) == 32 && $on_primary->{'m2 rows'} =~ /^7\d\d:/,
	'the primary serves both models');

# --- hot standby ----------------------------------------------------------
my $on_standby = serving_results($standby, 'postgres', 'test_pairs', 'm1', 'm2');
for my $k (sort keys %$on_primary)
{
	is($on_standby->{$k}, $on_primary->{$k}, "standby: $k as on the primary");
}
is($standby->safe_psql('postgres',
		"SET ROLE regress_reader; SELECT count(*) FROM dsl.recommend('m2', 1, 3)"),
	'3', 'standby: row-level security lets the reader serve m2');
my ($ret, $out, $err) = $standby->psql('postgres',
	"SET ROLE regress_reader; SELECT count(*) FROM dsl.recommend('m1', 1, 3)");
like($err, qr/model "m1" does not exist/, 'standby: ... and hides m1 from it');

($ret, $out, $err) = $standby->psql('postgres',
	"SELECT count(*) FROM dsl.train('m3', 'inter', dim => 4, epochs => 1)");
isnt($ret, 0, 'standby: training fails');
like($err, qr/cannot execute dsl\.train\(\) in a read-only transaction/, '... with the read-only error');
($ret, $out, $err) = $standby->psql('postgres',
	"SELECT count(*) FROM dsl.train('m1', 'inter', dim => 4, epochs => 1, replace => true)");
like($err, qr/cannot execute dsl\.train\(\) in a read-only transaction/, 'standby: retraining fails the same way');
($ret, $out, $err) = $standby->psql('postgres', "SELECT dsl.drop_model('m1')");
like($err, qr/read-only transaction/, 'standby: drop_model fails with the read-only error');
($ret, $out, $err) = $standby->psql('postgres', "SELECT dsl.grant_model('m1', 'regress_reader')");
like($err, qr/read-only transaction/, 'standby: grant_model fails with the read-only error');
is($standby->safe_psql('postgres', "SELECT count(*) FROM dsl.split('inter', test_fraction => 0.2, seed => 1) WHERE is_test"),
	$primary->safe_psql('postgres', 'SELECT count(*) FROM test_pairs'), 'standby: split works and agrees');

# a standby session that cached m1 sees the primary's retrain on its next call
my $reader = $standby->background_psql('postgres');
my $cached = $reader->query_safe(
	"SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM dsl.recommend('m1', 5, 10)");
$primary->safe_psql('postgres', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m1', 'inter', dim => 8, epochs => 3, seed => 9, replace => true)});
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $new_primary = $primary->safe_psql('postgres',
	"SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM dsl.recommend('m1', 5, 10)");
isnt($new_primary, $cached, 'the retrained m1 recommends differently');
is($reader->query_safe("SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM dsl.recommend('m1', 5, 10)"),
	$new_primary, 'a standby session with m1 cached serves the retrained m1 after replay');
$reader->quit;
$on_primary = serving_results($primary, 'postgres', 'test_pairs', 'm1', 'm2');
$on_standby = serving_results($standby, 'postgres', 'test_pairs', 'm1', 'm2');
is_deeply($on_standby, $on_primary, 'standby: everything still as on the primary after the retrain');

# --- pg_dump / pg_restore into a fresh cluster ----------------------------------
my $dump = $primary->basedir . '/models.dump';
$primary->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $primary->connstr('postgres') ],
	'pg_dump of a database with models');
my $globals = $primary->basedir . '/globals.sql';
$primary->command_ok([ 'pg_dumpall', '--roles-only', '-f', $globals, '-d', $primary->connstr('postgres') ],
	'pg_dumpall --roles-only');

my $fresh = PostgreSQL::Test::Cluster->new('fresh');
$fresh->init;
$fresh->append_conf('postgresql.conf', "shared_preload_libraries = 'dsl_rec'");
$fresh->start;
$fresh->command_ok([ 'psql', '-X', '-q', '-d', $fresh->connstr('postgres'), '-f', $globals ],
	'roles restored into the fresh cluster');
$fresh->safe_psql('postgres', 'CREATE DATABASE restored');
$fresh->command_ok([ 'pg_restore', '--exit-on-error', '-d', $fresh->connstr('restored'), $dump ],
	'pg_restore without errors');

my $restored = serving_results($fresh, 'restored', 'test_pairs', 'm1', 'm2');
for my $k (sort keys %$on_primary)
{
	is($restored->{$k}, $on_primary->{$k}, "restored: $k as on the primary");
}
is($fresh->safe_psql('restored', q{
	SELECT string_agg(c.relname || ':' || c.relrowsecurity || c.relforcerowsecurity, ',' ORDER BY c.relname)
	FROM pg_class c WHERE c.relnamespace = 'dsl'::regnamespace AND c.relkind = 'r'}),
	'models:truetrue,parameters:truetrue,seen_items:truetrue', 'restored: row-level security still on');
is($fresh->safe_psql('restored', "SELECT count(*) FROM pg_policies WHERE schemaname = 'dsl'"),
	$primary->safe_psql('postgres', "SELECT count(*) FROM pg_policies WHERE schemaname = 'dsl'"),
	'restored: the same policies, once');
is($fresh->safe_psql('restored',
		"SET ROLE regress_reader; SELECT string_agg(name, ',' ORDER BY name) FROM dsl.models"),
	'm2', 'restored: the reader still sees exactly m2');
# the sequence came back too: a new model gets a fresh id
$fresh->safe_psql('restored', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m3', 'inter', dim => 4, epochs => 1, seed => 3)});
is($fresh->safe_psql('restored',
		"SELECT (SELECT model_id FROM dsl.models WHERE name = 'm3') > (SELECT max(model_id) FROM dsl.models WHERE name <> 'm3')"),
	't', 'restored: training works and takes a new model_id');
# and dumping the restored database gives the same model rows
my $dump2 = $fresh->basedir . '/again.dump';
$fresh->safe_psql('restored', "SELECT dsl.drop_model('m3')");
$fresh->command_ok([ 'pg_dump', '-Fc', '-f', $dump2, '-d', $fresh->connstr('restored') ], 'pg_dump of the restored database');
my %rows;
for my $pair ([ $primary, 'postgres', $dump ], [ $fresh, 'restored', $dump2 ])
{
	my ($node, $db, $file) = @$pair;
	my ($stdout, $stderr);
	IPC::Run::run([ 'pg_restore', '-a', '-t', 'models', '-t', 'parameters', '-t', 'seen_items', '-f', '-', $file ],
		'>', \$stdout, '2>', \$stderr);
	$rows{$db} = join("\n", grep { /^\d/ } split /\n/, $stdout);
}
ok(length($rows{postgres}) > 1000, 'the dump holds the model rows');
is($rows{restored}, $rows{postgres}, 'a second dump holds the same model rows');

$fresh->stop;
$standby->stop;
$primary->stop;
done_testing();
