"""Version servers a swap replaced: drained and stopped in the background, so that the swap
(and the deploy waiting on it) ends as soon as the new version takes the requests. The host
stops what is still retiring when it exits."""

from __future__ import annotations

import asyncio

from modelci.serve.workers import VersionServer


class Retiring:
    """The replaced servers still draining, by their task."""

    def __init__(self, drain_timeout: float):
        self.drain_timeout = drain_timeout
        self.servers: dict[asyncio.Task[None], VersionServer] = {}

    def start(self, server: VersionServer) -> None:
        """Drain `server` (no new request reaches it: its route moved), then stop it."""
        task = asyncio.create_task(self._retire(server))
        self.servers[task] = server
        task.add_done_callback(lambda done: self.servers.pop(done, None))

    async def _retire(self, server: VersionServer) -> None:
        await server.drain(self.drain_timeout)
        await asyncio.to_thread(server.stop)

    async def close(self) -> None:
        """The host exits: stop every server still retiring, without waiting for its drain."""
        pending = dict(self.servers)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for server in pending.values():
            if server.alive():
                await asyncio.to_thread(server.stop)
