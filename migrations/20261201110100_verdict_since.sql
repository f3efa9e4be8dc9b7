-- A stored verdict row holds one 10 s bucket's latest evaluation, so its window_end moves on
-- with every heartbeat. verdict_since keeps the window end (event time) of the evaluation that
-- first had the row's verdict and decision: the dashboard's timeline shows changes then.
ALTER TABLE webhook_routing_verdicts ADD COLUMN verdict_since timestamptz;
