-- sqlnet_kernels 1.1 -> 1.2: the place aggregate (ALTER EXTENSION sqlnet_kernels UPDATE)
\echo Use "ALTER EXTENSION sqlnet_kernels UPDATE" to load this file. \quit

-- the samples: one sample's array from its rows of a long table (value at position node), by hashing, not sorting
CREATE FUNCTION place_step(state internal, node integer, value double precision, n integer)
RETURNS internal AS 'MODULE_PATHNAME', 'sqlnet_place_step' LANGUAGE c IMMUTABLE;
CREATE FUNCTION place_final(state internal)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_place_final' LANGUAGE c IMMUTABLE;
CREATE AGGREGATE place(integer, double precision, integer) (
    SFUNC = place_step, STYPE = internal, FINALFUNC = place_final, SSPACE = 8192
);
