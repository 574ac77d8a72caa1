/*
 * sqlnet_kernels: the arithmetic inside sqlnet's training phases, over float8[] matrices.
 *
 * The phases stay SQL (one recursive CTE, a CTE per phase, printable by `sqlnet sql`); each phase's
 * arithmetic over a chunk of samples (a 2-D float8[] of rows x nodes) is one call here. Every formula is
 * the one the SQL layouts write (sqlnet/model/functions.py), in the same order of operations, so that
 * the two agree to the last bits wherever the order of a sum is the same.
 *
 * A crash here restarts the whole server, so every function checks its arguments -- NULLs, element
 * type, dimensions, lengths, sizes -- and raises an ERROR before it reads anything; nothing is changed
 * process-wide. Compiled without -ffast-math and with -ffp-contract=off: IEEE doubles, no fused
 * multiply-adds, as PostgreSQL's float8 arithmetic.
 */
#include "postgres.h"

#include <math.h>
#include <string.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

/* the Makefile passes it; a build that does not (PGXS's bitcode for the JIT, with its own flags) gets it here */
#ifndef SQLNET_KERNELS_VERSION
#define SQLNET_KERNELS_VERSION "1.4"
#endif

#define EXP_LIMIT 700.0
/* Adam counts the square of a gradient under this as 0, as the SQL must (sqlnet/model/optimizers.py) */
#define SQUARE_FLOOR 1e-150
/* a chunk's or a matrix's elements: far below MaxAllocSize / sizeof(double), checked before allocating */
#define MAX_ELEMENTS ((int64) (MaxAllocSize / sizeof(double)) - 64)

/* --- arguments ------------------------------------------------------------------------------------ */

/* The float8[] argument `argno`, detoasted, checked: not NULL, float8, no NULL elements. */
static ArrayType *
float_array(FunctionCallInfo fcinfo, int argno, const char *what)
{
	ArrayType  *a;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: %s is NULL", what)));
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_ELEMTYPE(a) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("sqlnet_kernels: %s must be a double precision[]", what)));
	if (ARR_HASNULL(a) && array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: %s holds a NULL", what)));
	return a;
}

static int64
elements(ArrayType *a)
{
	return (int64) ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
}

/* A matrix argument: `rows` x `cols`, as a 2-D array (or, with rows == 1 allowed, a 1-D one of cols). */
static double *
matrix(FunctionCallInfo fcinfo, int argno, const char *what, int *rows, int *cols)
{
	ArrayType  *a = float_array(fcinfo, argno, what);
	int			ndim = ARR_NDIM(a);

	if (ndim == 2)
	{
		*rows = ARR_DIMS(a)[0];
		*cols = ARR_DIMS(a)[1];
	}
	else if (ndim == 1)
	{
		*rows = 1;
		*cols = ARR_DIMS(a)[0];
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: %s must be a matrix (a 2-D array of rows), not %d-D", what, ndim)));
	if (*rows < 1 || *cols < 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: %s is empty", what)));
	return (double *) ARR_DATA_PTR(a);
}

/* A flat vector argument of exactly `n` elements (1-D). */
static double *
vector(FunctionCallInfo fcinfo, int argno, const char *what, int64 n)
{
	ArrayType  *a = float_array(fcinfo, argno, what);

	if (ARR_NDIM(a) != 1 || elements(a) != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: %s must hold " INT64_FORMAT " numbers in one dimension, it holds " INT64_FORMAT,
						what, n, elements(a))));
	return (double *) ARR_DATA_PTR(a);
}

static int32
int_arg(FunctionCallInfo fcinfo, int argno, const char *what, int32 low, int32 high)
{
	int32		v;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: %s is NULL", what)));
	v = PG_GETARG_INT32(argno);
	if (v < low || v > high)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("sqlnet_kernels: %s must be between %d and %d, got %d", what, low, high, v)));
	return v;
}

typedef enum
{
	F_LINEAR, F_RELU, F_SIGMOID, F_TANH, F_SOFTMAX
} Function;

static Function
function_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: the activation is NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (strcmp(name, "linear") == 0)
		return F_LINEAR;
	if (strcmp(name, "relu") == 0)
		return F_RELU;
	if (strcmp(name, "sigmoid") == 0)
		return F_SIGMOID;
	if (strcmp(name, "tanh") == 0)
		return F_TANH;
	if (strcmp(name, "softmax") == 0)
		return F_SOFTMAX;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("sqlnet_kernels: unknown activation \"%s\" (linear, relu, sigmoid, tanh, softmax)", name)));
	return F_LINEAR;			/* not reached */
}

typedef enum
{
	L_HALF_SE, L_SE, L_CROSS_ENTROPY
} Loss;

