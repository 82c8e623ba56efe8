# max_seconds bounds the whole dsl.train call of the stopping rule: a longer
# schedule that would end past the limit is not begun, and the refit runs
# only if it fits in the time left.
#
# The limit is 1.4 times what the stopping rule's first schedule (30
# epochs on the training pairs less the hold-out, validated at its end)
# took just before, in the same test: the first schedule should end before
# it, and the next one (to 60 epochs) would end after it.  That holds while
# the two runs' speeds stay within a factor of 1.4 of each other, and this
# VM's runs of the same call differ by up to 2x from one minute to the
# next.  So an attempt whose run took another path (the limit hit
# mid-schedule, or the second schedule begun) is reported and retried, at
# most 5 times; its NOTICEs must still say what was decided.  Nothing here
# asserts a time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use DslFixture;

my $node = PostgreSQL::Test::Cluster->new('time_budget');
$node->init;
$node->append_conf('postgresql.conf', "maintenance_work_mem = '256MB'");
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'dsl_rec'");
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION dsl_rec;' . big_sql());

# a first training warms the server (its threads, the table's pages): timed
# cold, the measure below ran more than 1.4 times as long as the same epochs
# later in the test, and the limit let a second schedule begin
$node->safe_psql('postgres', q{
	SET dsl_rec.progress = off;
	SELECT count(*) FROM dsl.train('warmup', 'big', dim => 8, epochs => 3, seed => 1)});

my ($t30, $limit, $ret, $out, $err);
my $planned = qr/stopping after 30 epochs: validation still improved, but a schedule of 60 epochs would end about \d+ s after the call began, past the time limit of [0-9.e+-]+ s \(option max_seconds\); keeping epoch 30/;
for my $attempt (1 .. 5)
{
	# what the first schedule of the stopping rule takes here: the same
	# call stopped after it (max_epochs 30, no refit; reading included)
	$t30 = $node->safe_psql('postgres', q{
		SET dsl_rec.progress = off;
		SELECT count(*) FROM dsl.train('first30', 'big', dim => 8, seed => 1, replace => true,
		                               options => '{"max_epochs": 30, "refit": false}');
		SELECT train_seconds FROM dsl.models WHERE name = 'first30'});
	$t30 = (split /\n/, $t30)[-1];
	$limit = 1.4 * $t30;
	($ret, $out, $err) = $node->psql('postgres', qq{
		SET dsl_rec.progress = off;
		SELECT count(*) FROM dsl.train('budget', 'big', dim => 8, seed => 1, replace => true,
		                               options => '{"max_seconds": $limit}');
		SELECT epochs, best_epoch, hyperparams->>'refit' FROM dsl.models WHERE name = 'budget'});
	last if $ret != 0 || $err =~ $planned;
	# another path: it must have been said
	like($err,
		qr/stopping at the time limit of [0-9.e+-]+ s \(option max_seconds\); keeping epoch \d+, without a refit|stopping after \d+ epochs: validation still improved, but a schedule of \d+ epochs would end about \d+ s after the call began, past the time limit/,
		"attempt $attempt (the first schedule took $t30 s) took another path, and said so; retried");
}
cmp_ok($t30, '>', 0, "the first schedule (30 epochs) took $t30 s");
is($ret, 0, 'the stopping rule under a time limit trains and stores a model');
like($err, $planned, 'the second schedule is not begun: it would overrun the limit');
unlike($err, qr/stopping at the time limit/, '... so the limit itself is never hit mid-schedule');

# the refit of the 30 chosen epochs would take about as long as the first
# phase, so it does not fit in what is left: skipped, with a NOTICE (were
# this run much faster than the 30-epoch one, it would fit and run)
my ($epochs, $best, $refit) = split /\|/, (split /\n/, $out)[-1];
if ($epochs == 60)
{
	like($err, qr/refitting on all \d+ pairs over 30 epochs/, 'refit of 30 epochs ran');
	is($best, 60, '... and is the stored model');
	is($refit, 'true', '... recorded in the hyperparameters');
}
else
{
	is($epochs, 30, 'no refit: the first 30 epochs are stored');
	like($err, qr/not refitting: 30 epochs on all pairs would end about \d+ s after the call began, past the time limit/,
		'... and a NOTICE says why');
	is($best, 30, '... the kept epoch is the first schedule\'s end');
}

$node->stop;
done_testing();
