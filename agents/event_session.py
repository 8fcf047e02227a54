"""The database session a handler gets: its event's own savepoint inside the batch's transaction.

A batch of events shares one Postgres transaction (that is what makes it fast); each event's writes
are isolated by a savepoint taken lazily, the first time its handler touches ``ctx.session``, so an
event whose handler never uses the database costs nothing. When the handler returns (and the
validator accepts), its session is flushed and the savepoint released: the writes commit with the
batch, next to the event's ``processed_events`` row. When it raises, or its output is rejected, the
savepoint is rolled back: its writes are gone and its neighbours' stay.

Committing and rolling back belong to the unit of work: a handler that tries either gets a
:class:`~schemas.errors.HandlerContractError` (an exception in the handler is how it says "undo").
"""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from schemas.errors import HandlerContractError


class HandlerSession(AsyncSession):
    """An ``AsyncSession`` on the event's savepoint; commit, rollback and close are Vigil's."""

    async def commit(self) -> NoReturn:
        raise HandlerContractError(
            "a handler must not commit ctx.session: Vigil commits the event's writes together with its "
            "processed-event record and outbox rows when the handler returns (use flush() to see "
            "generated keys)"
        )

    async def rollback(self) -> NoReturn:
        raise HandlerContractError(
            "a handler must not roll back ctx.session: raise an exception instead; the event's writes "
            "are undone and the event is retried, then dead-lettered"
        )

    async def close(self) -> NoReturn:
        raise HandlerContractError(
            "a handler must not close ctx.session (nor use it in `async with`): Vigil closes it "
            "after the event"
        )


class EventWrites:
    """One event's database writes: opened on first use, then kept or discarded as a whole."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._session: HandlerSession | None = None

    @property
    def used(self) -> bool:
        return self._session is not None

    def session(self) -> HandlerSession:
        if self._session is None:
            # create_savepoint: the session's transaction is a SAVEPOINT inside the batch's, made when
            # the session first needs the connection.
            self._session = HandlerSession(
                bind=self._connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            )
        return self._session

    async def flush(self) -> None:
        """Send pending ORM changes now, so that their errors are the handler's."""
        if self._session is not None:
            await self._session.flush()

    async def keep(self) -> None:
        """Release the savepoint: the writes become part of the batch's transaction."""
        session, self._session = self._session, None
        if session is not None:
            await AsyncSession.commit(session)
            await _close(session)

    async def discard(self) -> None:
        """Roll back to the savepoint: the writes are gone, the batch's transaction goes on."""
        session, self._session = self._session, None
        if session is not None:
            try:
                await AsyncSession.rollback(session)
            finally:
                await _close(session)


async def _close(session: AsyncSession) -> Any:
    return await AsyncSession.close(session)
