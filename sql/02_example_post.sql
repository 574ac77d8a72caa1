-- The values of the blog post's 3-2-3 network: one sample (1, 3, 5) with target
-- (290, 399, 505). `sqlnet init --example post` runs this file after 01_tables.sql.
INSERT INTO inputs VALUES (1, 1), (2, 3), (3, 5);
INSERT INTO weights1 VALUES (1,1,2,1), (1,2,3,1), (2,1,4,2), (2,2,5,2), (3,1,6,3), (3,2,7,3);
INSERT INTO weights2 VALUES (1,1,1,2), (1,2,2,2), (1,3,3,2), (2,1,4,3), (2,2,5,3), (2,3,6,3);
INSERT INTO outputs VALUES (1, 290), (2, 399), (3, 505);
