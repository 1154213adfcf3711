"""The messaging backbone: CloudEvents envelope, transactional outbox, relay, consumer and inbox.

A Django app (label `messaging`) without tables of its own: each context declares concrete
outbox/inbox models from the abstract ones here, so they live in the context's database.
"""
