-- sqlnet_kernels 1.4: each phase's arithmetic over a chunk of samples (a 2-D double precision[] of
-- rows x nodes). Every function checks its arguments and raises an ERROR; none is STRICT, so a NULL is
-- refused by name rather than passed on. sqlnet calls them schema-qualified (sqlnet_kernels.dense(...)).
\echo Use "CREATE EXTENSION sqlnet_kernels" to load this file. \quit

-- phase "input": z[r, j] = sum over i of w[i, j] * a[r, i] + bias[j]
CREATE FUNCTION dense(a double precision[], w double precision[], b double precision[], n_out integer)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_dense' LANGUAGE c IMMUTABLE PARALLEL SAFE;

-- phase "activation": linear, relu, sigmoid, tanh, softmax (over each row)
CREATE FUNCTION activate(z double precision[], f text)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_activate' LANGUAGE c IMMUTABLE PARALLEL SAFE;

-- phase "error": the chunk's summed loss, and the output deltas
CREATE FUNCTION loss(y double precision[], z double precision[], t double precision[], loss text, output text)
RETURNS double precision AS 'MODULE_PATHNAME', 'sqlnet_loss' LANGUAGE c IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION output_delta(y double precision[], z double precision[], t double precision[], loss text, output text)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_output_delta' LANGUAGE c IMMUTABLE PARALLEL SAFE;

-- phase "delta": the deltas of the layer before, through the weights
CREATE FUNCTION backward(d double precision[], w double precision[], a double precision[], f text)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_backward' LANGUAGE c IMMUTABLE PARALLEL SAFE;

-- the gradient: a' d per chunk (flat like the weights), column sums of d (repeated for edge biases)
CREATE FUNCTION outer_product(a double precision[], d double precision[])
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_outer' LANGUAGE c IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION colsum(d double precision[], times integer)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_colsum' LANGUAGE c IMMUTABLE PARALLEL SAFE;

-- the chunks' gradients summed, element by element
CREATE FUNCTION vsum_step(state double precision[], x double precision[])
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_vsum_step' LANGUAGE c IMMUTABLE;
CREATE AGGREGATE vsum(double precision[]) (SFUNC = vsum_step, STYPE = double precision[]);

-- the update: one parameter array after an optimizer step (output 'w'), or its new moments ('m', 'v')
CREATE FUNCTION step(w double precision[], g double precision[], n bigint, m double precision[], v double precision[],
                     t double precision, rate double precision, optimizer text, momentum double precision,
                     nesterov boolean, beta1 double precision, beta2 double precision, epsilon double precision,
                     l2 double precision, weight_decay double precision, output text)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_step' LANGUAGE c IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION version() RETURNS text AS 'MODULE_PATHNAME', 'sqlnet_kernels_version' LANGUAGE c IMMUTABLE PARALLEL SAFE;

-- the samples: one sample's array from its rows of a long table (value at position node), by hashing, not sorting
CREATE FUNCTION place_step(state internal, node integer, value double precision, n integer)
RETURNS internal AS 'MODULE_PATHNAME', 'sqlnet_place_step' LANGUAGE c IMMUTABLE;
CREATE FUNCTION place_final(state internal)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_place_final' LANGUAGE c IMMUTABLE;
CREATE AGGREGATE place(integer, double precision, integer) (
    SFUNC = place_step, STYPE = internal, FINALFUNC = place_final, SSPACE = 8192
);
