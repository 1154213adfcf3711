"""Experiment: consumers wait for the first record, then take what is already fetched.

`Consumer.consume(num_messages=500, timeout=0.5)` returns only when 500 records are there or the
0.5 s are over, so at low rates every record waits for the timeout. Here `consume` becomes
"poll for the first record (up to `timeout`), then drain up to num_messages - 1 without waiting".
"""

import confluent_kafka

_Consumer = confluent_kafka.Consumer


class PollThenDrainConsumer(_Consumer):
    def consume(self, num_messages=1, timeout=-1):
        first = self.poll(timeout)
        if first is None:
            return []
        if num_messages <= 1:
            return [first]
        return [first, *super().consume(num_messages - 1, timeout=0)]


confluent_kafka.Consumer = PollThenDrainConsumer
