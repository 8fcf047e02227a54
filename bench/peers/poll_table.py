"""Peer of ``bench_latency``: poll the source table every second and write the same sink rows.

What one would write without CDC: every ``--interval`` seconds (on a fixed schedule), ``SELECT`` the
ids above the last one seen and insert them into the sink table in one transaction (the sink's
deferred trigger stamps the commit time, as for the agent). Ids are committed in order by the bench's
single inserting connection, so ``id > last`` misses none. Runs until SIGTERM.
``python -m bench.peers.poll_table --database-url … --source … --sink …``
"""

from __future__ import annotations

import argparse
import time

import psycopg
from psycopg import sql

from bench.peers.work import stop_on_sigterm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    stop = stop_on_sigterm()
    select = sql.SQL("SELECT id FROM public.{} WHERE id > %s ORDER BY id").format(sql.Identifier(args.source))
    insert = sql.SQL("INSERT INTO public.{} (id) SELECT unnest(%s::bigint[]) ON CONFLICT DO NOTHING").format(
        sql.Identifier(args.sink)
    )
    last = 0
    tick = time.monotonic()
    with psycopg.connect(args.database_url) as conn:
        while not stop.is_set():
            ids = [int(row[0]) for row in conn.execute(select, (last,)).fetchall()]
            if ids:
                conn.execute(insert, (ids,))
                last = ids[-1]
            conn.commit()
            tick += args.interval
            stop.wait(max(0.0, tick - time.monotonic()))


if __name__ == "__main__":
    main()
