# test/perl/DslFixture.pm - the tables the TAP tests train on (test/dev.sh
# puts this directory on prove's -I path)
package DslFixture;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(inter_sql big_sql serving_results);

# inter: 400 users x 15 items each among 300, deterministic
sub inter_sql
{
	return q{
	CREATE TABLE inter AS
	SELECT u AS user_id, (u * 7 + k * 13) % 300 AS item_id
	FROM generate_series(1, 400) u, generate_series(1, 15) k;
	};
}

# big: 20,000 users x 20 items among 5,000, for trainings that must still be
# running when a test cancels or kills them
sub big_sql
{
	return q{
	CREATE TABLE big AS
	SELECT u AS user_id, (u * 31 + k * 17) % 5000 AS item_id
	FROM generate_series(1, 20000) u, generate_series(1, 20) k;
	};
}

# Everything a client can ask of a trained model, one value per query
# (MODEL and TEST are replaced): recommend, candidates, score,
# recommend_for_items, recommend_all, similar_items, evaluate on TEST, and
# the stored rows.
my %serving = (
	recommend => q{SELECT md5(string_agg(r.item_id || ':' || r.score || ':' || r.cold_start, ',' ORDER BY u, r.rank))
		FROM generate_series(1, 420, 7) u, dsl.recommend('MODEL', u, 10) r},
	candidates => q{SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank)
		FROM dsl.recommend('MODEL', 5, 5, false, ARRAY[1, 2, 3, 50, 60, 70, 299])},
	score => q{SELECT string_agg(dsl.score('MODEL', u, u % 300)::text, ',' ORDER BY u) FROM generate_series(1, 400, 13) u},
	for_items => q{SELECT md5(string_agg(r.item_id || ':' || r.score || ':' || r.cold_start, ',' ORDER BY h, r.rank))
		FROM generate_series(1, 60, 7) h,
		LATERAL dsl.recommend_for_items('MODEL', ARRAY(SELECT (h * 11 + j * 29) % 300 FROM generate_series(1, h % 9 + 1) j), 10) r},
	recommend_all => q{SELECT md5(string_agg(user_id || ':' || item_id || ':' || score, ',' ORDER BY user_id, rank))
		FROM dsl.recommend_all('MODEL', 5)},
	similar => q{SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank) FROM dsl.similar_items('MODEL', 7, 10)},
	evaluate => q{SELECT string_agg(metric || '=' || value, ',' ORDER BY metric) FROM dsl.evaluate('MODEL', 'TEST', k => 10)},
	rows => q{SELECT count(*) || ':' || md5(string_agg(part || entity_id || vec::text, ',' ORDER BY part, entity_id))
		FROM dsl.parameters JOIN dsl.models USING (model_id) WHERE name = 'MODEL'},
	seen => q{SELECT count(*) || ':' || md5(string_agg(user_id || items::text, ',' ORDER BY user_id))
		FROM dsl.seen_items JOIN dsl.models USING (model_id) WHERE name = 'MODEL'},
	model => q{SELECT model_id || ':' || owner || ':' || readers::text || ':' || model_type || ':' || dim || ':' || density
		|| ':' || n_users || ':' || n_items || ':' || hyperparams::text || ':' || trained_at FROM dsl.models WHERE name = 'MODEL'});

# queries that need a function a 0.1.0 install lacks: left out there
my %needs = (for_items => 'dsl.recommend_for_items(text,bigint[],integer,boolean,bigint[])');

# serving_results(NODE, DB, TEST, MODEL...): each model's answers to every
# query above that the installed version has, keyed "MODEL query", each from
# a new session (so no serving cache carries over between them)
sub serving_results
{
	my ($node, $db, $test, @models) = @_;
	my %r;
	my %absent;
	for my $q (keys %needs)
	{
		$absent{$q} = 1
		  if $node->safe_psql($db, "SELECT to_regprocedure('$needs{$q}') IS NULL") eq 't';
	}
	for my $m (@models)
	{
		for my $q (sort keys %serving)
		{
			next if $absent{$q};
			(my $sql = $serving{$q}) =~ s/MODEL/$m/g;
			$sql =~ s/TEST/$test/g;
			$r{"$m $q"} = $node->safe_psql($db, $sql);
		}
	}
	return \%r;
}

1;