static Loss
loss_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: the loss is NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (strcmp(name, "half-se") == 0)
		return L_HALF_SE;
	if (strcmp(name, "se") == 0)
		return L_SE;
	if (strcmp(name, "cross-entropy") == 0)
		return L_CROSS_ENTROPY;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("sqlnet_kernels: unknown loss \"%s\" (half-se, se, cross-entropy)", name)));
	return L_HALF_SE;			/* not reached */
}

static void
check_size(int64 rows, int64 cols, const char *what)
{
	if (rows < 1 || cols < 1 || rows > MAX_ELEMENTS / cols)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("sqlnet_kernels: %s of " INT64_FORMAT " x " INT64_FORMAT " numbers is too large for one call: use smaller chunks",
						what, rows, cols)));
}

/* A new rows x cols (2-D) float8[]; its data to fill. */
static ArrayType *
new_matrix(int rows, int cols, double **data)
{
	int64		n;
	Size		bytes;
	ArrayType  *a;

	check_size(rows, cols, "a result");
	n = (int64) rows * cols;
	bytes = ARR_OVERHEAD_NONULLS(2) + n * sizeof(double);
	/* only the header is zeroed (its padding included): every kernel writes each element of its result */
	a = (ArrayType *) palloc(bytes);
	memset(a, 0, ARR_OVERHEAD_NONULLS(2));
	SET_VARSIZE(a, bytes);
	a->ndim = 2;
	a->dataoffset = 0;
	a->elemtype = FLOAT8OID;
	ARR_DIMS(a)[0] = rows;
	ARR_DIMS(a)[1] = cols;
	ARR_LBOUND(a)[0] = 1;
	ARR_LBOUND(a)[1] = 1;
	*data = (double *) ARR_DATA_PTR(a);
	return a;
}

static ArrayType *
new_vector(int64 n, double **data)
{
	Size		bytes;
	ArrayType  *a;

	check_size(1, n, "a result");
	bytes = ARR_OVERHEAD_NONULLS(1) + n * sizeof(double);
	a = (ArrayType *) palloc(bytes);
	memset(a, 0, ARR_OVERHEAD_NONULLS(1));
	SET_VARSIZE(a, bytes);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = FLOAT8OID;
	ARR_DIMS(a)[0] = (int) n;
	ARR_LBOUND(a)[0] = 1;
	*data = (double *) ARR_DATA_PTR(a);
	return a;
}

/* A finite result, or an ERROR as PostgreSQL's float8 arithmetic raises on overflow. */
static inline double
checked(double v)
{
	if (unlikely(isinf(v)))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value out of range: overflow")));
	return v;
}

/*
 * Every value of v finite or NaN, or the ERROR of checked(). The first pass only looks for an exponent of
 * all ones (an infinity or a NaN) with integer operations, which the compiler vectorises; a comparison of
 * doubles would stay one value at a time. Only if it finds one does checked() look at each value.
 */
static void
checked_all(const double *v, int64 n)
{
	const uint64 exponent = UINT64CONST(0x7ff0000000000000);
	uint64		found = 0;

	for (int64 e = 0; e < n; e++)
	{
		uint64		bits;

		memcpy(&bits, v + e, sizeof(bits));
		found |= (bits & exponent) == exponent;
	}
	if (unlikely(found))
		for (int64 e = 0; e < n; e++)
			checked(v[e]);
}

/* --- the matrix product shared by dense and outer ------------------------------------------------ */

/*
 * C[m, j] = sum over k, in the order of k, of A[m, k] * B[k, j], for m < M, j < N, k < K; element (m, k) of A
 * is A[m * sm + k * sk], (k, j) of B is B[k * ldb + j], (m, j) of C is C[m * ldc + j]. Each C[m, j] is
 * ((0 + p0) + p1) + ... exactly as a loop over k adds it: the tiles below only compute several (m, j) at once
 * (4 rows x 8 columns held in registers while k runs), never reorder one sum, and there is no fused
 * multiply-add (-ffp-contract=off). The x86-64 build has an AVX2 clone chosen at load time (4 doubles per
 * instruction) beside the baseline one; both give the same bits.
 */
