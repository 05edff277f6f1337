"""Redshift: staged Parquet on S3, COPY into temporary tables with awswrangler, merge, check, commit.

The whole load is one transaction on one connection: awswrangler's ``copy_from_files`` is called with
``commit_transaction=False`` into a temporary table per star table, and the merge SQL, the checks and the
single COMMIT come from ``base.Destination`` like on every target.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline.core.errors import WarehouseUnreachable
from pipeline.core.schema import Table
from pipeline.core.sql import REDSHIFT, quote
from pipeline.load.base import Destination
from pipeline.load.session import Session
from pipeline.load.staged import StagedTable

if TYPE_CHECKING:
    from pipeline.core.config import Config

log = logging.getLogger(__name__)


class RedshiftConnectError(WarehouseUnreachable):
    pass


class _RedshiftSession:
    def __init__(self, con: Any):
        self.con = con
        # redshift_connector opens a transaction before the first statement when autocommit is off.
        con.autocommit = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.con.cursor() as cur:
            cur.execute(sql, tuple(params) or None)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(sql, tuple(params) or None)
            return [tuple(r) for r in cur.fetchall()]

    def frame(self, sql: str) -> pd.DataFrame:
        with self.con.cursor() as cur:
            cur.execute(sql)
            columns = [d[0] for d in cur.description or []]
            return pd.DataFrame([list(r) for r in cur.fetchall()], columns=columns)

    def begin(self) -> None:
        self.con.rollback()  # start from a clean transaction; the next statement opens a new one

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        try:
            self.con.rollback()
        except Exception as exc:  # a dropped connection: the server rolls back on its own
            log.warning("rollback failed (%s); the server discards the open transaction", exc)


class RedshiftDestination(Destination):
    dialect = REDSHIFT

    def __init__(self, config: Config):
        super().__init__(config.warehouse.schema_name)
        self.config = config
        self.rs = config.warehouse.redshift

    def describe(self) -> str:
        if self.rs.secret_id:
            return f"redshift:secret:{self.rs.secret_id}"
        if self.rs.glue_connection:
            return f"redshift:glue:{self.rs.glue_connection}"
        return f"redshift:{self.rs.host}:{self.rs.port}/{self.rs.database}"

    def _connect(self) -> Any:
        import awswrangler as wr
        import redshift_connector

        from pipeline.ops import aws

        try:
            if self.rs.secret_id or self.rs.glue_connection:
                return wr.redshift.connect(
                    connection=self.rs.glue_connection or None,
                    secret_id=self.rs.secret_id or None,
                    boto3_session=aws.session(self.config),
                    ssl=self.rs.ssl,
                    timeout=self.rs.timeout,
                )
            password = os.environ.get(self.rs.password_env)
            if password is None:
                raise RedshiftConnectError(
                    f"warehouse.redshift.password_env: environment variable {self.rs.password_env} is not set"
                )
            return redshift_connector.connect(
                host=self.rs.host,
                port=self.rs.port,
                database=self.rs.database,
                user=self.rs.user,
                password=password,
                ssl=self.rs.ssl,
                timeout=self.rs.timeout,
            )
        except RedshiftConnectError:
            raise
        except Exception as exc:
            # The driver's message names host and user, never the password; keep only its text.
            raise RedshiftConnectError(f"cannot connect to {self.describe()}: {exc}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        con = self._connect()
        try:
            yield _RedshiftSession(con)
        finally:
            try:
                con.close()
            except Exception as exc:
                log.debug("closing the connection failed: %s", exc)

    def stage_into(self, session: Session, staged: StagedTable, temp_name: str) -> None:
        import awswrangler as wr

        from pipeline.ops import aws

        assert isinstance(session, _RedshiftSession)
        session.execute(f"DROP TABLE IF EXISTS {quote(temp_name)}")
        session.execute(self.dialect.create_temp_table(staged.table, temp_name))
        if not staged.files:
            return
        # One COPY of the relation's prefix loads every part in parallel across the cluster's slices.
        wr.redshift.copy_from_files(
            path=staged.prefix,
            con=session.con,
            table=temp_name,
            schema=None,  # type: ignore[arg-type]  # a temporary table lives in no named schema
            iam_role=self.rs.iam_role,
            mode="append",
            commit_transaction=False,
            boto3_session=aws.session(self.config),
        )

    def put_frame(self, session: Session, table: Table, frame: pd.DataFrame, temp_name: str, location: str) -> None:
        # COPY is the only bulk path into Redshift: the frame goes through S3 like the staged relations.
        from pipeline.load.stage import write_part
        from pipeline.ops import aws

        folder = f"{location}/_reconciled/{temp_name}"
        files = []
        if len(frame):
            files.append(f"{folder}/part-00000.parquet")
            write_part(table, frame, files[0], aws.session(self.config))
        self.stage_into(session, StagedTable(table, files, len(frame), prefix=folder + "/"), temp_name)


def from_config(config: Config) -> RedshiftDestination:
    """The Redshift cluster the configuration names (the registry's factory, ``load.DESTINATIONS``)."""
    return RedshiftDestination(config)
