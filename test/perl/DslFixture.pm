# test/perl/DslFixture.pm - the tables the TAP tests train on (test/dev.sh
# puts this directory on prove's -I path)
package DslFixture;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(inter_sql big_sql);

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

1;