typedef double v4d __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v4d
load4(const double *p)
{
	v4d			v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline __attribute__((always_inline)) void
store4(double *p, v4d v)
{
	memcpy(p, &v, sizeof(v));
}

/* One tile of MR (<= 4) rows and NV x 4 columns, NV 1 or 2. */
#define PRODUCT_TILE(MR, NV)														\
	do {																			\
		v4d			acc[4][2] = {{{0}}};											\
		for (int k = 0; k < K; k++)													\
		{																			\
			const double *bk = B + (int64) k * ldb + j;								\
			v4d			b0 = load4(bk),												\
						b1 = NV > 1 ? load4(bk + 4) : b0;							\
			for (int mm = 0; mm < MR; mm++)											\
			{																		\
				double		x = A[(int64) (m + mm) * sm + (int64) k * sk];			\
				v4d			xv = {x, x, x, x};										\
				acc[mm][0] = acc[mm][0] + b0 * xv;									\
				if (NV > 1)															\
					acc[mm][1] = acc[mm][1] + b1 * xv;								\
			}																		\
		}																			\
		for (int mm = 0; mm < MR; mm++)												\
		{																			\
			store4(C + (int64) (m + mm) * ldc + j, acc[mm][0]);						\
			if (NV > 1)																\
				store4(C + (int64) (m + mm) * ldc + j + 4, acc[mm][1]);				\
		}																			\
	} while (0)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void
product(int M, int N, int K, const double *A, int64 sm, int64 sk, const double *B, int64 ldb, double *C, int64 ldc)
{
	/* blocks of 64 rows of A stay in the cache while every column tile of B passes them */
	for (int m0 = 0; m0 < M; m0 += 64)
	{
		int			m1 = m0 + 64 < M ? m0 + 64 : M;
		int			j = 0;

		for (; j + 8 <= N; j += 8)
		{
			int			m = m0;

			for (; m + 4 <= m1; m += 4)
				PRODUCT_TILE(4, 2);
			for (; m < m1; m++)
				PRODUCT_TILE(1, 2);
		}
		for (; j + 4 <= N; j += 4)
		{
			int			m = m0;

			for (; m + 4 <= m1; m += 4)
				PRODUCT_TILE(4, 1);
			for (; m < m1; m++)
				PRODUCT_TILE(1, 1);
		}
		for (; j < N; j++)		/* the last columns, one at a time */
			for (int m = m0; m < m1; m++)
			{
				double		s = 0.0;

				for (int k = 0; k < K; k++)
					s = s + A[(int64) m * sm + (int64) k * sk] * B[(int64) k * ldb + j];
				C[(int64) m * ldc + j] = s;
			}
	}
}

/*
 * tanh and exp over arrays. glibc's libmvec (2.35 and later, x86-64) computes several doubles at a time,
 * ~7x faster than libm's tanh one by one and within 4 ulp of it (PostgreSQL's own tanh and exp are libm's):
 * far inside the 1e-12 that the kernels and the SQL must agree to. Four at a time (its AVX2 variant) where
 * the CPU has AVX2, else two (SSE4); a last partial group is padded, so each value's result depends only on
 * the value and the CPU, never on where it sits. Without libmvec: libm, value by value.
 */
#ifdef SQLNET_LIBMVEC
typedef double v2d __attribute__((vector_size(16)));
extern v2d	_ZGVbN2v_tanh(v2d x);
extern v2d	_ZGVbN2v_exp(v2d x);

#define VECTOR_LOOP(V, W, vf)														\
	do {																			\
		int64		e = 0;															\
																					\
		for (; e + W <= n; e += W)													\
		{																			\
			V			v;															\
																					\
			memcpy(&v, in + e, sizeof(v));											\
			v = vf(v);																\
			memcpy(out + e, &v, sizeof(v));											\
		}																			\
		if (e < n)																	\
		{																			\
			V			v = {0};													\
																					\
			memcpy(&v, in + e, sizeof(double) * (n - e));							\
			v = vf(v);																\
			memcpy(out + e, &v, sizeof(double) * (n - e));							\
		}																			\
	} while (0)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
extern v4d	_ZGVdN4v_tanh(v4d x) __attribute__((target("avx2")));
extern v4d	_ZGVdN4v_exp(v4d x) __attribute__((target("avx2")));

/* read once per backend: a CPU does not change under it */
static int	has_avx2 = -1;

static inline bool
avx2(void)
{
	if (unlikely(has_avx2 < 0))
		has_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
	return has_avx2 == 1;
}

/* f_array: four at a time (f4, compiled for AVX2) where the CPU has AVX2, else two */
#define VECTOR_MAP(f, vf2, vf4)														\
__attribute__((target("avx2")))														\
static void																			\
f##4(const double *in, double *out, int64 n)										\
{																					\
	VECTOR_LOOP(v4d, 4, vf4);														\
}																					\
																					\
static void																			\
f##_array(const double *in, double *out, int64 n)									\
{																					\
	if (avx2())																		\
	{																				\
		f##4(in, out, n);															\
		return;																		\
	}																				\
	VECTOR_LOOP(v2d, 2, vf2);														\
}
#else
#define VECTOR_MAP(f, vf2, vf4)														\
static void																			\
f##_array(const double *in, double *out, int64 n)									\
{																					\
	VECTOR_LOOP(v2d, 2, vf2);														\
}
#endif
VECTOR_MAP(tanh, _ZGVbN2v_tanh, _ZGVdN4v_tanh)
VECTOR_MAP(exp, _ZGVbN2v_exp, _ZGVdN4v_exp)
#else
static void
tanh_array(const double *in, double *out, int64 n)
{
	for (int64 e = 0; e < n; e++)
		out[e] = tanh(in[e]);
}

static void
exp_array(const double *in, double *out, int64 n)
{
	for (int64 e = 0; e < n; e++)
		out[e] = exp(in[e]);
}
#endif

/* --- the phases ----------------------------------------------------------------------------------- */

/*
 * dense(a, w, b, n_out) -> z: the input of each node of a layer, for every row of the chunk a (rows x n_in):
 *   z[r, j] = sum over i of w[i, j] * a[r, i] + bias[j]
 * w is the state row's flat array (element (i, j) at (i - 1) * n_out + j). b: n_out node biases; or
 * n_in * n_out edge biases (summed over i, in order, as the SQL's params CTE does); or empty: none.
 */
PG_FUNCTION_INFO_V1(sqlnet_dense);
Datum
sqlnet_dense(PG_FUNCTION_ARGS)
{
	int			rows,
				n_in,
				n_out = int_arg(fcinfo, 3, "n_out", 1, 1 << 20);
	double	   *a = matrix(fcinfo, 0, "the layer's input (a)", &rows, &n_in);
	double	   *w,
			   *z,
			   *bias;
	ArrayType  *b,
			   *out;
	int64		nb;

	check_size(n_in, n_out, "the weights");
	w = vector(fcinfo, 1, "the weights (w)", (int64) n_in * n_out);
	b = float_array(fcinfo, 2, "the biases (b)");
	nb = ARR_NDIM(b) == 0 ? 0 : elements(b);
	if (ARR_NDIM(b) > 1 || (nb != 0 && nb != n_out && nb != (int64) n_in * n_out))
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: the biases must be none, %d node biases or %d edge biases, not " INT64_FORMAT,
						n_out, n_in * n_out, nb)));
	bias = palloc0(sizeof(double) * n_out);
	if (nb == n_out)
		memcpy(bias, ARR_DATA_PTR(b), sizeof(double) * n_out);
	else if (nb != 0)
	{
		double	   *e = (double *) ARR_DATA_PTR(b);

		for (int j = 0; j < n_out; j++)
		{
			double		s = e[j];

			for (int i = 1; i < n_in; i++)
				s = checked(s + e[(int64) i * n_out + j]);
			bias[j] = s;
		}
	}
	out = new_matrix(rows, n_out, &z);
	/* z = a w (for each z[r, j] the terms added in the order of i, as the SQL adds them), then the bias */
	product(rows, n_out, n_in, a, n_in, 1, w, n_out, z, n_out);
	if (nb != 0)
		for (int r = 0; r < rows; r++)
		{
			double	   *zr = z + (int64) r * n_out;

			for (int j = 0; j < n_out; j++)
				zr[j] = zr[j] + bias[j];
		}
	checked_all(z, (int64) rows * n_out);
	pfree(bias);
	PG_RETURN_ARRAYTYPE_P(out);
}

