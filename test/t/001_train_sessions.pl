# Training across sessions: a concurrent training of the same name is refused
# at once, a cancelled or timed-out training (MF, and MultVAE with its own
# epoch loop) leaves the previous model intact,
# and another session's retrain is seen by the next dsl.recommend() call.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use DslFixture;

my $node = PostgreSQL::Test::Cluster->new('sessions');
$node->init;
$node->append_conf('postgresql.conf', "maintenance_work_mem = '256MB'");
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'dsl_rec'");
$node->start;

$node->safe_psql('postgres',
	'CREATE EXTENSION dsl_rec; SET dsl_rec.progress = off;' . inter_sql() . big_sql()
	  . q{SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 2, seed => 1);});

my $model_rows = q{
	SELECT m.model_id, count(*), md5(string_agg(p.part || p.entity_id || p.vec::text, ',' ORDER BY p.part, p.entity_id))
	FROM dsl.models m JOIN dsl.parameters p USING (model_id) WHERE m.name = 'm' GROUP BY m.model_id};
my $before = $node->safe_psql('postgres', $model_rows);
my $recs_before = $node->safe_psql('postgres',
	"SELECT string_agg(item_id::text, ',' ORDER BY score DESC, item_id) FROM dsl.recommend('m', 5, k => 10)");

# --- the same name trained by two sessions at once ---------------------------
my $a = $node->background_psql('postgres');
$a->query_safe("SET dsl_rec.progress = off");
$a->query_safe("BEGIN");
$a->query_safe("SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 1, seed => 2, replace => true)");

my $t0 = time();
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 1, replace => true)");
my $waited = time() - $t0;
isnt($ret, 0, 'a second training of the same name fails');
like($err, qr/model "m" is being trained by another session/, '... with a clear error');
cmp_ok($waited, '<', 10, '... at once, not after a lock wait');

# another name trains fine meanwhile
($ret, $out, $err) = $node->psql('postgres',
	"SET dsl_rec.progress = off; SELECT count(*) FROM dsl.train('other', 'inter', dim => 8, epochs => 1)");
is($ret, 0, 'a different model name trains while the first is busy');

# readers still see the committed model while A's retrain is uncommitted
is($node->safe_psql('postgres', $model_rows), $before, 'uncommitted retrain is invisible to others');
$a->query_safe("ROLLBACK");
$a->quit;
is($node->safe_psql('postgres', $model_rows), $before, 'rolled-back retrain left the model intact');

# --- cancel and statement_timeout in the middle of a training ----------------
sub cancel_mid_training
{
	my ($how, $type) = @_;
	my $args = ($type // 'mf') eq 'multvae' ? "model_type => 'multvae', dim => 65" : 'dim => 64';
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe("SET dsl_rec.progress = off");
	my $pid = $bg->query_safe("SELECT pg_backend_pid()");
	chomp $pid;
	if ($how eq 'timeout')
	{
		$bg->query_safe("SET statement_timeout = '1500ms'");
	}
	$bg->{stdin} .= "SELECT count(*) FROM dsl.train('m', 'big', $args, epochs => 1000, replace => true);\n";
	$bg->{run}->pump_nb;
	# wait until the training is really running
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND query LIKE '%dsl.train%' AND state = 'active'")
	  or die "training did not start";
	sleep 1;
	my $t = time();
	if ($how eq 'cancel')
	{
		$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	}
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid AND state = 'active'")
	  or die "training did not end";
	my $took = time() - $t;
	$bg->quit;
	return $took;
}

my $took = cancel_mid_training('cancel');
cmp_ok($took, '<', 3, "pg_cancel_backend ends the training promptly (${took}s)");
is($node->safe_psql('postgres', $model_rows), $before, 'cancelled training left the model intact');

$took = cancel_mid_training('timeout');
is($node->safe_psql('postgres', $model_rows), $before, 'statement_timeout left the model intact');

# a MultVAE retrain (its own epoch loop) cancelled the same way
$took = cancel_mid_training('cancel', 'multvae');
cmp_ok($took, '<', 3, "pg_cancel_backend ends a MultVAE training promptly (${took}s)");
is($node->safe_psql('postgres', $model_rows), $before, 'the cancelled MultVAE retrain left the model intact');
is($node->safe_psql('postgres',
	"SELECT string_agg(item_id::text, ',' ORDER BY score DESC, item_id) FROM dsl.recommend('m', 5, k => 10)"),
	$recs_before, 'the model serves the same recommendations as before');

# --- another session's retrain is seen by the next recommend call -----------
my $reader = $node->background_psql('postgres', on_error_stop => 0);
my $r1 = $reader->query_safe(
	"SELECT string_agg(item_id::text, ',' ORDER BY score DESC, item_id) FROM dsl.recommend('m', 5, k => 10)");
is($r1, $recs_before, 'reader session serves the model (and caches it)');
$node->safe_psql('postgres',
	"SET dsl_rec.progress = off; SELECT count(*) FROM dsl.train('m', 'inter', dim => 8, epochs => 3, seed => 99, replace => true)");
my $expected = $node->safe_psql('postgres',
	"SELECT string_agg(item_id::text, ',' ORDER BY score DESC, item_id) FROM dsl.recommend('m', 5, k => 10)");
isnt($expected, $recs_before, 'the retrained model recommends differently');
my $r2 = $reader->query_safe(
	"SELECT string_agg(item_id::text, ',' ORDER BY score DESC, item_id) FROM dsl.recommend('m', 5, k => 10)");
is($r2, $expected, 'the cached reader sees the retrain on its next call');
$node->safe_psql('postgres', "SELECT dsl.drop_model('m')");
my ($rret, $rout, $rerr) = (0, '', '');
eval { $reader->query_safe("SELECT count(*) FROM dsl.recommend('m', 5)"); };
like($@, qr/model "m" does not exist/, 'a dropped model errors in the cached reader too');
$reader->quit;

$node->stop;
done_testing();
