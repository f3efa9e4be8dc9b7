"""The labelled scoreboard: the scenario catalogue through trafficlight's judge and two
baselines (the runbook by hand, a Flagger-like analysis), scored against the labels.

- ``timeline``: the judge interface (events in stream order -> decision timeline);
- ``judges``: trafficlight's judge adapter and the two baselines;
- ``score``: caught / late / missed / pre-empted, false rollbacks, time in hold;
- ``board``: running the catalogue over seeds, the table and the JSON.
"""
