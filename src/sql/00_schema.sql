-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION dsl_rec" to load this file. \quit

-- Everything lives in schema dsl (created by the control file).
