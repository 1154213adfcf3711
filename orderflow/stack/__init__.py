"""The embedded dev stack: real PostgreSQL, Redis and a Kafka-protocol broker from pip wheels,
and a small supervisor for the OrderFlow processes. Used by `make run` and `make test`."""
