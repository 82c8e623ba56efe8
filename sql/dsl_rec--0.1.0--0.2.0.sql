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
-- The 0.2.0 changes follow here, in the order they were made.
-- ---------------------------------------------------------------------
