-- Citus (docs/scale-out.md): the model tables become reference tables, a
-- full copy on every node that Citus writes with two-phase commit, so that
-- a query Citus pushes down to the workers serves there from the local
-- copy, and a retrain or replace becomes visible on every node with the
-- coordinator's commit.  Run on the coordinator, after citus_add_node for
-- the workers.  Citus copies reference tables to a node added later with a
-- binary copy, in which the regrole columns owner and readers are the
-- coordinator's role OIDs, not the node's: run it again then (after
-- replicate_reference_tables, before the node gets shards), and it sends
-- every model's owner and readers again as role names, which each node
-- resolves to its own OIDs.
--
-- Citus makes the shell of an extension's table on a worker by creating
-- the extension there, so it does not create one; but adding a foreign key
-- between reference tables is sent to the workers as ALTER TABLE, and the
-- workers' tables already hold the extension's foreign keys.  So the
-- function drops those first on the workers (while the tables are still
-- plain local tables there; run_command_on_workers commits on each worker
-- on its own, which is harmless: running this again finds them gone), then
-- on the coordinator, makes the three tables reference tables, and adds
-- the two keys back through Citus, which puts them on every copy.
CREATE FUNCTION dsl.enable_citus()
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
    done integer;
    r record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'Citus is not installed in database "%"', current_database()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'CREATE EXTENSION citus on every node, and citus_add_node the workers, first.';
    END IF;
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'dsl.enable_citus() runs on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT count(*) INTO done FROM pg_dist_partition
     WHERE logicalrelid OPERATOR(pg_catalog.=) ANY (ARRAY['dsl.models'::regclass,
           'dsl.parameters'::regclass, 'dsl.seen_items'::regclass]);
    IF done = 3 THEN
        -- a node added since has copies made by Citus' shard copy, which
        -- carries owner and readers as the coordinator's role OIDs
        FOR r IN SELECT m.model_id, m.owner::text AS o, m.readers::text AS rd FROM dsl.models m LOOP
            EXECUTE format('UPDATE dsl.models SET owner = %L::regrole, readers = %L::regrole[] '
                           'WHERE model_id OPERATOR(pg_catalog.=) %s', r.o, r.rd, r.model_id);
            done := done + 1;
        END LOOP;
        RAISE NOTICE 'the model tables are reference tables already; the owner and readers of % model(s) were sent again, by name, to every node',
            done - 3;
        RETURN;
    END IF;
    FOR r IN SELECT * FROM run_command_on_workers('SELECT count(*) FROM dsl.models') LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'could not reach worker %:%: %', r.nodename, r.nodeport, r.result
                USING ERRCODE = 'connection_failure',
                      HINT = 'dsl_rec must be installed on every worker (CREATE EXTENSION on the coordinator after citus_add_node does that).';
        END IF;
        IF r.result::bigint OPERATOR(pg_catalog.>) 0 THEN
            RAISE EXCEPTION 'worker %:% holds % model(s) of its own', r.nodename, r.nodeport, r.result
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'The coordinator''s models would replace them on every node.',
                      HINT = 'Drop them on the worker (dsl.drop_model), or move them to the coordinator, first.';
        END IF;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['parameters', 'seen_items'] LOOP
        FOR r IN SELECT * FROM run_command_on_workers(format(
                'ALTER TABLE dsl.%I DROP CONSTRAINT IF EXISTS %I', t, t || '_model_id_fkey')) LOOP
            IF NOT r.success THEN
                RAISE EXCEPTION 'could not prepare dsl.% on worker %:%: %', t, r.nodename, r.nodeport, r.result
                    USING ERRCODE = 'connection_failure';
            END IF;
        END LOOP;
        EXECUTE format('ALTER TABLE dsl.%I DROP CONSTRAINT %I', t, t || '_model_id_fkey');
    END LOOP;
    PERFORM create_reference_table('dsl.models');
    PERFORM create_reference_table('dsl.parameters');
    PERFORM create_reference_table('dsl.seen_items');
    FOREACH t IN ARRAY ARRAY['parameters', 'seen_items'] LOOP
        EXECUTE format('ALTER TABLE dsl.%I ADD CONSTRAINT %I FOREIGN KEY (model_id) '
                       'REFERENCES dsl.models ON DELETE CASCADE', t, t || '_model_id_fkey');
    END LOOP;
END
$$;
COMMENT ON FUNCTION dsl.enable_citus() IS
    'on a Citus coordinator: make the model tables reference tables, so that every node serves every model (docs/scale-out.md)';
REVOKE ALL ON FUNCTION dsl.enable_citus() FROM PUBLIC;
