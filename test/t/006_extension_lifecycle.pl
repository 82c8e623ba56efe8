# The extension's life cycle (docs/lifecycle.md): models trained under
# release 0.1.0 survive ALTER EXTENSION dsl_rec UPDATE and serve exactly
# what they served before; the updated schema is the one a fresh install of
# the new version creates; and a plain DROP EXTENSION dsl_rec refuses while
# models are stored (SQLSTATE 2BP01), while DROP EXTENSION dsl_rec CASCADE
# and the DROP EXTENSION of another extension go through.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DslFixture;

my $node = PostgreSQL::Test::Cluster->new('lifecycle');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'dsl_rec'");
$node->start;

my $new_version = '0.2.0';
is($node->safe_psql('postgres',
		"SELECT string_agg(source || '->' || target, ',' ORDER BY source, target) FROM pg_extension_update_paths('dsl_rec') WHERE path IS NOT NULL"),
	"0.1.0->$new_version", "the installed scripts update 0.1.0 to $new_version");
is($node->safe_psql('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'dsl_rec'"),
	$new_version, "CREATE EXTENSION dsl_rec installs $new_version");

# --- 1. models trained under 0.1.0 survive the update ----------------------
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', q{
	CREATE EXTENSION dsl_rec VERSION '0.1.0';
	CREATE SCHEMA src;
	SET search_path = src;
} . inter_sql() . q{
	CREATE TABLE test_pairs AS
	SELECT user_id, item_id FROM dsl.split('inter', test_fraction => 0.2, seed => 1) WHERE is_test;
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m1', 'inter', dim => 8, epochs => 2, seed => 1);
	SELECT count(*) FROM dsl.train('m2', 'inter', model_type => 'lightgcn', dim => 8, epochs => 2, seed => 1);
});
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'dsl_rec'"),
	'0.1.0', 'installed as 0.1.0');
is($node->safe_psql('upgraded', q{SELECT string_agg(name || ':' || model_type, ',' ORDER BY name) FROM dsl.models}),
	'm1:mf,m2:lightgcn', 'an MF and a LightGCN model trained through the 0.1.0 SQL');

# each model's answers to everything a client can ask (DslFixture)
my $before = serving_results($node, 'upgraded', 'src.test_pairs', 'm1', 'm2');
ok(length($before->{'m1 recommend'}) == 32 && length($before->{'m2 recommend'}) == 32
	  && $before->{'m2 similar'} =~ /^\d+:/,
	'both models serve under 0.1.0');

$node->safe_psql('upgraded', 'ALTER EXTENSION dsl_rec UPDATE');
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'dsl_rec'"),
	$new_version, "ALTER EXTENSION dsl_rec UPDATE: version $new_version");
