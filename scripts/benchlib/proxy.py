"""A loopback TCP proxy that delays each direction by a fixed time and counts round trips.

It stands in for a database one network hop away: every chunk is forwarded after
``delay`` seconds, in order, so a transaction costs its round trips times twice the
delay. A round trip is counted each time the client speaks after the server has
(the direction turning from server to client), which is what the delay multiplies.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg.conninfo import conninfo_to_dict


class DelayProxy:
    """Listen on 127.0.0.1; forward to the server of ``libpq_url`` with ``delay`` each way."""

    def __init__(self, libpq_url: str, delay: float) -> None:
        params = conninfo_to_dict(libpq_url)
        self.host = str(params.get("host") or "127.0.0.1")
        self.port = int(params.get("port") or 5432)
        self.delay = delay
        self.round_trips = 0
        self.listen_port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bench-delay-proxy", daemon=True)

    def url(self, url: str) -> str:
        """``url`` (a SQLAlchemy or libpq URL) pointed at the proxy instead of the server."""
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        query = {k: v for k, v in parsed.query.items() if k not in ("host", "port")}
        moved = parsed.set(host="127.0.0.1", port=self.listen_port, query=query)
        return moved.render_as_string(hide_password=False)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start within 10 s")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.listen_port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        # Stopped: end every connection's tasks before the loop closes, so none is left pending.
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.host.startswith("/"):
            return await asyncio.open_unix_connection(f"{self.host}/.s.PGSQL.{self.port}")
        return await asyncio.open_connection(self.host, self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._upstream()
        last = ["server"]
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, last, "client"),
                self._pump(up_reader, writer, last, "server"),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            return  # the proxy is stopping: end quietly, the connections close with it

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, last: list[str], side: str
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, sink))
        try:
            while chunk := await source.read(65536):
                if side == "client" and last[0] == "server":
                    self.round_trips += 1
                last[0] = side
                queue.put_nowait((self._loop.time() + self.delay, chunk))
            queue.put_nowait((0.0, b""))
            await sender
        finally:
            sender.cancel()

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    return
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                sink.write(chunk)
                await sink.drain()
        finally:
            sink.close()


@contextmanager
def delay_proxy(libpq_url: str, delay: float) -> Iterator[DelayProxy]:
    proxy = DelayProxy(libpq_url, delay)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
