-- test/sql/planted.sql - a small interaction table with planted structure
--
-- 240 users and 120 items fall into 6 latent clusters (user u and item i are
-- in cluster u % 6 and i % 6).  Each user picks 12 items: 10 from their own
-- cluster and 2 anywhere, so a model that learns the clusters ranks unseen
-- items of the user's own cluster first.  setseed() makes it reproducible.
SELECT setseed(0.25);
CREATE TABLE planted AS
SELECT DISTINCT u AS user_id, item_id
FROM generate_series(0, 239) AS u,
     LATERAL (
        SELECT CASE WHEN k <= 10
                    THEN (u % 6) + 6 * floor(random() * 20)::int
                    ELSE floor(random() * 120)::int
               END AS item_id
        FROM generate_series(1, 12) AS k
        WHERE u >= 0
     ) AS picks;
