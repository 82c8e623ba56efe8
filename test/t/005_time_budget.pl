# max_seconds bounds the whole dsl.train call of the stopping rule: the limit
# hit mid-schedule stops it there; a doubled schedule that would end past
# the limit is not begun; the longest schedule that ends within it is begun
# instead when it adds at least a quarter of the epochs run; the refit runs
# only if it fits in the time left.
#
# Which of these happens depends on how long epochs take, and this VM's
# runs of the same call differ by up to 2x from one minute to the next.  So
# the decisions are checked on the clock of dsl_rec.debug_epoch_seconds = 1,
# on which an epoch on the training pairs takes exactly one second (an
# epoch of the refit in proportion to its pairs) and nothing else takes
# any time; the wall clock is checked once, where no speed can change the
# outcome.  Nothing here asserts a time.
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

# dsl.train under the stopping rule with these options, on the simulated
# clock unless $wall; returns its NOTICEs, the stored epochs, best epoch
# and refit epochs ('none' without a refit), and the seconds of its result
# rows (one string)
sub budget_train
{
	my ($name, $options, $wall) = @_;
	my $clock = $wall ? '' : 'SET dsl_rec.debug_epoch_seconds = 1;';
	my ($ret, $out, $err) = $node->psql('postgres', qq{
		SET dsl_rec.progress = off;
		$clock
		CREATE TEMP TABLE rows_$name AS
		SELECT * FROM dsl.train('$name', 'big', dim => 8, seed => 1, options => '$options');
		SELECT epochs, best_epoch, coalesce(hyperparams->>'refit_epochs', 'none') FROM dsl.models WHERE name = '$name';
		SELECT string_agg(seconds::text, ' ' ORDER BY epoch) FROM rows_$name;});
	is($ret, 0, "$name: trains and stores a model") or diag($err);
	my ($stored, $secs) = split /\n/, $out;
	my ($epochs, $best, $refit) = split /\|/, $stored;
	return ($err, $epochs, $best, $refit, $secs);
}

my $limit_said = qr/past the time limit of [0-9.]+ s \(option max_seconds\)/;

# the wall clock: a limit of 1 ms is used up by the first epoch
my ($err, $epochs, $best, $refit, $secs) = budget_train('wall', '{"max_seconds": 0.001}', 1);
like($err, qr/stopping at the time limit of 0\.001 s \(option max_seconds\); keeping epoch 1, without a refit/,
	'wall clock: the limit is hit in the first epoch, which is validated and kept');
is("$epochs|$best", '1|1', '... one epoch is stored');

# 10.5 s: hit after epoch 11, in the middle of the first schedule (30)
($err, $epochs, $best, $refit, $secs) = budget_train('mid', '{"max_seconds": 10.5}');
like($err, qr/stopping at the time limit of 10\.5 s \(option max_seconds\); keeping epoch 11, without a refit/,
	'10.5 s: stops at the limit after epoch 11');
is("$epochs|$best|$refit", '11|11|none', '... stores epoch 11, not refitted');
is($secs, join(' ', (1) x 11), '... and each result row counts one second');
unlike($err, qr/not refitting/, '... its NOTICE already said there is no refit');

# 36 s: after 30 epochs, 60 would end at 60 s; the longest schedule that
# fits, 30 + floor(0.9 x 6) = 35 epochs, adds less than a quarter (8):
# none is begun, and the refit of 30 epochs on more pairs does not fit
($err, $epochs, $best, $refit) = budget_train('budget', '{"max_seconds": 36}');
like($err, qr/stopping after 30 epochs: [^\n]*, but a schedule of 60 epochs would end about 60 s after the call began, $limit_said; keeping epoch 30/,
	'36 s: the doubled schedule is not begun');
unlike($err, qr/continuing over one of/, '... and no shorter one either');
like($err, qr/not refitting: 30 epochs on all pairs would end about \d+ s after the call began, $limit_said/,
	'... the refit does not fit, and a NOTICE says so');
is("$epochs|$best|$refit", '30|30|none', '... the first schedule\'s end is stored');

