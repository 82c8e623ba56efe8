-- test/bench/setup.sql - helpers of the benchmark database (run once per bench)
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dsl_rec;

-- Memory of the calling backend from /proc/self/status (kB).  VmHWM is the
-- peak resident set since the process started; RssShmem counts the pages of
-- shared memory (shared_buffers) the backend has touched, which VmHWM
-- includes.  Needs superuser (pg_read_file of an absolute path); NULLs when
-- that is not possible, so a bench without it still runs.
CREATE OR REPLACE FUNCTION bench_proc_status(
    OUT pid integer, OUT vmhwm_kb bigint, OUT vmrss_kb bigint,
    OUT rss_anon_kb bigint, OUT rss_shmem_kb bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s text;
BEGIN
    pid := pg_backend_pid();
    BEGIN
        s := pg_read_file('/proc/self/status');
    EXCEPTION WHEN OTHERS THEN
        RETURN;
    END;
    vmhwm_kb     := (regexp_match(s, 'VmHWM:\s+(\d+) kB'))[1]::bigint;
    vmrss_kb     := (regexp_match(s, 'VmRSS:\s+(\d+) kB'))[1]::bigint;
    rss_anon_kb  := (regexp_match(s, 'RssAnon:\s+(\d+) kB'))[1]::bigint;
    rss_shmem_kb := (regexp_match(s, 'RssShmem:\s+(\d+) kB'))[1]::bigint;
END
$$;

-- A few pairs for probing which model types dsl.train() accepts.
DROP TABLE IF EXISTS bench_tiny;
CREATE TABLE bench_tiny AS
SELECT u AS user_id, (u * 7 + k) % 23 AS item_id
FROM generate_series(0, 29) AS u, generate_series(0, 4) AS k;
