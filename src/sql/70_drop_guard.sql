-- A plain DROP EXTENSION dsl_rec refuses while models are stored
-- (src/drop_guard.c, docs/lifecycle.md).  The model tables are members of
-- the extension, so without this guard a DROP EXTENSION without CASCADE
-- would delete every trained model.  DROP EXTENSION dsl_rec CASCADE still
-- drops the extension with every model; the DROP EXTENSION of another
-- extension passes untouched.
--
-- RETURNS event_trigger: no query can call it, only the event trigger.
-- VOLATILE: it locks dsl.models against writers, counts its rows in the
-- newest snapshot (not the statement's) and raises an error.
CREATE FUNCTION dsl.drop_guard()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'dsl_drop_guard'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION dsl.drop_guard() IS
    'event trigger: refuse DROP EXTENSION dsl_rec without CASCADE while dsl.models has rows';

CREATE EVENT TRIGGER dsl_rec_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP OWNED')
    EXECUTE FUNCTION dsl.drop_guard();

COMMENT ON EVENT TRIGGER dsl_rec_drop_guard IS
    'refuses DROP EXTENSION dsl_rec, and DROP OWNED BY its owner, without CASCADE while models are stored (dsl.drop_guard)';
