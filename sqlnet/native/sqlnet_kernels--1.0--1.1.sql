-- sqlnet_kernels 1.0 -> 1.1: the optimizer's step in C (ALTER EXTENSION sqlnet_kernels UPDATE)
\echo Use "ALTER EXTENSION sqlnet_kernels UPDATE" to load this file. \quit

-- the update: one parameter array after an optimizer step (output 'w'), or its new moments ('m', 'v')
CREATE FUNCTION step(w double precision[], g double precision[], n bigint, m double precision[], v double precision[],
                     t double precision, rate double precision, optimizer text, momentum double precision,
                     nesterov boolean, beta1 double precision, beta2 double precision, epsilon double precision,
                     l2 double precision, weight_decay double precision, output text)
RETURNS double precision[] AS 'MODULE_PATHNAME', 'sqlnet_step' LANGUAGE c IMMUTABLE PARALLEL SAFE;

