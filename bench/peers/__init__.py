"""Peer programs of ``bench_agents``: each runs as its own process and does the same work as Vigil.

The work (:mod:`bench.peers.work`): read a JSON event, route it by its score, and record exactly
once in Postgres a processed row keyed by the event id plus one outbox row carrying the route, in
one transaction; Kafka offsets are committed only after that transaction committed.
"""
