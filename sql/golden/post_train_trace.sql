-- sqlnet: train a 3-2-3 network, relu hidden layers, linear output, loss half-se, bias per edge
-- epochs 1..1, learning rate 0.1, full batch (gradients are means over all samples), layout long
-- the phases of each epoch: 1 hidden_input, 2 hidden_activation, 3 output_input, 4 output, 5 error, 6 hidden_delta, 7 update
-- It writes the trained weights back and returns the mean loss of each epoch (before its update),
-- then the trained weights and biases.
WITH RECURSIVE
-- layer 0: the input value of each sample and input node
x AS (
  SELECT 1::bigint AS sample, "inputnode"::int AS node, "inputvalue"::float8 AS value
  FROM "inputs"
),
-- the target value of each sample and output node
target AS (
  SELECT 1::bigint AS sample, "outputnode"::int AS node, "outputvalue"::float8 AS value
  FROM "outputs"
),
-- the number of samples: every gradient is the mean over them
batch AS (
  SELECT count(DISTINCT sample) AS n FROM x
),
-- the training: each step of the recursion is one phase; `epoch` and `phase` say which
train (epoch, phase, quantity, layer, sample, i, j, value) AS (
  -- phase 0 · start: the weights and biases as the tables hold them
  SELECT 0, 0, 'weight'::text, 1, NULL::bigint, "weight1inputnodenumber"::int, "weight1outputnodenumber"::int, "weight1value"::float8
  FROM "weights1"
  UNION ALL
  SELECT 0, 0, 'bias', 1, NULL, "weight1inputnodenumber"::int, "weight1outputnodenumber"::int, "weight1bias"::float8
  FROM "weights1"
  UNION ALL
  SELECT 0, 0, 'weight'::text, 2, NULL::bigint, "weight2inputnodenumber"::int, "weight2outputnodenumber"::int, "weight2value"::float8
  FROM "weights2"
  UNION ALL
  SELECT 0, 0, 'bias', 2, NULL, "weight2inputnodenumber"::int, "weight2outputnodenumber"::int, "weight2bias"::float8
  FROM "weights2"
  UNION ALL
  (
    WITH
    -- the rows of the previous step: every row of a step has the same epoch and phase
    prev AS (SELECT * FROM train),
    step AS (SELECT epoch, phase FROM prev LIMIT 1),
    -- phase 1 · hidden_input: the input of each hidden node from the inputs: z1[s, j] = sum over i of w1[i, j] * a0[s, i] + sum over i of b1[i, j]
    "phase1_hidden_input" AS (
      SELECT (SELECT epoch FROM step) + 1, 1, 'input', 1, s.sample, NULL::int, s.j, s.value + b.value
      FROM (
        SELECT a.sample, w.j, sum(w.value * a.value) AS value
        FROM prev AS w JOIN x AS a ON a.node = w.i
        WHERE w.quantity = 'weight' AND w.layer = 1
        GROUP BY a.sample, w.j
      ) AS s
      JOIN (
        -- each node's bias: the sum of its bias rows (one per edge, or one per node)
        SELECT j, sum(value) AS value FROM prev WHERE quantity = 'bias' AND layer = 1 GROUP BY j
      ) AS b ON b.j = s.j
      WHERE (SELECT phase FROM step) IN (0, 7) AND (SELECT epoch FROM step) < 1
      UNION ALL
      -- carried forward for later phases: bias1, bias2, weight1, weight2
      SELECT (SELECT epoch FROM step) + 1, 1, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) IN (0, 7) AND (SELECT epoch FROM step) < 1 AND (quantity, layer) IN (('bias', 1), ('bias', 2), ('weight', 1), ('weight', 2))
    ),
    -- phase 2 · hidden_activation: the relu activation of each hidden node: a1 = max(z1, 0)
    "phase2_hidden_activation" AS (
      SELECT (SELECT epoch FROM step), 2, 'activation', 1, z.sample, NULL::int, z.j, greatest(z.value, 0)
      FROM prev AS z
      WHERE (SELECT phase FROM step) = 1 AND z.quantity = 'input' AND z.layer = 1
      UNION ALL
      -- carried forward for later phases: bias1, bias2, input1, weight1, weight2
      SELECT (SELECT epoch FROM step), 2, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 1 AND (quantity, layer) IN (('bias', 1), ('bias', 2), ('input', 1), ('weight', 1), ('weight', 2))
    ),
    -- phase 3 · output_input: the input of each output node from the hidden layer: z2[s, j] = sum over i of w2[i, j] * a1[s, i] + sum over i of b2[i, j]
    "phase3_output_input" AS (
      SELECT (SELECT epoch FROM step), 3, 'input', 2, s.sample, NULL::int, s.j, s.value + b.value
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
      -- carried forward for later phases: activation1, bias1, bias2, input1, weight1, weight2
      SELECT (SELECT epoch FROM step), 3, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 2 AND (quantity, layer) IN (('activation', 1), ('bias', 1), ('bias', 2), ('input', 1), ('weight', 1), ('weight', 2))
    ),
    -- phase 4 · output: the linear activation of each output node: a2 = z2
    "phase4_output" AS (
      SELECT (SELECT epoch FROM step), 4, 'activation', 2, z.sample, NULL::int, z.j, z.value
      FROM prev AS z
      WHERE (SELECT phase FROM step) = 3 AND z.quantity = 'input' AND z.layer = 2
      UNION ALL
      -- carried forward for later phases: activation1, bias1, bias2, input1, weight1, weight2
      SELECT (SELECT epoch FROM step), 4, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 3 AND (quantity, layer) IN (('activation', 1), ('bias', 1), ('bias', 2), ('input', 1), ('weight', 1), ('weight', 2))
    ),
    -- phase 5 · error: the loss of each sample, 1/2 * sum over outputs of (y - t)^2 (t from the outputs table), and the output delta d2[s, j] = dL/dy * f'(z2) = (y - t) * linear'(z2)
    "phase5_error" AS (
      -- the loss of each sample
      SELECT (SELECT epoch FROM step), 5, 'loss', NULL::int, y.sample, NULL::int, NULL::int, sum(0.5 * (y.value - t.value) * (y.value - t.value))
      FROM prev AS y JOIN target AS t ON t.sample = y.sample AND t.node = y.j
      WHERE (SELECT phase FROM step) = 4 AND y.quantity = 'activation' AND y.layer = 2
      GROUP BY y.sample
      UNION ALL
      -- the delta of each output node: dL/dy * f'(z)
      SELECT (SELECT epoch FROM step), 5, 'delta', 2, y.sample, NULL::int, y.j, (y.value - t.value) * (1)
      FROM prev AS y JOIN target AS t ON t.sample = y.sample AND t.node = y.j
      WHERE (SELECT phase FROM step) = 4 AND y.quantity = 'activation' AND y.layer = 2
      UNION ALL
      -- carried forward for later phases: activation1, bias1, bias2, input1, weight1, weight2
      SELECT (SELECT epoch FROM step), 5, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 4 AND (quantity, layer) IN (('activation', 1), ('bias', 1), ('bias', 2), ('input', 1), ('weight', 1), ('weight', 2))
    ),
    -- phase 6 · hidden_delta: the delta of each hidden node, backpropagated through the weights before this epoch's update: d1[s, i] = relu'(z1[s, i]) * sum over j of w2[i, j] * d2[s, j]
    "phase6_hidden_delta" AS (
      SELECT (SELECT epoch FROM step), 6, 'delta', 1, back.sample, NULL::int, back.i, back.value * (CASE WHEN z.value > 0 THEN 1 ELSE 0 END)
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
      -- carried forward for later phases: activation1, bias1, bias2, delta2, weight1, weight2
      SELECT (SELECT epoch FROM step), 6, quantity, layer, sample, i, j, value
      FROM prev
      WHERE (SELECT phase FROM step) = 5 AND (quantity, layer) IN (('activation', 1), ('bias', 1), ('bias', 2), ('delta', 2), ('weight', 1), ('weight', 2))
    ),
    -- phase 7 · update: one gradient-descent step on every weight and bias, the gradient being the mean over the samples: w[i, j] -= rate * mean over s of a[s, i] * d[s, j];  bias[., j] -= rate * mean over s of d[s, j]
    "phase7_update" AS (
      -- the weights: w[i, j] - rate * mean over samples of a[s, i] * d[s, j]
      SELECT (SELECT epoch FROM step), 7, 'weight', w.layer, NULL::bigint, w.i, w.j, w.value - 0.1 * g.value
      FROM prev AS w JOIN (
        SELECT d.layer, a.j AS i, d.j, sum(a.value * d.value) / (SELECT n FROM batch) AS value
        FROM prev AS d JOIN (
          SELECT layer, sample, j, value FROM prev WHERE quantity = 'activation'
          UNION ALL
          SELECT 0, sample, node, value FROM x
        ) AS a ON a.layer = d.layer - 1 AND a.sample = d.sample
        WHERE d.quantity = 'delta'
        GROUP BY d.layer, a.j, d.j
      ) AS g ON g.layer = w.layer AND g.i = w.i AND g.j = w.j
      WHERE (SELECT phase FROM step) = 6 AND w.quantity = 'weight'
      UNION ALL
      -- the biases: every bias row of node j moves by rate * mean over samples of d[s, j]
      SELECT (SELECT epoch FROM step), 7, 'bias', b.layer, NULL::bigint, b.i, b.j, b.value - 0.1 * g.value
      FROM prev AS b JOIN (
        SELECT layer, j, sum(value) / (SELECT n FROM batch) AS value
        FROM prev WHERE quantity = 'delta'
        GROUP BY layer, j
      ) AS g ON g.layer = b.layer AND g.j = b.j
      WHERE (SELECT phase FROM step) = 6 AND b.quantity = 'bias'
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
-- the trained weights and biases: the rows of the last epoch's update
trained AS (
  SELECT quantity, layer, i, j, value FROM train WHERE epoch = 1 AND phase = 7
),
-- write them back into the tables
write_weights1 AS (
  UPDATE "weights1" AS t SET "weight1value" = w.value, "weight1bias" = b.value
  FROM trained AS w JOIN trained AS b ON b.quantity = 'bias' AND b.layer = w.layer AND b.i = w.i AND b.j = w.j
  WHERE w.quantity = 'weight' AND w.layer = 1 AND t."weight1inputnodenumber" = w.i AND t."weight1outputnodenumber" = w.j
  RETURNING 1
),
write_weights2 AS (
  UPDATE "weights2" AS t SET "weight2value" = w.value, "weight2bias" = b.value
  FROM trained AS w JOIN trained AS b ON b.quantity = 'bias' AND b.layer = w.layer AND b.i = w.i AND b.j = w.j
  WHERE w.quantity = 'weight' AND w.layer = 2 AND t."weight2inputnodenumber" = w.i AND t."weight2outputnodenumber" = w.j
  RETURNING 1
),
-- keep every phase's values in the trace schema
trace_0 AS (
  INSERT INTO "sqlnet_trace"."phase0_start" (run_id, epoch, sample, layer, quantity, input_node, node, value)
  SELECT 1, t.* FROM (
    SELECT epoch, sample, layer, quantity, i, j, value FROM train
    WHERE phase = 0 AND ((quantity, layer) IN (('weight', 1), ('bias', 1), ('weight', 2), ('bias', 2)))
  ) AS t
  RETURNING 1
),
trace_1 AS (
  INSERT INTO "sqlnet_trace"."phase1_hidden_input" (run_id, epoch, sample, layer, quantity, input_node, node, value)
  SELECT 1, t.* FROM (
    SELECT epoch, sample, layer, quantity, i, j, value FROM train
    WHERE phase = 1 AND ((quantity, layer) IN (('input', 1)))
  ) AS t
  RETURNING 1
),
trace_2 AS (
  INSERT INTO "sqlnet_trace"."phase2_hidden_activation" (run_id, epoch, sample, layer, quantity, input_node, node, value)
  SELECT 1, t.* FROM (
    SELECT epoch, sample, layer, quantity, i, j, value FROM train
    WHERE phase = 2 AND ((quantity, layer) IN (('activation', 1)))
  ) AS t
  RETURNING 1
),
trace_3 AS (
  INSERT INTO "sqlnet_trace"."phase3_output_input" (run_id, epoch, sample, layer, quantity, input_node, node, value)
  SELECT 1, t.* FROM (
    SELECT epoch, sample, layer, quantity, i, j, value FROM train
    WHERE phase = 3 AND ((quantity, layer) IN (('input', 2)))
  ) AS t
  RETURNING 1
),
trace_4 AS (
  INSERT INTO "sqlnet_trace"."phase4_output" (run_id, epoch, sample, layer, quantity, input_node, node, value)
  SELECT 1, t.* FROM (
    SELECT epoch, sample, layer, quantity, i, j, value FROM train
    WHERE phase = 4 AND ((quantity, layer) IN (('activation', 2)))
  ) AS t
  RETURNING 1
),
trace_5 AS (
  INSERT INTO "sqlnet_trace"."phase5_error" (run_id, epoch, sample, layer, quantity, input_node, node, value)
  SELECT 1, t.* FROM (
    SELECT epoch, sample, layer, quantity, i, j, value FROM train
    WHERE phase = 5 AND ((quantity, layer) IN (('loss', NULL), ('delta', 2)) OR quantity = 'loss')
  ) AS t
  RETURNING 1
),
trace_6 AS (
  INSERT INTO "sqlnet_trace"."phase6_hidden_delta" (run_id, epoch, sample, layer, quantity, input_node, node, value)
  SELECT 1, t.* FROM (
    SELECT epoch, sample, layer, quantity, i, j, value FROM train
    WHERE phase = 6 AND ((quantity, layer) IN (('delta', 1)))
  ) AS t
  RETURNING 1
),
trace_7 AS (
  INSERT INTO "sqlnet_trace"."phase7_update" (run_id, epoch, sample, layer, quantity, input_node, node, value)
  SELECT 1, t.* FROM (
    SELECT epoch, sample, layer, quantity, i, j, value FROM train
    WHERE phase = 7 AND ((quantity, layer) IN (('weight', 1), ('bias', 1), ('weight', 2), ('bias', 2)))
  ) AS t
  RETURNING 1
)
-- the result: the mean loss of each epoch, then the trained weights and biases
SELECT * FROM (
  SELECT 'loss' AS quantity, epoch, NULL::int AS layer, NULL::int AS i, NULL::int AS j, loss AS value
  FROM (SELECT epoch, avg(value) AS loss FROM train WHERE quantity = 'loss' GROUP BY epoch) AS l
  UNION ALL
  SELECT quantity, 1, layer, i, j, value FROM trained
) AS result
ORDER BY quantity <> 'loss', layer, quantity DESC, epoch, i, j;
