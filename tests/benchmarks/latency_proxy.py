"""A TCP forwarder that adds a fixed delay to every request: a network round trip, on loopback.

Real S3 answers a small GET in tens of milliseconds, mostly latency; loopback answers in microseconds.
Without emulated latency a benchmark measures only the endpoint's CPU, not what concurrency buys
against a real object store.
"""

from __future__ import annotations

import asyncio
import threading


class LatencyProxy:
    def __init__(self, upstream_port: int, delay_ms: float):
        self.upstream_port = upstream_port
        self.delay = delay_ms / 1000
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
        try:
            while chunk := await src.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pipe(reader, up_writer, self.delay), self._pipe(up_reader, writer, 0))

    def start(self) -> int:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait(10)
        return self.port

    def stop(self) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
