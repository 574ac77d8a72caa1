-- sqlnet runs these statements in one transaction.
BEGIN;
-- names resolve in pg_catalog only, and every table is named with its schema: no operator,
-- function or table another role created is ever used
SET LOCAL search_path = pg_catalog, pg_temp;
-- hash joins: the planner cannot size a recursive CTE's steps and would loop over every pair
SET LOCAL enable_nestloop = off;
SET LOCAL work_mem = '64MB';
SET LOCAL jit = off;

-- sqlnet: train a 3-2-3 network, relu hidden layers, linear output, loss half-se, bias per edge
-- updates from epoch 1 batch 1 to epoch 1 batch 1, learning rate 0.1, gradient descent
-- full batch (gradients are means over all samples); float8; layout long
-- the phases of each update: 1 hidden_input, 2 hidden_activation, 3 output_input, 4 output, 5 error, 6 hidden_delta, 7 update
-- It writes the trained weights back and returns each epoch's summed loss and sample count
-- (each sample's loss taken before its batch's update), then the trained weights and biases.
WITH RECURSIVE
-- layer 0: the input value of each sample and input node
x AS (
  SELECT 1::bigint AS sample, "inputnode"::int AS node, "inputvalue"::float8 AS value FROM "public"."inputs"
),
-- the target value of each sample and output node
target AS (
  SELECT 1::bigint AS sample, "outputnode"::int AS node, "outputvalue"::float8 AS value FROM "public"."outputs"
),
-- the training: each step of the recursion is one phase; `epoch`, `batch` and `phase` say which
train (epoch, batch, phase, quantity, layer, sample, i, j, value) AS (
  -- phase 0 · start: the weights and biases as the tables hold them
  SELECT 1, 0, 0, 'weight'::text, 1, NULL::bigint, w."weight1inputnodenumber"::int, w."weight1outputnodenumber"::int, w."weight1value"::float8
  FROM "public"."weights1" AS w
  UNION ALL
  SELECT 1, 0, 0, 'bias', 1, NULL, w."weight1inputnodenumber"::int, w."weight1outputnodenumber"::int, w."weight1bias"::float8
  FROM "public"."weights1" AS w
  UNION ALL
  SELECT 1, 0, 0, 'weight'::text, 2, NULL::bigint, w."weight2inputnodenumber"::int, w."weight2outputnodenumber"::int, w."weight2value"::float8
  FROM "public"."weights2" AS w
  UNION ALL
  SELECT 1, 0, 0, 'bias', 2, NULL, w."weight2inputnodenumber"::int, w."weight2outputnodenumber"::int, w."weight2bias"::float8
  FROM "public"."weights2" AS w
  UNION ALL
  (
    WITH
    -- the rows of the previous step: every row of a step has the same epoch, batch and phase
    prev AS (SELECT * FROM train),
    step AS (SELECT epoch, batch, phase FROM prev LIMIT 1),
    -- the update after this one: the next batch of the epoch, or the first of the next epoch
    next AS (
      SELECT CASE WHEN batch < 1 THEN epoch ELSE epoch + 1 END AS epoch,
             CASE WHEN batch < 1 THEN batch + 1 ELSE 1 END AS batch
      FROM step
    ),
    -- the number of samples in this update's batch: gradients are means over them
    batch_size AS (
      SELECT count(DISTINCT sample) AS n FROM prev WHERE quantity = 'delta' AND layer = 2
    ),
    -- the input values of the next update's batch (read by phase 1 only)
    batch_inputs AS (
      SELECT sample, node, value FROM x
    ),
    -- the target values of this update's batch (read by the error phase only)
    batch_targets AS (
      SELECT sample, node, value FROM target
    ),
    -- phase 1 · hidden_input: the input of each hidden node from the batch's input values: z1[s, j] = sum over i of w1[i, j] * a0[s, i] + sum over i of b1[i, j]; and a0, the batch's input values, kept for the update
    "phase1_hidden_input" AS (
      SELECT (SELECT epoch FROM next), (SELECT batch FROM next), 1, 'input', 1, s.sample, NULL::int, s.j, s.value + b.value
      FROM (
        SELECT a.sample, w.j, sum(w.value * a.value) AS value
        FROM prev AS w JOIN batch_inputs AS a ON a.node = w.i
        WHERE w.quantity = 'weight' AND w.layer = 1
        GROUP BY a.sample, w.j
      ) AS s
      JOIN (
        -- each node's bias: the sum of its bias rows (one per edge, or one per node)
        SELECT j, sum(value) AS value FROM prev WHERE quantity = 'bias' AND layer = 1 GROUP BY j
      ) AS b ON b.j = s.j
      WHERE (SELECT phase FROM step) IN (0, 7) AND ((SELECT epoch FROM step), (SELECT batch FROM step)) < (1, 1)
      UNION ALL
      -- the batch's input values, kept as layer 0's activations for the update
      SELECT (SELECT epoch FROM next), (SELECT batch FROM next), 1, 'activation', 0, sample, NULL::int, node, value
      FROM batch_inputs
      WHERE (SELECT phase FROM step) IN (0, 7) AND ((SELECT epoch FROM step), (SELECT batch FROM step)) < (1, 1)
      UNION ALL
      -- carried forward for later phases: bias1, bias2, weight1, weight2
      SELECT (SELECT epoch FROM next), (SELECT batch FROM next), 1, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) IN (0, 7) AND ((SELECT epoch FROM step), (SELECT batch FROM step)) < (1, 1) AND (quantity, layer) IN (('bias', 1), ('bias', 2), ('weight', 1), ('weight', 2))
    ),
    -- phase 2 · hidden_activation: the relu activation of each hidden node: a1 = max(z1, 0)
    "phase2_hidden_activation" AS (
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 2, 'activation', 1, z.sample, NULL::int, z.j, greatest(z.value, 0)
      FROM prev AS z
      WHERE (SELECT phase FROM step) = 1 AND z.quantity = 'input' AND z.layer = 1
      UNION ALL
      -- carried forward for later phases: activation0, bias1, bias2, input1, weight1, weight2
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 2, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 1 AND (quantity, layer) IN (('activation', 0), ('bias', 1), ('bias', 2), ('input', 1), ('weight', 1), ('weight', 2))
    ),
    -- phase 3 · output_input: the input of each output node from the hidden layer: z2[s, j] = sum over i of w2[i, j] * a1[s, i] + sum over i of b2[i, j]
    "phase3_output_input" AS (
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 3, 'input', 2, s.sample, NULL::int, s.j, s.value + b.value
      FROM (
        SELECT a.sample, w.j, sum(w.value * a.value) AS value
        FROM prev AS w JOIN prev AS a ON a.quantity = 'activation' AND a.layer = 1 AND a.j = w.i
        WHERE w.quantity = 'weight' AND w.layer = 2
        GROUP BY a.sample, w.j
      ) AS s
      JOIN (
        -- each node's bias: the sum of its bias rows (one per edge, or one per node)
        SELECT j, sum(value) AS value FROM prev WHERE quantity = 'bias' AND layer = 2 GROUP BY j
      ) AS b ON b.j = s.j
      WHERE (SELECT phase FROM step) = 2
      UNION ALL
      -- carried forward for later phases: activation0, activation1, bias1, bias2, input1, weight1, weight2
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 3, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 2 AND (quantity, layer) IN (('activation', 0), ('activation', 1), ('bias', 1), ('bias', 2), ('input', 1), ('weight', 1), ('weight', 2))
    ),
    -- phase 4 · output: the linear activation of each output node: a2 = z2
    "phase4_output" AS (
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 4, 'activation', 2, z.sample, NULL::int, z.j, z.value
      FROM prev AS z
      WHERE (SELECT phase FROM step) = 3 AND z.quantity = 'input' AND z.layer = 2
      UNION ALL
      -- carried forward for later phases: activation0, activation1, bias1, bias2, input1, weight1, weight2
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 4, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 3 AND (quantity, layer) IN (('activation', 0), ('activation', 1), ('bias', 1), ('bias', 2), ('input', 1), ('weight', 1), ('weight', 2))
    ),
    -- phase 5 · error: the loss of each sample, 1/2 * sum over outputs of (y - t)^2 (t from the outputs table), and the output delta d2[s, j] = dL/dy * f'(z2) = (y - t) * linear'(z2)
    "phase5_error" AS (
      -- the loss of each sample
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 5, 'loss', NULL::int, y.sample, NULL::int, NULL::int, sum(0.5 * (y.value - t.value) * (y.value - t.value))
      FROM prev AS y JOIN batch_targets AS t ON t.sample = y.sample AND t.node = y.j
      WHERE (SELECT phase FROM step) = 4 AND y.quantity = 'activation' AND y.layer = 2
      GROUP BY y.sample
      UNION ALL
      -- the delta of each output node
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 5, 'delta', 2, y.sample, NULL::int, y.j, (y.value - t.value) * (1)
      FROM prev AS y JOIN batch_targets AS t ON t.sample = y.sample AND t.node = y.j
      WHERE (SELECT phase FROM step) = 4 AND y.quantity = 'activation' AND y.layer = 2
      UNION ALL
      -- carried forward for later phases: activation0, activation1, bias1, bias2, input1, weight1, weight2
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 5, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 4 AND (quantity, layer) IN (('activation', 0), ('activation', 1), ('bias', 1), ('bias', 2), ('input', 1), ('weight', 1), ('weight', 2))
    ),
    -- phase 6 · hidden_delta: the delta of each hidden node, backpropagated through the weights before this epoch's update: d1[s, i] = relu'(z1[s, i]) * sum over j of w2[i, j] * d2[s, j]
    "phase6_hidden_delta" AS (
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 6, 'delta', 1, back.sample, NULL::int, back.i, back.value * (CASE WHEN z.value > 0 THEN 1 ELSE 0 END)
      FROM (
        -- what each node sent forward, weighted back: sum over j of w[i, j] * d[s, j]
        SELECT d.sample, w.i, sum(w.value * d.value) AS value
        FROM prev AS w JOIN prev AS d ON d.quantity = 'delta' AND d.layer = 2 AND d.j = w.j
        WHERE w.quantity = 'weight' AND w.layer = 2
        GROUP BY d.sample, w.i
      ) AS back
      JOIN prev AS z ON z.quantity = 'input' AND z.layer = 1 AND z.sample = back.sample AND z.j = back.i
      WHERE (SELECT phase FROM step) = 5
      UNION ALL
      -- carried forward for later phases: activation0, activation1, bias1, bias2, delta2, weight1, weight2
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 6, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 5 AND (quantity, layer) IN (('activation', 0), ('activation', 1), ('bias', 1), ('bias', 2), ('delta', 2), ('weight', 1), ('weight', 2))
    ),
    -- phase 7 · update: one optimizer step on every weight and bias, with the gradient of the mean loss over the batch: dL/dw[i, j] = mean over s of a[s, i] * d[s, j];  dL/dbias[., j] = mean over s of d[s, j]
    "phase7_update" AS (
      SELECT (SELECT epoch FROM step), (SELECT batch FROM step), 7, p.quantity, p.layer, NULL::bigint, p.i, p.j, p.value - 0.1 * g.value
      FROM prev AS p JOIN (
        -- the gradient of the mean loss over the batch: a[s, i] * d[s, j] for a weight, d[s, j] for a bias
        SELECT 'weight' AS quantity, d.layer, a.j AS i, d.j, sum(a.value * d.value) / (SELECT n FROM batch_size) AS value
        FROM prev AS d JOIN prev AS a ON a.quantity = 'activation' AND a.layer = d.layer - 1 AND a.sample = d.sample
        WHERE d.quantity = 'delta'
        GROUP BY d.layer, a.j, d.j
        UNION ALL
        SELECT 'bias', layer, NULL, j, sum(value) / (SELECT n FROM batch_size)
        FROM prev WHERE quantity = 'delta'
        GROUP BY layer, j
      ) AS g ON g.quantity = p.quantity AND g.layer = p.layer AND g.j = p.j AND (g.i = p.i OR p.quantity = 'bias')
      WHERE (SELECT phase FROM step) = 6
    )
    -- only the phase that follows the previous step produces rows
    SELECT * FROM "phase1_hidden_input"
    UNION ALL SELECT * FROM "phase2_hidden_activation"
    UNION ALL SELECT * FROM "phase3_output_input"
    UNION ALL SELECT * FROM "phase4_output"
    UNION ALL SELECT * FROM "phase5_error"
    UNION ALL SELECT * FROM "phase6_hidden_delta"
    UNION ALL SELECT * FROM "phase7_update"
  )
),
-- the trained weights and biases: the rows of the last update
trained AS (
  SELECT quantity, layer, i, j, value FROM train
  WHERE (epoch, batch, phase) = (1, 1, 7)
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
  FROM (SELECT epoch, sum(value) AS loss, count(*) AS samples FROM train WHERE quantity = 'loss' GROUP BY epoch) AS l
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
