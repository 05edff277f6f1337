"""A local Redshift stand-in: real PostgreSQL behind a small wire-protocol proxy.

Unmodified ``redshift_connector`` and ``awswrangler`` talk to it over a real TCP socket. The proxy

(a) answers the SSL request with 'N' and drops the Redshift-only startup parameters
    (``client_protocol_version``, ``driver_version``, ``os_version``, ...) that PostgreSQL rejects;
(b) reports ``server_version`` 8.0.2, which the driver parses to pick its protocol;
(c) rewrites Redshift-only SQL: ``COPY t FROM 's3://…' IAM_ROLE … FORMAT AS PARQUET`` is executed by reading
    the Parquet objects from the S3 endpoint and inserting them in the same session (so temporary tables and
    transactions behave), and DISTSTYLE / DISTKEY / SORTKEY / ENCODE clauses are dropped;
(d) behaves like Redshift where PostgreSQL is stricter or counts differently: primary and foreign keys are
    dropped (Redshift never enforces them), and ``VARCHAR(n)`` becomes ``VARCHAR`` with a check that the value
    holds at most n bytes (Redshift counts bytes, PostgreSQL characters).

It also records every statement it receives (for the SQL snapshot test) and can fail a chosen statement
(for the mid-load failure test). It is a test fixture, weaker than Redshift in ways the README lists.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SSL_REQUEST = 80877103
CANCEL_REQUEST = 80877102
GSSENC_REQUEST = 80877104
# Startup parameters PostgreSQL understands; the driver's Redshift-only ones are dropped.
ALLOWED_STARTUP = {
    b"user",
    b"database",
    b"application_name",
    b"client_encoding",
    b"DateStyle",
    b"TimeZone",
    b"options",
    b"extra_float_digits",
}

_PHYSICAL = re.compile(
    r"\s*\b(DISTSTYLE\s+(ALL|EVEN|KEY|AUTO)|DISTKEY\s*\([^)]*\)|(COMPOUND\s+|INTERLEAVED\s+)?SORTKEY\s*\([^)]*\)"
    r"|ENCODE\s+\w+)",
    re.IGNORECASE,
)
# Redshift declares keys but never enforces them: the stand-in drops them, so only the pipeline's own checks
# protect the warehouse in tests, as on Redshift.
_KEYS = re.compile(
    r",\s*(PRIMARY\s+KEY\s*\([^)]*\)|FOREIGN\s+KEY\s*\([^)]*\)\s*REFERENCES\s+[\w\".]+\s*\([^)]*\))",
    re.IGNORECASE,
)
# Redshift counts VARCHAR(n) in bytes, PostgreSQL in characters: the length becomes a check on the bytes.
_SIZED = re.compile(r'("[^"]+")\s+VARCHAR\((\d+)\)', re.IGNORECASE)
_COPY = re.compile(
    r"^\s*COPY\s+(?P<table>[\w\".]+)\s*(?P<cols>\([^)]*\))?\s*FROM\s+'(?P<url>s3://[^']+)'(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)


class CopyError(RuntimeError):
    pass


@dataclass
class StandIn:
    """Configuration and observable state of one proxy."""

    pg_socket: str  # path of PostgreSQL's unix socket
    s3_client: Any  # boto3 S3 client pointed at the test endpoint
    statements: list[str] = field(default_factory=list)
    # Called with each incoming statement; returning a message makes that statement fail with it.
    fail_if: Callable[[str], str | None] | None = None
    # Called with each incoming statement; returning True drops the client's connection instead.
    drop_if: Callable[[str], bool] | None = None
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.AbstractServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------------------ SQL rewriting

    def rewrite(self, sql: str) -> str:
        with self._lock:
            self.statements.append(sql)
        if self.fail_if is not None:
            message = self.fail_if(sql)
            if message:
                return f"DO $standin$BEGIN RAISE EXCEPTION '%', $msg${message}$msg$; END$standin$"
        m = _COPY.match(sql)
        if m and re.search(r"FORMAT\s+AS\s+PARQUET", m.group("rest"), re.IGNORECASE):
            return self._copy_to_insert(m.group("table"), m.group("cols"), m.group("url"))
        if re.match(r"^\s*CREATE\s+", sql, re.IGNORECASE):
            sql = _PHYSICAL.sub("", sql)
            sql = _KEYS.sub("", sql)
            sql = _SIZED.sub(r"\1 VARCHAR CHECK (octet_length(\1) <= \2)", sql)
        return sql

    def _copy_to_insert(self, table: str, cols: str | None, url: str) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        bucket, _, prefix = url[len("s3://") :].partition("/")
        keys: list[str] = []
        paginator = self.s3_client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        if not keys:
            raise CopyError(f"The specified S3 prefix '{prefix}' does not exist")
        tables = [
            pq.read_table(io.BytesIO(self.s3_client.get_object(Bucket=bucket, Key=k)["Body"].read()))
            for k in sorted(keys)
        ]
        data = pa.concat_tables(tables, promote_options="default")
        rows = json.dumps(data.to_pylist(), default=str)
        tag = "$standin_rows$"
        if tag in rows:
            raise CopyError("row data contains the dollar-quote tag")
        target = table
        column_list = cols or ""
        select = "*" if not cols else cols.strip("()")
        return (
            f"INSERT INTO {target} {column_list} SELECT {select} FROM "
            f"json_populate_recordset(NULL::{target}, {tag}{rows}{tag})"
        )

    # ------------------------------------------------------------------------------ wire protocol

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader: asyncio.StreamReader | None = None
        up_writer: asyncio.StreamWriter | None = None
        try:
            while True:
                length = struct.unpack("!i", await reader.readexactly(4))[0]
                body = await reader.readexactly(length - 4)
                code = struct.unpack("!i", body[:4])[0]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    writer.write(b"N")
                    await writer.drain()
                    continue
                break
            up_reader, up_writer = await asyncio.open_unix_connection(self.pg_socket)
            if code == CANCEL_REQUEST:
                up_writer.write(struct.pack("!i", length) + body)
                await up_writer.drain()
                return
            up_writer.write(self._startup(body))
            await up_writer.drain()
            await asyncio.gather(
                self._pump(reader, up_writer, self._client_message),
                self._pump(up_reader, writer, self._server_message),
            )
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()

    @staticmethod
    def _startup(body: bytes) -> bytes:
        parts = body[4:].split(b"\x00")
        params = dict(zip(parts[0::2], parts[1::2], strict=False))
        kept = b"".join(k + b"\x00" + v + b"\x00" for k, v in params.items() if k in ALLOWED_STARTUP and k)
        # Redshift reads a backslash in a string literal as an escape, as PostgreSQL does with this off.
        kept += b"options\x00-c standard_conforming_strings=off\x00"
        payload = body[:4] + kept + b"\x00"
        return struct.pack("!i", len(payload) + 4) + payload

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, transform: Callable[[bytes, bytes], bytes]
    ) -> None:
        try:
            while True:
                kind = await src.readexactly(1)
                length = struct.unpack("!i", await src.readexactly(4))[0]
                body = await src.readexactly(length - 4)
                if kind in (b"Q", b"P"):
                    body = await asyncio.get_running_loop().run_in_executor(None, transform, kind, body)
                else:
                    body = transform(kind, body)
                dst.write(kind + struct.pack("!i", len(body) + 4) + body)
                await dst.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            dst.close()

    def _client_message(self, kind: bytes, body: bytes) -> bytes:
        if self.drop_if is not None and kind in (b"Q", b"P"):
            sql = body.decode(errors="replace")
            if self.drop_if(sql):
                raise ConnectionResetError("stand-in: connection dropped on purpose")
        try:
            if kind == b"Q":
                sql = body[:-1].decode()
                return self._safe_rewrite(sql).encode() + b"\x00"
            if kind == b"P":
                name_end = body.index(b"\x00")
                query_end = body.index(b"\x00", name_end + 1)
                sql = body[name_end + 1 : query_end].decode()
                return body[: name_end + 1] + self._safe_rewrite(sql).encode() + body[query_end:]
        except UnicodeDecodeError:
            pass
        return body

    def _safe_rewrite(self, sql: str) -> str:
        try:
            return self.rewrite(sql)
        except Exception as exc:  # turn it into a SQL error the client sees, like Redshift's COPY errors
            msg = str(exc).replace("$", "")
            return f"DO $e$BEGIN RAISE EXCEPTION '%', $m${msg}$m$; END$e$"

    @staticmethod
    def _server_message(kind: bytes, body: bytes) -> bytes:
        if kind == b"S":
            name = body.partition(b"\x00")[0]
            if name == b"server_version":
                return b"server_version\x008.0.2\x00"
        return body

    # ------------------------------------------------------------------------------ lifecycle

    def start(self, host: str = "127.0.0.1") -> int:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, host, 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="redshift-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Redshift stand-in did not start")
        return self.port

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
