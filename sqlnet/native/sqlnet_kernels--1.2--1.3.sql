-- sqlnet_kernels 1.2 -> 1.3 (ALTER EXTENSION sqlnet_kernels UPDATE): no function changes its signature;
-- the library computes tanh and exp four at a time where the CPU has AVX2, the deltas through the tiled
-- matrix product, and checks for overflow in one vectorised pass. The results agree with 1.2 within a few
-- ulp (libmvec's AVX2 tanh and exp against its SSE ones), as both agree with the pure SQL.
\echo Use "ALTER EXTENSION sqlnet_kernels UPDATE" to load this file. \quit
