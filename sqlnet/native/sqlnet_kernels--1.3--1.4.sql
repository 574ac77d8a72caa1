-- sqlnet_kernels 1.3 -> 1.4 (ALTER EXTENSION sqlnet_kernels UPDATE): no function changes its signature;
-- Adam's step counts the square of a gradient under 1e-150 as 0, as the pure SQL must (PostgreSQL raises
-- "value out of range: underflow" where IEEE arithmetic rounds such a square to 0). Every other result is
-- the same as 1.3's.
\echo Use "ALTER EXTENSION sqlnet_kernels UPDATE" to load this file. \quit
