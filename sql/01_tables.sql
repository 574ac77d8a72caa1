-- The tables sqlnet trains, exactly as the blog post defines them (its part 7).
-- `sqlnet init` runs this file; docker-compose runs it once when the volume is empty.
-- Node numbers run 1..n in every layer. The bias is stored per edge: the input of
-- node j is sum over i of (weight_ij * value_i + bias_ij).
CREATE TABLE inputs   (inputNode NUMERIC, inputValue NUMERIC);
CREATE TABLE weights1 (weight1InputNodeNumber NUMERIC, weight1OutputNodeNumber NUMERIC,
                       weight1Value NUMERIC, weight1Bias NUMERIC);
CREATE TABLE weights2 (weight2InputNodeNumber NUMERIC, weight2OutputNodeNumber NUMERIC,
                       weight2Value NUMERIC, weight2Bias NUMERIC);
CREATE TABLE outputs  (outputNode NUMERIC, outputValue NUMERIC);