my $after = serving_results($node, 'upgraded', 'src.test_pairs', 'm1', 'm2');
for my $k (sort keys %$before)
{
	is($after->{$k}, $before->{$k}, "after the update: $k as before");
}
ok(!exists $before->{'m1 for_items'} && length($after->{'m1 for_items'} // '') == 32
	  && length($after->{'m2 for_items'} // '') == 32,
	'0.2.0 functions serve the models stored under 0.1.0 (dsl.recommend_for_items)');

$node->safe_psql('upgraded', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m3', 'src.inter', dim => 8, epochs => 2, seed => 3);
});
my $m3 = serving_results($node, 'upgraded', 'src.test_pairs', 'm3');
ok(length($m3->{'m3 recommend'}) == 32 && $m3->{'m3 rows'} =~ /^700:/,
	'a model trained after the update serves');
is($node->safe_psql('upgraded', "SELECT string_agg(name, ',' ORDER BY model_id) FROM dsl.models"),
	'm1,m2,m3', '... beside the two from 0.1.0, with a new model_id');

# --- 2. the updated schema is a fresh install's --------------------------
# pg_dump --schema-only --schema=dsl prints nothing but CREATE SCHEMA dsl:
# an extension's members are dumped as CREATE EXTENSION.  The
# --binary-upgrade form (pg_upgrade's) dumps every member with its full
# definition (tables with columns in order, defaults, constraints, indexes,
# policies, functions, types, operators, casts, comments, privileges, the
# event trigger), which is what the two must share.  Object ids, xids and
# the sequence position differ and are masked.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION dsl_rec');

my $members_sql = q{
	SELECT string_agg(o.member, E'\n' ORDER BY o.member COLLATE "C")
	FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid,
	     LATERAL (SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS member) o
	WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'dsl_rec'};
my %members = map { $_ => $node->safe_psql($_, $members_sql) } ('upgraded', 'fresh');
like($members{fresh}, qr/^event trigger dsl_rec_drop_guard$/m, 'fresh install: the drop guard is a member');
like($members{fresh}, qr/^table dsl\.models$/m, 'fresh install: dsl.models is a member');
ok($members{upgraded} eq $members{fresh}, 'updated: the same extension members as a fresh install')
  or diag(unified_diff($members{upgraded}, $members{fresh}));

sub schema_dump
{
	my ($db) = @_;
	my ($out, $err) = run_command([ 'pg_dump', '--schema-only', '--binary-upgrade',
			'--exclude-schema=src', '--exclude-schema=public', '-d', $node->connstr($db) ]);
	die "pg_dump $db: $err" if $err ne '';
	my @keep;
	for my $line (split /\n/, $out)
	{
		next if $line =~ /binary_upgrade_set_next_|^\\(un)?restrict |^SELECT pg_catalog\.setval\(/;
		$line =~ s/(binary_upgrade_create_empty_extension\('dsl_rec', 'dsl', false, '[^']*', )'\{[\d,]*\}'/$1'{<oids>}'/;
		$line =~ s/relfrozenxid = '\d+', relminmxid = '\d+'/relfrozenxid = <xid>, relminmxid = <mxid>/;
		$line =~ s/^WHERE oid = '\d+';$/WHERE oid = <oid>;/;
		push @keep, $line;
	}
	return join("\n", @keep) . "\n";
}
my %dump = map { $_ => schema_dump($_) } ('upgraded', 'fresh');
like($dump{fresh}, qr/^CREATE TABLE dsl\.models \(/m, 'the schema dump holds the members: dsl.models');
like($dump{fresh}, qr/^CREATE FUNCTION dsl\.train\(/m, '... dsl.train');
like($dump{fresh}, qr/^CREATE EVENT TRIGGER dsl_rec_drop_guard ON ddl_command_start/m, '... the event trigger');
like($dump{fresh}, qr/^CREATE POLICY models_read ON dsl\.models/m, '... the policies');
ok($dump{upgraded} eq $dump{fresh}, 'updated: the same schema as a fresh install, definitions included')
  or diag(unified_diff($dump{upgraded}, $dump{fresh}));

# the difference of two texts, for a failure's diagnostics
sub unified_diff
{
	my ($x, $y) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	PostgreSQL::Test::Utils::append_to_file("$dir/upgraded", "$x\n");
	PostgreSQL::Test::Utils::append_to_file("$dir/fresh", "$y\n");
	my ($out, $err) = run_command([ 'diff', '-u', "$dir/upgraded", "$dir/fresh" ]);
	return "--- upgraded from 0.1.0, +++ fresh $new_version\n$out";
}

# --- 3. a plain DROP EXTENSION refuses while models are stored -------------
# psql prints the SQLSTATE with VERBOSITY verbose
sub psql_verbose
{
	my ($db, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql");
	return ($ret, $err);
}

my $hint = qr/HINT:  Drop the models with dsl\.drop_model\(\) first, or export them first with pg_dump --data-only --schema=dsl, or use DROP EXTENSION dsl_rec CASCADE to drop the extension with every model\./;
my ($ret, $err) = psql_verbose('upgraded', 'DROP EXTENSION dsl_rec');
isnt($ret, 0, 'DROP EXTENSION dsl_rec with models fails');
like($err, qr/ERROR:  2BP01: cannot drop extension dsl_rec because it holds 3 trained models/,
	'... with 2BP01 and how many models it holds');
like($err, qr/DETAIL:  The models are "m1", "m2" and "m3"\./, '... naming them');
like($err, $hint, '... and saying what to do');
is($node->safe_psql('upgraded', 'SELECT count(*) FROM dsl.models'), '3', 'the models are still there');

($ret, $err) = psql_verbose('upgraded', 'DROP EXTENSION IF EXISTS dsl_rec');
like($err, qr/ERROR:  2BP01: cannot drop extension dsl_rec because it holds 3 trained models/,
	'DROP EXTENSION IF EXISTS dsl_rec refuses too');
($ret, $err) = psql_verbose('upgraded', 'DROP EXTENSION dsl_rec RESTRICT');
like($err, qr/ERROR:  2BP01: cannot drop extension dsl_rec because it holds 3 trained models/,
	'DROP EXTENSION dsl_rec RESTRICT refuses too');
($ret, $err) = psql_verbose('upgraded', q{DO $$ BEGIN EXECUTE 'DROP EXTENSION dsl_rec'; END $$});
like($err, qr/ERROR:  2BP01: cannot drop extension dsl_rec/, '... and from inside a function');
# a model trained earlier in the same transaction counts (the failed DROP
# rolls it back)
($ret, $err) = psql_verbose('upgraded', q{
	BEGIN;
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m4', 'src.inter', dim => 4, epochs => 1, seed => 4);
	DROP EXTENSION dsl_rec;
	COMMIT;});
like($err, qr/ERROR:  2BP01: cannot drop extension dsl_rec because it holds 4 trained models/,
	'a model trained earlier in the same transaction is counted');
like($err, qr/DETAIL:  The models include "m1", "m2", "m3" and 1 more\./, '... and more than three are summed up');
is($node->safe_psql('upgraded', "SELECT string_agg(name, ',' ORDER BY name) FROM dsl.models"), 'm1,m2,m3',
	'... and the refused transaction kept nothing of it');

# a role that does not own the extension gets PostgreSQL's own error and
# learns nothing about the models
$node->safe_psql('upgraded', 'CREATE ROLE regress_stranger');
($ret, $err) = psql_verbose('upgraded', 'SET ROLE regress_stranger; DROP EXTENSION dsl_rec');
like($err, qr/ERROR:  42501: must be owner of extension dsl_rec/, 'a non-owner gets "must be owner"');
unlike($err, qr/m1|trained model/, '... and no model names');

# the DROP EXTENSION of another extension is not affected
my $other = $node->safe_psql('upgraded', q{
	SELECT name FROM pg_available_extensions
	WHERE name IN ('pg_trgm', 'cube', 'hstore', 'seg', 'citext')
	ORDER BY array_position(ARRAY['pg_trgm', 'cube', 'hstore', 'seg', 'citext'], name::text) LIMIT 1});
SKIP:
{
	skip 'no contrib extension (pg_trgm, cube, hstore, seg, citext) is installed', 4 if $other eq '';
	$node->safe_psql('upgraded', "CREATE EXTENSION $other");
	($ret, $err) = psql_verbose('upgraded', "DROP EXTENSION $other, dsl_rec");
	like($err, qr/ERROR:  2BP01: cannot drop extension dsl_rec/, "DROP EXTENSION $other, dsl_rec refuses");
	is($node->safe_psql('upgraded', "SELECT count(*) FROM pg_extension WHERE extname = '$other'"), '1',
		"... and drops neither ($other is still there)");
	($ret, $err) = psql_verbose('upgraded', "DROP EXTENSION $other");
	is($ret, 0, "DROP EXTENSION $other succeeds while models are stored");
	is($node->safe_psql('upgraded', "SELECT count(*) FROM pg_extension WHERE extname = '$other'"), '0',
		"... and $other is gone");
}

# The count sees every model, whatever row-level security shows the
# dropping role: an owner that is not a superuser sees none of the models
# of other roles (the tables FORCE row-level security), yet is refused.
$node->safe_psql('postgres', 'CREATE DATABASE owned');
$node->safe_psql('owned', q{
	CREATE ROLE regress_admin SUPERUSER;
	CREATE ROLE regress_trainer;
	SET ROLE regress_admin;
	CREATE EXTENSION dsl_rec;
} . inter_sql() . q{
	GRANT SELECT ON inter TO regress_trainer;
	SET ROLE regress_trainer;
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('theirs', 'inter', dim => 4, epochs => 1, seed => 1);
	RESET ROLE;
	ALTER ROLE regress_admin NOSUPERUSER;
});
is($node->safe_psql('owned', 'SET ROLE regress_admin; SELECT count(*) FROM dsl.models'), '0',
	'a non-superuser owner of the extension sees no model of another role');
($ret, $err) = psql_verbose('owned', 'SET ROLE regress_admin; SET row_security = off; DROP EXTENSION dsl_rec');
like($err, qr/ERROR:  2BP01: cannot drop extension dsl_rec because it holds 1 trained model\n/,
	'... and its DROP EXTENSION is refused all the same (singular message)');
like($err, qr/DETAIL:  The model is "theirs"\./, '... naming the model');
$node->safe_psql('postgres', 'ALTER ROLE regress_admin SUPERUSER');

# export, then DROP ... CASCADE, then restore into a new CREATE EXTENSION:
# what the hint recommends
my $everything = serving_results($node, 'upgraded', 'src.test_pairs', 'm1', 'm2', 'm3');
my $export = $node->basedir . '/models.sql';
$node->command_ok([ 'pg_dump', '--data-only', '--schema=dsl', '-f', $export, '-d', $node->connstr('upgraded') ],
	'pg_dump --data-only --schema=dsl exports the models');
($ret, $err) = psql_verbose('upgraded', 'DROP EXTENSION dsl_rec CASCADE');
is($ret, 0, 'DROP EXTENSION dsl_rec CASCADE drops the extension with its models');
is($node->safe_psql('upgraded', q{
	SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'dsl_rec') || ','
	    || (to_regclass('dsl.models') IS NULL AND to_regclass('dsl.parameters') IS NULL
	        AND to_regclass('dsl.seen_items') IS NULL) || ','
	    || (SELECT count(*) FROM pg_event_trigger WHERE evtname = 'dsl_rec_drop_guard')}),
	'0,true,0', '... the tables and the event trigger are gone');

$node->safe_psql('upgraded', 'CREATE EXTENSION dsl_rec');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $export, '-d', $node->connstr('upgraded') ],
	'the export restores into a new CREATE EXTENSION dsl_rec with psql');
is_deeply(serving_results($node, 'upgraded', 'src.test_pairs', 'm1', 'm2', 'm3'), $everything,
	'the restored models serve exactly what they served before');
is($node->safe_psql('upgraded', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('m5', 'src.inter', dim => 4, epochs => 1, seed => 5);
	SELECT (SELECT model_id FROM dsl.models WHERE name = 'm5') > (SELECT max(model_id) FROM dsl.models WHERE name <> 'm5')}),
	"1\nt", '... and the id sequence came back with them');

# with every model dropped, a plain DROP EXTENSION goes through
$node->safe_psql('upgraded', 'SELECT dsl.drop_model(name) FROM dsl.models');
($ret, $err) = psql_verbose('upgraded', 'DROP EXTENSION dsl_rec');
is($ret, 0, 'after dsl.drop_model of every model, a plain DROP EXTENSION succeeds');
is($node->safe_psql('upgraded', "SELECT count(*) FROM pg_extension WHERE extname = 'dsl_rec'"), '0',
	'... and the extension is gone');
$node->safe_psql('upgraded', 'CREATE EXTENSION dsl_rec');
is($node->safe_psql('upgraded', q{
	SELECT extversion FROM pg_extension WHERE extname = 'dsl_rec'
	UNION ALL SELECT evtenabled::text FROM pg_event_trigger WHERE evtname = 'dsl_rec_drop_guard'}),
	"$new_version\nO", 'CREATE EXTENSION again: the new version, with its guard enabled');

# A training that commits while a DROP EXTENSION runs is counted: the guard
# waits for it (it locks dsl.models against writers) and counts with the
# newest snapshot, also in a REPEATABLE READ transaction whose snapshot was
# taken before the training committed.
$node->safe_psql('fresh', inter_sql());
my $trainer = $node->background_psql('fresh');
$trainer->query_safe(q{
	BEGIN;
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('late', 'inter', dim => 4, epochs => 1, seed => 1);
});
my $dropper = $node->background_psql('fresh');
$dropper->query_safe(q{
	CREATE FUNCTION pg_temp.try_drop() RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		DROP EXTENSION dsl_rec;
		RETURN 'dropped';
	EXCEPTION WHEN OTHERS THEN
		RETURN SQLSTATE || ' ' || SQLERRM;
	END $$;
	BEGIN ISOLATION LEVEL REPEATABLE READ;
	SELECT count(*) FROM dsl.models;
});
$dropper->query_until(qr/dropping/, "\\echo dropping\nSELECT pg_temp.try_drop();\n");
ok($node->poll_query_until('fresh', q{
	SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%try_drop()%'}),
	'a DROP EXTENSION waits for a training that has not committed');
$trainer->query_safe('COMMIT');
$trainer->quit;
my $dropped = $dropper->query_safe(q{SELECT 'done'});
$dropper->query_safe('COMMIT');
$dropper->quit;
like($dropped, qr/^2BP01 cannot drop extension dsl_rec because it holds 1 trained model\ndone$/,
	'... and once the training commits, refuses to drop its model');
is($node->safe_psql('fresh', 'SELECT name FROM dsl.models'), 'late', '... which is still there');

$node->safe_psql('fresh', "SELECT dsl.drop_model('late')");
($ret, $err) = psql_verbose('fresh', 'DROP EXTENSION dsl_rec');
is($ret, 0, 'a plain DROP EXTENSION of an install without models succeeds');

# DROP OWNED BY the extension's owner would drop the extension with every
# model, even without CASCADE: refused the same way; CASCADE goes through
$node->safe_psql('postgres', 'CREATE ROLE regress_ext_admin SUPERUSER; CREATE DATABASE owned_by_admin');
$node->safe_psql('owned_by_admin', q{
	SET ROLE regress_ext_admin;
	CREATE EXTENSION dsl_rec;
	SET dsl_rec.progress = off;
	CREATE TABLE inter AS SELECT u AS user_id, (u * 7 + k) % 50 AS item_id
	FROM generate_series(1, 60) u, generate_series(1, 5) k;
	SELECT count(*) FROM dsl.train('m', 'inter', dim => 4, epochs => 1);
});
($ret, $err) = psql_verbose('owned_by_admin', 'DROP OWNED BY regress_ext_admin');
isnt($ret, 0, "DROP OWNED BY the extension's owner with models fails");
like($err, qr/ERROR:  2BP01: cannot drop extension dsl_rec because it holds 1 trained model\n/,
	'... with 2BP01 and the count');
like($err, qr/HINT:  DROP OWNED would drop extension dsl_rec, which the role owns\./,
	'... and a hint saying why');
is($node->safe_psql('owned_by_admin', 'SELECT count(*) FROM dsl.models'), '1', '... the model is kept');
($ret, $err) = psql_verbose('owned_by_admin', 'DROP OWNED BY regress_ext_admin CASCADE');
is($ret, 0, 'DROP OWNED ... CASCADE drops them');
is($node->safe_psql('owned_by_admin', "SELECT count(*) FROM pg_extension WHERE extname = 'dsl_rec'"),
	'0', '... the extension with them');

$node->stop;
done_testing();