static inline double
clamp(double z)
{
	return z < -EXP_LIMIT ? -EXP_LIMIT : (z > EXP_LIMIT ? EXP_LIMIT : z);
}

/* activate(z, f) -> a: each row's activation (softmax: over the row, shifted by its largest input). */
PG_FUNCTION_INFO_V1(sqlnet_activate);
Datum
sqlnet_activate(PG_FUNCTION_ARGS)
{
	int			rows,
				n;
	double	   *z = matrix(fcinfo, 0, "the layer's input (z)", &rows, &n);
	Function	f = function_arg(fcinfo, 1);
	double	   *a;
	ArrayType  *out = new_matrix(rows, n, &a);
	int64		total = (int64) rows * n;

	switch (f)
	{
		case F_LINEAR:
			memcpy(a, z, sizeof(double) * total);
			break;
		case F_RELU:
			for (int64 e = 0; e < total; e++)
				a[e] = z[e] > 0 ? z[e] : 0.0;	/* greatest(z, 0) */
			break;
		case F_SIGMOID:
			for (int64 e = 0; e < total; e++)
				a[e] = -clamp(z[e]);
			exp_array(a, a, total);
			for (int64 e = 0; e < total; e++)
				a[e] = 1.0 / (1.0 + a[e]);
			break;
		case F_TANH:
			tanh_array(z, a, total);
			break;
		case F_SOFTMAX:
			for (int r = 0; r < rows; r++)
			{
				const double *zr = z + (int64) r * n;
				double	   *ar = a + (int64) r * n;
				double		top = zr[0],
							sum;

				for (int j = 1; j < n; j++)
					if (zr[j] > top)
						top = zr[j];
				for (int j = 0; j < n; j++)
				{
					double		d = zr[j] - top;

					ar[j] = d > -EXP_LIMIT ? d : -EXP_LIMIT;
				}
				exp_array(ar, ar, n);
				sum = ar[0];
				for (int j = 1; j < n; j++)
					sum = sum + ar[j];
				for (int j = 0; j < n; j++)
					ar[j] = ar[j] / sum;
			}
			break;
	}
	PG_RETURN_ARRAYTYPE_P(out);
}

