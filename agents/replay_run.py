"""Replayed events through one agent's real unit of work, in-process: dry run, deduplicated, or rerun.

- **dedup** (``vigil replay --agent``): :meth:`UnitOfWork.process`, the live path: an event already in
  ``processed_events`` is skipped, so nothing fires twice.
- **rerun**: each event runs under a new id derived from the replay id, so its side effects happen
  again, once per replay run (the same replay id run twice still dedups).
- **dry run**: :meth:`UnitOfWork.preview`, in a transaction that is rolled back.

Re-driving dead letters first releases the ``processed_events`` claim the dead-lettering left (only
when its run failed): the claim of the re-drive itself is then the usual atomic one, so two
re-drives, or a re-drive and a worker, still process the event once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agents.outputs import KafkaOutputs
from agents.unit_of_work import BatchResult, Item, Preview, UnitOfWork
from streams.replay_plan import rerun_event_id


@dataclass
class AgentReport:
    """What a replay through an agent did (or, for a dry run, would do)."""

    succeeded: int = 0
    skipped: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    released: int = 0
    previews: list[Preview] = field(default_factory=list)

    def add(self, result: BatchResult) -> None:
        self.succeeded += len(result.succeeded)
        self.skipped += len(result.duplicates)
        self.rejected += len(result.rejected)
        self.dead_lettered += len(result.dead_lettered)


def as_rerun(item: Item, replay_id: str) -> Item:
    """``item`` under its rerun id (its trace id is kept: the rerun belongs to the same trace)."""
    view = dataclasses.replace(item.view, event_id=rerun_event_id(item.event_id, replay_id))
    return Item(item.parts, view)


async def release_failed_claims(engine: AsyncEngine, agent: str, event_ids: Sequence[str]) -> int:
    """Delete the ``processed_events`` rows of ``event_ids`` whose run failed (dead-lettered); return how many."""
    if not event_ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                "DELETE FROM vigil.processed_events p USING vigil.runs r "
                "WHERE p.agent = :agent AND p.event_id = ANY(:ids) "
                "AND r.run_id = p.run_id AND r.status = 'failed'"
            ),
            {"agent": agent, "ids": list(event_ids)},
        )
        return int(result.rowcount or 0)


class AgentReplay:
    """Runs batches of replayed items through one agent's unit of work."""

    def __init__(
        self,
        uow: UnitOfWork,
        outputs: KafkaOutputs,
        *,
        replay_id: str,
        dry_run: bool,
        rerun: bool,
        redrive: bool,
    ) -> None:
        self.uow = uow
        self.outputs = outputs
        self.replay_id = replay_id
        self.dry_run = dry_run
        self.rerun = rerun
        self.redrive = redrive
        self.report = AgentReport()

    async def run(self, items: Sequence[Item]) -> None:
        if not items:
            return
        name = self.uow.spec.name
        if self.rerun:
            items = [as_rerun(item, self.replay_id) for item in items]
        if self.dry_run:
            # A re-drive's claims are released first, so its preview runs the handlers (claim=False).
            previews = await self.uow.preview(items, claim=not (self.rerun or self.redrive))
            self.report.previews += previews
            for preview in previews:
                if preview.status == "skipped":
                    self.report.skipped += 1
                elif preview.status == "succeeded":
                    self.report.succeeded += 1
                elif preview.status == "rejected":
                    self.report.rejected += 1
                else:
                    self.report.dead_lettered += 1
            return
        if self.redrive and not self.rerun:
            self.report.released += await release_failed_claims(
                self.uow.engine, name, [item.event_id for item in items]
            )
        result = await self.uow.process(items)
        self.report.add(result)
        self.outputs.publish_processed(name, items, result)
