"""Alert delivery: verdict and decision changes from the verdict topic to a Slack webhook.

`changes` decides what is news (pure), `delivery` posts it with retries, `consumer` ties them
to Kafka with its own consumer group, so a slow or failing webhook never holds up a worker.
"""