/* f'(z) from the activation a, as the wide layout computes it (relu: a > 0 exactly when z > 0). */
static inline double
derivative(Function f, double a)
{
	switch (f)
	{
		case F_RELU:
			return a > 0 ? 1.0 : 0.0;
		case F_SIGMOID:
			return a * (1.0 - a);
		case F_TANH:
			return 1.0 - a * a;
		default:
			return 1.0;
	}
}

static inline double
softplus(double x)
{
	double		m = fabs(x);

	return (x > 0 ? x : 0.0) + log(1.0 + exp(-(m < EXP_LIMIT ? m : EXP_LIMIT)));
}

/* The error phase's inputs: y (the output activations), z (their inputs), t (the targets), same shape. */
typedef struct
{
	int			rows,
				n;
	double	   *y,
			   *z,
			   *t;
	Loss		loss;
	Function	output;
} Outputs;

static Outputs
outputs_args(FunctionCallInfo fcinfo)
{
	Outputs		o;
	int			r2,
				n2,
				r3,
				n3;

	o.y = matrix(fcinfo, 0, "the outputs (y)", &o.rows, &o.n);
	o.z = matrix(fcinfo, 1, "the outputs' inputs (z)", &r2, &n2);
	o.t = matrix(fcinfo, 2, "the targets (t)", &r3, &n3);
	if (r2 != o.rows || r3 != o.rows || n2 != o.n || n3 != o.n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: y (%d x %d), z (%d x %d) and t (%d x %d) must have the same shape",
						o.rows, o.n, r2, n2, r3, n3)));
	o.loss = loss_arg(fcinfo, 3);
	o.output = function_arg(fcinfo, 4);
	if (o.loss == L_CROSS_ENTROPY && o.output != F_SOFTMAX && o.output != F_SIGMOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sqlnet_kernels: cross-entropy pairs with a softmax or sigmoid output")));
	return o;
}

/* loss(y, z, t, loss, output) -> the sum over the chunk's rows of each sample's loss. */
PG_FUNCTION_INFO_V1(sqlnet_loss);
Datum
sqlnet_loss(PG_FUNCTION_ARGS)
{
	Outputs		o = outputs_args(fcinfo);
	double		total = 0.0;

	for (int r = 0; r < o.rows; r++)
	{
		const double *y = o.y + (int64) r * o.n,
				   *z = o.z + (int64) r * o.n,
				   *t = o.t + (int64) r * o.n;
		double		s = 0.0;

		if (o.loss == L_CROSS_ENTROPY && o.output == F_SOFTMAX)
		{
			/* -t * (z - lse), lse = zmax + ln(sum of exp(max(z - zmax, -700))) */
			double		top = z[0],
						sum,
						lse;

			for (int j = 1; j < o.n; j++)
				if (z[j] > top)
					top = z[j];
			{
				double		d = z[0] - top;

				sum = exp(d > -EXP_LIMIT ? d : -EXP_LIMIT);
			}
			for (int j = 1; j < o.n; j++)
			{
				double		d = z[j] - top;

				sum = sum + exp(d > -EXP_LIMIT ? d : -EXP_LIMIT);
			}
			lse = top + log(sum);
			s = -t[0] * (z[0] - lse);
			for (int j = 1; j < o.n; j++)
				s = s + -t[j] * (z[j] - lse);
		}
		else if (o.loss == L_CROSS_ENTROPY)
		{
			s = t[0] * softplus(-z[0]) + (1.0 - t[0]) * softplus(z[0]);
			for (int j = 1; j < o.n; j++)
				s = s + (t[j] * softplus(-z[j]) + (1.0 - t[j]) * softplus(z[j]));
		}
		else
		{
			double		half = o.loss == L_HALF_SE ? 0.5 : 1.0;

			for (int j = 0; j < o.n; j++)
			{
				double		e = o.loss == L_HALF_SE ? half * (y[j] - t[j]) * (y[j] - t[j])
					: (y[j] - t[j]) * (y[j] - t[j]);

				s = j == 0 ? e : s + e;
			}
		}
		total = total + checked(s);
	}
	PG_RETURN_FLOAT8(checked(total));
}

/* output_delta(y, z, t, loss, output) -> dK: dL/dy * f'(z), or y - t where the loss pairs with the output. */
PG_FUNCTION_INFO_V1(sqlnet_output_delta);
Datum
sqlnet_output_delta(PG_FUNCTION_ARGS)
{
	Outputs		o = outputs_args(fcinfo);
	double	   *d;
	ArrayType  *out = new_matrix(o.rows, o.n, &d);
	int64		total = (int64) o.rows * o.n;

	for (int64 e = 0; e < total; e++)
	{
		if (o.loss == L_CROSS_ENTROPY)
			d[e] = o.y[e] - o.t[e];
		else
		{
			double		g = o.loss == L_HALF_SE ? o.y[e] - o.t[e] : 2 * (o.y[e] - o.t[e]);

			d[e] = checked(g * derivative(o.output, o.y[e]));
		}
	}
	PG_RETURN_ARRAYTYPE_P(out);
}