# 38.9 s: 30 + floor(0.9 x 8.9) = 38 epochs add exactly a quarter: begun
($err, $epochs, $best) = budget_train('budget_edge', '{"max_seconds": 38.9}');
like($err, qr/continuing over one of 38 epochs, the longest that ends within the time limit of 38\.9 s \(option max_seconds\)/,
	'38.9 s: a schedule of 38 epochs (a quarter more) is begun');
unlike($err, qr/stopping at the time limit/, '... and ends before the limit');
is($epochs, 38, '... all its epochs are stored');

# 45 s: 30 + floor(0.9 x 15) = 43 epochs; after them, neither 86 nor a
# quarter more fit
($err, $epochs, $best, $refit) = budget_train('budget_fit', '{"max_seconds": 45}');
like($err, qr/continuing over one of 43 epochs, the longest that ends within the time limit of 45 s \(option max_seconds\)/,
	'45 s: the longest schedule that fits (43 epochs) is begun instead of 60');
like($err, qr/stopping after 43 epochs: (the last schedule improved|[^\n]*a schedule of 86 epochs would end about 86 s after the call began, $limit_said)/,
	'... after it, no further schedule is begun');
unlike($err, qr/stopping at the time limit/, '... the limit is not hit mid-schedule');
like($err, qr/not refitting: 43 epochs on all pairs would end about \d+ s after the call began, $limit_said/,
	'... no time is left for a refit');
is("$epochs|$refit", '43|none', '... the shorter schedule\'s model is stored');
ok($best == 43 || $best == 30, "the kept epoch ($best) is the end of one of the two schedules");

# 1000 s with max_epochs 30: the refit fits and runs; its epochs count in
# proportion to its pairs (all of them, more than the training pairs)
($err, $epochs, $best, $refit, $secs) = budget_train('budget_refit', '{"max_seconds": 1000, "max_epochs": 30}');
like($err, qr/refitting on all \d+ pairs over 30 epochs \(epochs 31 to 60\)/, '1000 s: the refit of 30 epochs runs');
is("$epochs|$best|$refit", '60|60|30', '... and is the stored model');
my @secs = split / /, $secs;
is(scalar(grep { $_ == 1 } @secs[0 .. 29]), 30, '... the first 30 result rows count one second each');
my %refit_secs = map { $_ => 1 } @secs[30 .. 59];
is(scalar(keys %refit_secs), 1, '... the refit\'s rows all count the same');
cmp_ok($secs[30], '>', 1, "... more than one ($secs[30] s): they train on every pair");

# Dense LightGCN with reg NULL trains its first schedule (30 epochs) with reg
# 0.001, then with 0.0001 (train.c, choose_reg): a limit of 45 s is hit in
# the second trial, whose epoch 15 (result row 45) is kept as it stands
$node->safe_psql('postgres', q{CREATE TABLE forty AS
	SELECT u AS user_id, (u * 7 + k * 11) % 900 AS item_id
	FROM generate_series(1, 2000) u, generate_series(1, 20) k});
my ($ret, $out);
($ret, $out, $err) = $node->psql('postgres', q{
	SET dsl_rec.progress = off;
	SET dsl_rec.debug_epoch_seconds = 1;
	SELECT count(*) FROM dsl.train('lg_trial', 'forty', model_type => 'lightgcn', dim => 4, density => 1, seed => 1,
	                               options => '{"max_seconds": 45}');
	SELECT best_epoch, hyperparams->>'trial_epochs', hyperparams->>'reg',
	       coalesce(hyperparams->>'refit_epochs', 'none'),
	       (SELECT count(*) FROM jsonb_object_keys(hyperparams->'reg_trials'))
	FROM dsl.models WHERE name = 'lg_trial';});
is($ret, 0, 'LightGCN, 45 s: trains and stores a model') or diag($err);
like($err, qr/trying reg 0\.001 over the first schedule \(epochs 1 to 30\)/, '... tries reg 0.001 first');
like($err, qr/trying reg 0\.0001 over the first schedule \(epochs 31 to 60\)/, '... then 0.0001');
like($err, qr/stopping at the time limit of 45 s \(option max_seconds\); keeping epoch 45, without a refit/,
	'... the limit is hit in the second trial');
is($out, "45\n45|30|0.0001|none|2", '... 45 rows; the second trial\'s epoch 15 is kept, after 30 trial epochs');

$node->stop;
done_testing();
