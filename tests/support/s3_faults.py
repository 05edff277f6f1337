"""An HTTP proxy in front of the test S3 server that brings what real networks bring.

``fail_every=N`` answers every Nth request with 503 SlowDown, as S3 does under load; ``delay_ms`` adds a
round trip to every request, since loopback answers in microseconds where S3 takes tens of milliseconds;
``fail_next(pattern, times)`` answers the next ``times`` requests whose first line matches with 503 (an outage
longer than the SDK's own retries) or 403 (access denied, which no retry cures).
It speaks just enough HTTP/1.1 to find request boundaries (headers, then Content-Length bytes), so faults
land on kept-alive connections exactly as they would in production.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>flaky</RequestId></Error>"
)
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message><RequestId>denied</RequestId></Error>"
)


@dataclass
class Rule:
    pattern: re.Pattern[bytes]
    times: int
    status: int
    hits: int = 0
    # Let this many matching requests through first (a fault in the middle of a file read in ranges).
    after: int = 0
    passed: int = 0

    def fires(self, request_line: bytes) -> bool:
        if self.hits >= self.times or not self.pattern.search(request_line):
            return False
        if self.passed < self.after:
            self.passed += 1
            return False
        return True


class S3Faults:
    def __init__(self, upstream_port: int, fail_every: int = 0, delay_ms: float = 0):
        self.upstream_port = upstream_port
        self.fail_every = fail_every
        self.delay = delay_ms / 1000
        self.requests = 0
        self.injected = 0
        self.rules: list[Rule] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        back = asyncio.create_task(self._pipe(up_reader, writer))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                line = head.split(b"\r\n")[0]
                rule = next((r for r in self.rules if r.fires(line)), None)
                if rule is not None:
                    rule.hits += 1
                    self.injected += 1
                    body_out, reason = (
                        (SLOW_DOWN, b"Slow Down") if rule.status == 503 else (ACCESS_DENIED, b"Forbidden")
                    )
                    writer.write(
                        b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\n" % (rule.status, reason)
                        + f"Content-Length: {len(body_out)}\r\n\r\n".encode()
                        + body_out
                    )
                    await writer.drain()
                    continue
                if self.fail_every and self.requests % self.fail_every == 0:
                    self.injected += 1
                    writer.write(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(SLOW_DOWN)}\r\n\r\n".encode()
                        + SLOW_DOWN
                    )
                    await writer.drain()
                    continue
                up_writer.write(head + body)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            back.cancel()
            up_writer.close()
            writer.close()

    def fail_next(self, pattern: str, times: int, status: int = 503, after: int = 0) -> Rule:
        """Answer the next ``times`` requests whose request line matches ``pattern`` with ``status``, once
        ``after`` of them have gone through."""
        rule = Rule(re.compile(pattern.encode()), times, status, after=after)
        self.rules.append(rule)
        return rule

    def start(self) -> str:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, daemon=True, name="s3-faults").start()
        ready.wait(10)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