/*
 * backward(d, w, a, f) -> the deltas of the layer before: (sum over j of w[i, j] * d[r, j]) * f'(a[r, i]),
 * d: rows x n_out (the next layer's deltas), w: its n_in x n_out weights, a: rows x n_in (this layer's
 * activations).
 */
PG_FUNCTION_INFO_V1(sqlnet_backward);
Datum
sqlnet_backward(PG_FUNCTION_ARGS)
{
	int			rows,
				n_out,
				rows_a,
				n_in;
	double	   *d = matrix(fcinfo, 0, "the deltas (d)", &rows, &n_out);
	double	   *w,
			   *a,
			   *prev,
			   *wt;
	Function	f;
	ArrayType  *out;

	a = matrix(fcinfo, 2, "the activations (a)", &rows_a, &n_in);
	if (rows_a != rows)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: the deltas have %d rows, the activations %d", rows, rows_a)));
	check_size(n_in, n_out, "the weights");
	w = vector(fcinfo, 1, "the weights (w)", (int64) n_in * n_out);
	f = function_arg(fcinfo, 3);
	out = new_matrix(rows, n_in, &prev);
	/* prev = d w' (w' is w transposed: n_out x n_in, small), each sum in the order of j, then f'(a) */
	wt = palloc(sizeof(double) * (int64) n_in * n_out);
	for (int i = 0; i < n_in; i++)
		for (int j = 0; j < n_out; j++)
			wt[(int64) j * n_in + i] = w[(int64) i * n_out + j];
	product(rows, n_in, n_out, d, n_out, 1, wt, n_in, prev, n_in);
	pfree(wt);
	/* one loop per function (derivative() inlined with a constant folds to its formula): each vectorises */
#define TIMES_DERIVATIVE(F) \
	for (int64 e = 0; e < (int64) rows * n_in; e++) \
		prev[e] = prev[e] * derivative(F, a[e])
	switch (f)
	{
		case F_RELU:
			TIMES_DERIVATIVE(F_RELU);
			break;
		case F_SIGMOID:
			TIMES_DERIVATIVE(F_SIGMOID);
			break;
		case F_TANH:
			TIMES_DERIVATIVE(F_TANH);
			break;
		default:
			TIMES_DERIVATIVE(f);
			break;
	}
#undef TIMES_DERIVATIVE
	checked_all(prev, (int64) rows * n_in);
	PG_RETURN_ARRAYTYPE_P(out);
}

/*
 * outer(a, d) -> the weights' gradient summed over the chunk's rows, flat like the weights:
 * g[(i - 1) * n_out + j] = sum over r of a[r, i] * d[r, j].
 */
PG_FUNCTION_INFO_V1(sqlnet_outer);
Datum
sqlnet_outer(PG_FUNCTION_ARGS)
{
	int			rows,
				n_in,
				rows_d,
				n_out;
	double	   *a = matrix(fcinfo, 0, "the activations (a)", &rows, &n_in);
	double	   *d = matrix(fcinfo, 1, "the deltas (d)", &rows_d, &n_out);
	double	   *g;
	ArrayType  *out;

	if (rows_d != rows)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: the activations have %d rows, the deltas %d", rows, rows_d)));
	check_size(n_in, n_out, "the gradient");
	out = new_vector((int64) n_in * n_out, &g);
	/* g = a'd: each g[i, j] sums its terms in the order of the rows r, as the SQL's sum() does */
	product(n_in, n_out, rows, a, 1, n_in, d, n_out, g, n_out);
	checked_all(g, (int64) n_in * n_out);
	PG_RETURN_ARRAYTYPE_P(out);
}

/* colsum(d, times) -> the biases' gradient: each column's sum over the rows, the whole repeated `times`
 * (1 for node biases, n_in for edge biases, whose (i, j) has node j's gradient). */
PG_FUNCTION_INFO_V1(sqlnet_colsum);
Datum
sqlnet_colsum(PG_FUNCTION_ARGS)
{
	int			rows,
				n;
	double	   *d = matrix(fcinfo, 0, "the deltas (d)", &rows, &n);
	int			times = int_arg(fcinfo, 1, "times", 1, 1 << 20);
	double	   *g;
	ArrayType  *out;

	check_size(times, n, "the bias gradient");
	out = new_vector((int64) times * n, &g);
	memset(g, 0, sizeof(double) * n);	/* the sums start at 0 */
	for (int r = 0; r < rows; r++)
		for (int j = 0; j < n; j++)
			g[j] = g[j] + d[(int64) r * n + j];
	for (int j = 0; j < n; j++)
		checked(g[j]);
	for (int k = 1; k < times; k++)
		memcpy(g + (int64) k * n, g, sizeof(double) * n);
	PG_RETURN_ARRAYTYPE_P(out);
}

