-- dsl_rec 0.1.0 -> 0.2.0 (ALTER EXTENSION dsl_rec UPDATE TO '0.2.0')
--
-- Brings a 0.1.0 install to exactly what CREATE EXTENSION dsl_rec VERSION
-- '0.2.0' creates from src/sql/*.sql; test/t/006_extension_lifecycle.pl
-- compares the two.  Stored models (rows of dsl.models, dsl.parameters,
-- dsl.seen_items) are kept as they are.  Every change of src/sql/ between
-- the releases adds its statements here, one section each.

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dsl_rec UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------
-- The drop guard (src/sql/70_drop_guard.sql, src/drop_guard.c): a plain
-- DROP EXTENSION dsl_rec refuses while models are stored.
-- ---------------------------------------------------------------------

CREATE FUNCTION dsl.drop_guard()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'dsl_drop_guard'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION dsl.drop_guard() IS
    'event trigger: refuse DROP EXTENSION dsl_rec without CASCADE while dsl.models has rows';

CREATE EVENT TRIGGER dsl_rec_drop_guard ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION dsl.drop_guard();

COMMENT ON EVENT TRIGGER dsl_rec_drop_guard IS
    'refuses DROP EXTENSION dsl_rec without CASCADE while models are stored (dsl.drop_guard)';

-- ---------------------------------------------------------------------
-- Further 0.2.0 changes follow here, in the order they were made.
-- ---------------------------------------------------------------------
