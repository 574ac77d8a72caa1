-- sqlnet runs these statements in one transaction.
BEGIN;
-- names resolve in pg_catalog only, and every table is named with its schema: no operator,
-- function or table another role created is ever used
SET LOCAL search_path = pg_catalog, pg_temp;
-- hash joins: the planner cannot size a recursive CTE's steps and would loop over every pair
SET LOCAL enable_nestloop = off;
SET LOCAL work_mem = '64MB';
SET LOCAL jit = off;
-- the wide layout streams its phases from one to the next: nothing may store them in between
SET LOCAL enable_material = off;

-- sqlnet: train a 3-2-3 network, relu hidden layers, linear output, loss half-se, bias per edge
-- updates from epoch 1 batch 1 to epoch 1 batch 1, learning rate 0.1, gradient descent
-- full batch (gradients are means over all samples); float8; layout wide
-- the phases of each update: 1 hidden_input, 2 hidden_activation, 3 output_input, 4 output, 5 error, 6 hidden_delta, 7 update
-- It writes the trained weights back and returns each epoch's summed loss and sample count
-- (each sample's loss taken before its batch's update), then the trained weights and biases.
WITH RECURSIVE
-- the samples, one row each: the input values x1.. and the targets t1..
data AS MATERIALIZED (
  SELECT * FROM (SELECT sample, max(value) FILTER (WHERE node = 1) AS x1, max(value) FILTER (WHERE node = 2) AS x2, max(value) FILTER (WHERE node = 3) AS x3 FROM (SELECT 1::bigint AS sample, "inputnode"::int AS node, "inputvalue"::float8 AS value FROM "public"."inputs") AS x GROUP BY sample) AS x
  JOIN (SELECT sample, max(value) FILTER (WHERE node = 1) AS t1, max(value) FILTER (WHERE node = 2) AS t2, max(value) FILTER (WHERE node = 3) AS t3 FROM (SELECT 1::bigint AS sample, "outputnode"::int AS node, "outputvalue"::float8 AS value FROM "public"."outputs") AS t GROUP BY sample) AS t USING (sample)
),
-- the training: each step of the recursion is one update, its phases the CTEs inside it;
-- the row it carries holds the parameters as arrays and the loss of the update just made
train (epoch, batch, phase, w1, b1, w2, b2, loss, samples) AS (
  -- phase 0 · start: the weights and biases as the tables hold them
  SELECT 1,
         0,
         0,
         (SELECT array_agg("weight1value"::float8 ORDER BY "weight1inputnodenumber", "weight1outputnodenumber") FROM "public"."weights1"),
         (SELECT array_agg("weight1bias"::float8 ORDER BY "weight1inputnodenumber", "weight1outputnodenumber") FROM "public"."weights1"),
         (SELECT array_agg("weight2value"::float8 ORDER BY "weight2inputnodenumber", "weight2outputnodenumber") FROM "public"."weights2"),
         (SELECT array_agg("weight2bias"::float8 ORDER BY "weight2inputnodenumber", "weight2outputnodenumber") FROM "public"."weights2"),
         NULL::float8,
         NULL::bigint
  UNION ALL
  (
    WITH
    -- the state after the previous update (one row), while updates remain
    prev AS (
      SELECT * FROM train WHERE (epoch, batch) < (1, 1)
    ),
    -- the update to make: the next batch of the epoch, or the first of the next epoch
    next AS (
      SELECT CASE WHEN batch < 1 THEN epoch ELSE epoch + 1 END AS epoch,
             CASE WHEN batch < 1 THEN batch + 1 ELSE 1 END AS batch
      FROM prev
    ),
    -- the samples of its batch, one row each
    batch_rows AS MATERIALIZED (
      SELECT * FROM data
    ),
    -- layer 1's parameters as one row of plain columns (w1_2_3: node 2 to node 3)
    params1 AS MATERIALIZED (
      SELECT
        p.w1[1] AS w1_1_1,
        p.w1[2] AS w1_1_2,
        p.w1[3] AS w1_2_1,
        p.w1[4] AS w1_2_2,
        p.w1[5] AS w1_3_1,
        p.w1[6] AS w1_3_2,
        p.b1[1] + p.b1[3] + p.b1[5] AS bias1_1,
        p.b1[2] + p.b1[4] + p.b1[6] AS bias1_2
      FROM prev AS p
    ),
    -- layer 2's parameters as one row of plain columns (w2_2_3: node 2 to node 3)
    params2 AS MATERIALIZED (
      SELECT
        p.w2[1] AS w2_1_1,
        p.w2[2] AS w2_1_2,
        p.w2[3] AS w2_1_3,
        p.w2[4] AS w2_2_1,
        p.w2[5] AS w2_2_2,
        p.w2[6] AS w2_2_3,
        p.b2[1] + p.b2[4] AS bias2_1,
        p.b2[2] + p.b2[5] AS bias2_2,
        p.b2[3] + p.b2[6] AS bias2_3
      FROM prev AS p
    ),
    -- phase 1 · hidden_input: the input of each hidden node from the batch's input values: z1[s, j] = sum over i of w1[i, j] * a0[s, i] + sum over i of b1[i, j]; and a0, the batch's input values, kept for the update
    "phase1_hidden_input" AS (
      SELECT
        s.x1, s.x2, s.x3, s.t1, s.t2, s.t3,
        params1.w1_1_1 * s.x1 + params1.w1_2_1 * s.x2 + params1.w1_3_1 * s.x3 + params1.bias1_1 AS z1_1,
        params1.w1_1_2 * s.x1 + params1.w1_2_2 * s.x2 + params1.w1_3_2 * s.x3 + params1.bias1_2 AS z1_2
      FROM batch_rows AS s CROSS JOIN params1
      OFFSET 0
    ),
    -- phase 2 · hidden_activation: the relu activation of each hidden node: a1 = max(z1, 0)
    "phase2_hidden_activation" AS (
      SELECT
        s.x1, s.x2, s.x3, s.t1, s.t2, s.t3,
        greatest(s.z1_1, 0) AS a1_1,
        greatest(s.z1_2, 0) AS a1_2
      FROM "phase1_hidden_input" AS s
      OFFSET 0
    ),
    -- phase 3 · output_input: the input of each output node from the hidden layer: z2[s, j] = sum over i of w2[i, j] * a1[s, i] + sum over i of b2[i, j]
    "phase3_output_input" AS (
      SELECT
        s.x1, s.x2, s.x3, s.t1, s.t2, s.t3, s.a1_1, s.a1_2,
        params2.w2_1_1 * s.a1_1 + params2.w2_2_1 * s.a1_2 + params2.bias2_1 AS z2_1,
        params2.w2_1_2 * s.a1_1 + params2.w2_2_2 * s.a1_2 + params2.bias2_2 AS z2_2,
        params2.w2_1_3 * s.a1_1 + params2.w2_2_3 * s.a1_2 + params2.bias2_3 AS z2_3
      FROM "phase2_hidden_activation" AS s CROSS JOIN params2
      OFFSET 0
    ),
    -- phase 4 · output: the linear activation of each output node: a2 = z2
    "phase4_output" AS (
      SELECT
        s.x1, s.x2, s.x3, s.t1, s.t2, s.t3, s.a1_1, s.a1_2,
        s.z2_1 AS a2_1,
        s.z2_2 AS a2_2,
        s.z2_3 AS a2_3
      FROM "phase3_output_input" AS s
      OFFSET 0
    ),
    -- phase 5 · error: the loss of each sample, 1/2 * sum over outputs of (y - t)^2 (t from the outputs table), and the output delta d2[s, j] = dL/dy * f'(z2) = (y - t) * linear'(z2)
    "phase5_error" AS (
      SELECT
        s.x1, s.x2, s.x3, s.a1_1, s.a1_2,
        0.5 * (s.a2_1 - s.t1) * (s.a2_1 - s.t1) + 0.5 * (s.a2_2 - s.t2) * (s.a2_2 - s.t2) + 0.5 * (s.a2_3 - s.t3) * (s.a2_3 - s.t3) AS loss,
        (s.a2_1 - s.t1) * (1) AS d2_1,
        (s.a2_2 - s.t2) * (1) AS d2_2,
        (s.a2_3 - s.t3) * (1) AS d2_3
      FROM "phase4_output" AS s
      OFFSET 0
    ),
    -- phase 6 · hidden_delta: the delta of each hidden node, backpropagated through the weights before this epoch's update: d1[s, i] = relu'(z1[s, i]) * sum over j of w2[i, j] * d2[s, j]
    "phase6_hidden_delta" AS (
      SELECT
        s.x1, s.x2, s.x3, s.a1_1, s.a1_2, s.loss, s.d2_1, s.d2_2, s.d2_3,
        (params2.w2_1_1 * s.d2_1 + params2.w2_1_2 * s.d2_2 + params2.w2_1_3 * s.d2_3) * (CASE WHEN s.a1_1 > 0 THEN 1 ELSE 0 END) AS d1_1,
        (params2.w2_2_1 * s.d2_1 + params2.w2_2_2 * s.d2_2 + params2.w2_2_3 * s.d2_3) * (CASE WHEN s.a1_2 > 0 THEN 1 ELSE 0 END) AS d1_2
      FROM "phase5_error" AS s CROSS JOIN params2
      OFFSET 0
    ),
    -- the gradient of the loss summed over the batch (the update divides by the batch's size)
    gradient AS MATERIALIZED (
      SELECT
        count(*) AS n,
        sum(loss) AS loss,
        ARRAY[sum(x1 * d1_1), sum(x1 * d1_2), sum(x2 * d1_1), sum(x2 * d1_2), sum(x3 * d1_1), sum(x3 * d1_2)] AS gw1,
        ARRAY[sum(d1_1), sum(d1_2), sum(d1_1), sum(d1_2), sum(d1_1), sum(d1_2)] AS gb1,
        ARRAY[sum(a1_1 * d2_1), sum(a1_1 * d2_2), sum(a1_1 * d2_3), sum(a1_2 * d2_1), sum(a1_2 * d2_2), sum(a1_2 * d2_3)] AS gw2,
        ARRAY[sum(d2_1), sum(d2_2), sum(d2_3), sum(d2_1), sum(d2_2), sum(d2_3)] AS gb2
      FROM phase6_hidden_delta
    ),
    -- phase 7 · update: one optimizer step on every weight and bias, with the gradient of the mean loss over the batch: dL/dw[i, j] = mean over s of a[s, i] * d[s, j];  dL/dbias[., j] = mean over s of d[s, j]
    "phase7_update" AS (
      SELECT
        (SELECT epoch FROM next),
        (SELECT batch FROM next),
        7,
        uw1.w,
        ub1.w,
        uw2.w,
        ub2.w,
        g.loss,
        g.n
      FROM prev AS p
      CROSS JOIN gradient AS g
      CROSS JOIN LATERAL (
        SELECT array_agg(u.w - 0.1 * u.g ORDER BY u.o) AS w
        FROM (SELECT u.o, u.w, u.g
              FROM (SELECT u.o, u.w, u.g / g.n AS g
                    FROM unnest(p.w1, g.gw1) WITH ORDINALITY AS u(w, g, o) OFFSET 0) AS u
              OFFSET 0) AS u
      ) AS uw1
      CROSS JOIN LATERAL (
        SELECT array_agg(u.w - 0.1 * u.g ORDER BY u.o) AS w
        FROM (SELECT u.o, u.w, u.g
              FROM (SELECT u.o, u.w, u.g / g.n AS g
                    FROM unnest(p.b1, g.gb1) WITH ORDINALITY AS u(w, g, o) OFFSET 0) AS u
              OFFSET 0) AS u
      ) AS ub1
      CROSS JOIN LATERAL (
        SELECT array_agg(u.w - 0.1 * u.g ORDER BY u.o) AS w
        FROM (SELECT u.o, u.w, u.g
              FROM (SELECT u.o, u.w, u.g / g.n AS g
                    FROM unnest(p.w2, g.gw2) WITH ORDINALITY AS u(w, g, o) OFFSET 0) AS u
              OFFSET 0) AS u
      ) AS uw2
      CROSS JOIN LATERAL (
        SELECT array_agg(u.w - 0.1 * u.g ORDER BY u.o) AS w
        FROM (SELECT u.o, u.w, u.g
              FROM (SELECT u.o, u.w, u.g / g.n AS g
                    FROM unnest(p.b2, g.gb2) WITH ORDINALITY AS u(w, g, o) OFFSET 0) AS u
              OFFSET 0) AS u
      ) AS ub2
    )
    SELECT * FROM "phase7_update"
  )
),
-- the trained weights and biases: the rows of the last update
trained AS (
  SELECT 'weight'::text AS quantity, 1 AS layer, i AS i, j, s.w1[(i - 1) * 2 + j] AS value
  FROM (SELECT * FROM train WHERE (epoch, batch, phase) = (1, 1, 7)) AS s, generate_series(1, 3) AS i, generate_series(1, 2) AS j
  UNION ALL
  SELECT 'bias'::text AS quantity, 1 AS layer, i AS i, j, s.b1[(i - 1) * 2 + j] AS value
  FROM (SELECT * FROM train WHERE (epoch, batch, phase) = (1, 1, 7)) AS s, generate_series(1, 3) AS i, generate_series(1, 2) AS j
  UNION ALL
  SELECT 'weight'::text AS quantity, 2 AS layer, i AS i, j, s.w2[(i - 1) * 3 + j] AS value
  FROM (SELECT * FROM train WHERE (epoch, batch, phase) = (1, 1, 7)) AS s, generate_series(1, 2) AS i, generate_series(1, 3) AS j
  UNION ALL
  SELECT 'bias'::text AS quantity, 2 AS layer, i AS i, j, s.b2[(i - 1) * 3 + j] AS value
  FROM (SELECT * FROM train WHERE (epoch, batch, phase) = (1, 1, 7)) AS s, generate_series(1, 2) AS i, generate_series(1, 3) AS j
),
-- write them back into the tables
write_weights1 AS (
  UPDATE "public"."weights1" AS t SET "weight1value" = w.value, "weight1bias" = b.value
  FROM trained AS w JOIN trained AS b ON b.quantity = 'bias' AND b.layer = w.layer AND b.i = w.i AND b.j = w.j
  WHERE w.quantity = 'weight' AND w.layer = 1 AND t."weight1inputnodenumber" = w.i AND t."weight1outputnodenumber" = w.j
  RETURNING 1
),
write_weights2 AS (
  UPDATE "public"."weights2" AS t SET "weight2value" = w.value, "weight2bias" = b.value
  FROM trained AS w JOIN trained AS b ON b.quantity = 'bias' AND b.layer = w.layer AND b.i = w.i AND b.j = w.j
  WHERE w.quantity = 'weight' AND w.layer = 2 AND t."weight2inputnodenumber" = w.i AND t."weight2outputnodenumber" = w.j
  RETURNING 1
)
-- the result: each epoch's loss (summed over its samples) and sample count, then the trained parameters
SELECT quantity, epoch, layer, i, j, value, samples FROM (
  SELECT 'loss' AS quantity, epoch, NULL::int AS layer, NULL::int AS i, NULL::int AS j, loss AS value, samples
  FROM (SELECT epoch, sum(loss) AS loss, sum(samples) AS samples FROM train WHERE phase = 7 GROUP BY epoch) AS l
  UNION ALL
  SELECT quantity, 1, layer, i, j, value, NULL FROM trained WHERE quantity IN ('weight', 'bias')
) AS result
-- the losses by epoch, then layer by layer its weights and its biases in (i, j) order: one number
-- per row to sort by (sorting 100k rows by six keys took a fifth of a 784-128-10 training)
ORDER BY CASE quantity WHEN 'loss' THEN epoch::bigint
  WHEN 'weight' THEN CASE layer WHEN 1 THEN 2 + (i - 1) * 2 + j WHEN 2 THEN 14 + (i - 1) * 3 + j END
  WHEN 'bias' THEN CASE layer WHEN 1 THEN 8 + (coalesce(i, 1) - 1) * 2 + j WHEN 2 THEN 20 + (coalesce(i, 1) - 1) * 3 + j END
  WHEN 'val_loss' THEN 26 + epoch ELSE 28 + epoch END;

COMMIT;