/*
 * vsum_step(state, x): the aggregate vsum(float8[]): element by element sums of equally long arrays. The
 * state is the aggregate's own (made in its memory context on the first row, then added to in place).
 */
/*
 * place(node, value, n): the aggregate that makes one sample's array from its rows of the long tables,
 * value at position node (1..n), without sorting the rows: array_agg(value ORDER BY node) sorts every
 * row of the inputs (1.6 million for 2,000 samples of 784 inputs) and spills; this hashes by sample. A node
 * outside 1..n, given twice or missing is an ERROR (sqlnet's checks have refused such tables before).
 */
typedef struct PlaceState
{
	int32		n;
	int32		filled;
	double	   *values;
	bool	   *seen;
} PlaceState;

PG_FUNCTION_INFO_V1(sqlnet_place_step);
Datum
sqlnet_place_step(PG_FUNCTION_ARGS)
{
	MemoryContext agg;
	PlaceState *state;
	int32		node,
				n;

	if (!AggCheckCallContext(fcinfo, &agg))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sqlnet_kernels: place_step is the transition of the aggregate place, not a function to call")));
	n = int_arg(fcinfo, 3, "n", 1, 1 << 20);
	node = int_arg(fcinfo, 1, "node", 1, n);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: the value of node %d is NULL", node)));
	if (PG_ARGISNULL(0))
	{
		state = (PlaceState *) MemoryContextAllocZero(agg, sizeof(PlaceState));
		state->n = n;
		state->values = (double *) MemoryContextAllocZero(agg, sizeof(double) * n);
		state->seen = (bool *) MemoryContextAllocZero(agg, sizeof(bool) * n);
	}
	else
		state = (PlaceState *) PG_GETARG_POINTER(0);
	if (state->n != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: place of %d nodes, then of %d", state->n, n)));
	if (state->seen[node - 1])
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("sqlnet_kernels: node %d is given twice for one sample", node)));
	state->seen[node - 1] = true;
	state->values[node - 1] = PG_GETARG_FLOAT8(2);
	state->filled++;
	PG_RETURN_POINTER(state);
}

PG_FUNCTION_INFO_V1(sqlnet_place_final);
Datum
sqlnet_place_final(PG_FUNCTION_ARGS)
{
	PlaceState *state;
	double	   *data;
	ArrayType  *out;

	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sqlnet_kernels: place_final is the final function of the aggregate place, not a function to call")));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();		/* no rows */
	state = (PlaceState *) PG_GETARG_POINTER(0);
	if (state->filled != state->n)
	{
		int			missing = 0;

		while (state->seen[missing])
			missing++;
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: a sample has %d of its %d nodes: node %d is missing",
						state->filled, state->n, missing + 1)));
	}
	out = new_vector(state->n, &data);
	memcpy(data, state->values, sizeof(double) * state->n);
	PG_RETURN_ARRAYTYPE_P(out);
}

PG_FUNCTION_INFO_V1(sqlnet_vsum_step);
Datum
sqlnet_vsum_step(PG_FUNCTION_ARGS)
{
	MemoryContext agg;
	ArrayType  *x,
			   *state;
	int64		n;
	double	   *s,
			   *v;

	if (!AggCheckCallContext(fcinfo, &agg))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sqlnet_kernels: vsum_step is the transition of the aggregate vsum, not a function to call")));
	x = float_array(fcinfo, 1, "an array to sum");
	n = ARR_NDIM(x) == 0 ? 0 : elements(x);
	if (ARR_NDIM(x) > 2 || n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: vsum sums non-empty arrays")));
	v = (double *) ARR_DATA_PTR(x);
	if (PG_ARGISNULL(0))
	{
		MemoryContext old = MemoryContextSwitchTo(agg);

		state = new_vector(n, &s);
		MemoryContextSwitchTo(old);
		memcpy(s, v, sizeof(double) * n);
		PG_RETURN_ARRAYTYPE_P(state);
	}
	state = PG_GETARG_ARRAYTYPE_P(0);
	if (elements(state) != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: vsum of arrays of " INT64_FORMAT " and " INT64_FORMAT " numbers",
						elements(state), n)));
	s = (double *) ARR_DATA_PTR(state);
	for (int64 e = 0; e < n; e++)
		s[e] = checked(s[e] + v[e]);
	PG_RETURN_ARRAYTYPE_P(state);
}

static double
float_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: %s is NULL", what)));
	return PG_GETARG_FLOAT8(argno);
}

/*
 * step(w, g, n, m, v, t, rate, optimizer, momentum, nesterov, beta1, beta2, epsilon, l2, weight_decay, output)
 * -> one parameter array after an optimizer step: its new values (output 'w'), or its new first or second
 * moments ('m', 'v'). g is the gradient summed over the batch's n samples; m and v are the state (empty
 * where the optimizer keeps none); t the step's number (Adam). Each value as the SQL computes it
 * (sqlnet/model/optimizers.py), operation for operation:
 *   g' = g / n (+ l2 * w);  gd: w - rate * g';  momentum: m' = mu * m + g', w - rate * m' (Nesterov:
 *   w - rate * (g' + mu * m'));  Adam: m' = b1 m + (1 - b1) g', v' = b2 v + (1 - b2) g' g' (0 where |g'| < 1e-150),
 *   w - rate * (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps);  then (w') - rate * weight_decay * w.
 */
PG_FUNCTION_INFO_V1(sqlnet_step);
Datum
sqlnet_step(PG_FUNCTION_ARGS)
{
	ArrayType  *wa = float_array(fcinfo, 0, "the parameters (w)");
	int64		count = ARR_NDIM(wa) == 0 ? 0 : elements(wa);
	double	   *w,
			   *g,
			   *m = NULL,
			   *v = NULL,
			   *out_data;
	int64		n;
	double		t,
				rate,
				mu,
				b1,
				b2,
				eps,
				l2,
				wd,
				c1 = 1.0,
				c2 = 1.0;
	bool		nesterov;
	char	   *name,
			   *output;
	ArrayType  *out;

	if (ARR_NDIM(wa) != 1 || count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("sqlnet_kernels: the parameters (w) must be a non-empty array of one dimension")));
	w = (double *) ARR_DATA_PTR(wa);
	g = vector(fcinfo, 1, "the gradient (g)", count);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: the batch's size (n) is NULL")));
	n = PG_GETARG_INT64(2);
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("sqlnet_kernels: the batch's size (n) must be at least 1, got " INT64_FORMAT, n)));
	t = float_arg(fcinfo, 5, "the step's number (t)");
	rate = float_arg(fcinfo, 6, "the learning rate");
	if (PG_ARGISNULL(7) || PG_ARGISNULL(9) || PG_ARGISNULL(15))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sqlnet_kernels: the optimizer, nesterov and the output must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(7));
	mu = float_arg(fcinfo, 8, "momentum");
	nesterov = PG_GETARG_BOOL(9);
	b1 = float_arg(fcinfo, 10, "beta1");
	b2 = float_arg(fcinfo, 11, "beta2");
	eps = float_arg(fcinfo, 12, "epsilon");
	l2 = float_arg(fcinfo, 13, "l2");
	wd = float_arg(fcinfo, 14, "weight_decay");
	output = text_to_cstring(PG_GETARG_TEXT_PP(15));
	if (strcmp(name, "gd") != 0 && strcmp(name, "momentum") != 0 && strcmp(name, "adam") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sqlnet_kernels: unknown optimizer \"%s\" (gd, momentum, adam)", name)));
	if (strcmp(output, "w") != 0 && !(strcmp(output, "m") == 0 && strcmp(name, "gd") != 0)
		&& !(strcmp(output, "v") == 0 && strcmp(name, "adam") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sqlnet_kernels: optimizer %s has no output \"%s\"", name, output)));
	if (strcmp(name, "gd") != 0)
		m = vector(fcinfo, 3, "the first moments (m)", count);
	if (strcmp(name, "adam") == 0)
	{
		v = vector(fcinfo, 4, "the second moments (v)", count);
		c1 = 1.0 - pow(b1, t);
		c2 = 1.0 - pow(b2, t);
	}
	out = new_vector(count, &out_data);
	for (int64 e = 0; e < count; e++)
	{
		double		ge = g[e] / (double) n,
					wn,
					mn = 0.0,
					vn = 0.0;

		if (l2 != 0.0)
			ge = ge + l2 * w[e];
		if (m == NULL)
			wn = w[e] - rate * ge;
		else if (v == NULL)
		{
			mn = mu * m[e] + ge;
			wn = nesterov ? w[e] - rate * (ge + mu * mn) : w[e] - rate * mn;
		}
		else
		{
			mn = b1 * m[e] + (1.0 - b1) * ge;
			vn = b2 * v[e] + (fabs(ge) < SQUARE_FLOOR ? 0.0 : (1.0 - b2) * ge * ge);
			wn = w[e] - rate * (mn / c1) / (sqrt(vn / c2) + eps);
		}
		if (wd != 0.0)
			wn = wn - rate * wd * w[e];
		out_data[e] = checked(output[0] == 'w' ? wn : (output[0] == 'm' ? mn : vn));
	}
	PG_RETURN_ARRAYTYPE_P(out);
}

/* version() -> the version of the library loaded, which the SQL functions must match */
PG_FUNCTION_INFO_V1(sqlnet_kernels_version);
Datum
sqlnet_kernels_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(SQLNET_KERNELS_VERSION));
}
