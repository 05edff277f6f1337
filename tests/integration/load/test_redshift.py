"""The production path against real parts on loopback: S3 (moto's server) and the Redshift stand-in.

The stand-in is PostgreSQL behind a wire proxy (tests/support/redshift_standin/); the pipeline, redshift_connector
and awswrangler run unmodified. ``test_redshift_live.py`` runs the same end-to-end check on real AWS.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support import scenarios
from tests.support.helpers import REFERENCE, cli, read_tables, run_json, write_config
from tests.support.records import event
from tests.support.redshift import comparable, new_schema, rs_config, rs_tables
from tests.support.services import RS_PASSWORD, Redshift, S3Endpoint

SNAPSHOT = Path(__file__).parent / "snapshots" / "redshift_load.sql"


@pytest.fixture(scope="module")
def sample_in_s3(s3: S3Endpoint, sample_dir: Path) -> dict[str, str]:
    return s3.upload_sources(sample_dir / "song_data", sample_dir / "log_data", "sparkify-raw")


def test_redshift_run_equals_the_duckdb_run_and_reruns_change_nothing(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_in_s3: dict[str, str], sample_dir: Path
) -> None:
    schema = new_schema()
    config, env = rs_config(tmp_path, s3, redshift, sample_in_s3, schema)
    summary = run_json(config, env=env)
    assert summary["status"] == "succeeded"
    assert summary["target"] == f"redshift:127.0.0.1:{redshift.port}/postgres"
    assert summary["rows_total"] == REFERENCE
    assert s3.keys("sparkify-staging", schema) == [], "a successful run removes its staged files"

    local = tmp_path / "local"
    local.mkdir()
    run_json(write_config(local, sample_dir / "song_data", sample_dir / "log_data"))
    duck = read_tables(local / "wh.duckdb")
    first = rs_tables(redshift, schema)
    for name in duck:
        pd.testing.assert_frame_equal(comparable(first[name]), comparable(duck[name]), obj=name)

    run_json(config, env=env)
    second = rs_tables(redshift, schema)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name], obj=name)


def test_failure_of_the_fourth_copy_leaves_all_five_tables_as_they_were(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_dir: Path
) -> None:
    schema = new_schema()
    logs = sorted((sample_dir / "log_data").rglob("*.json"))
    first_half = tmp_path / "half"
    for p in logs[:15]:
        dst = first_half / p.relative_to(sample_dir / "log_data")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(p.read_bytes())
    sources = s3.upload_sources(sample_dir / "song_data", first_half, "sparkify-raw", schema)
    config, env = rs_config(tmp_path, s3, redshift, sources, schema)
    run_json(config, env=env)
    before = rs_tables(redshift, schema)
    assert 0 < len(before["songplays"]) < 6820

    s3.upload_tree(sample_dir / "log_data", "sparkify-raw", f"{schema}/log_data")  # the rest of the days arrive
    # Tables load in order users, artists, songs, time, songplays: time is the fourth.
    redshift.proxy.fail_if = lambda sql: "injected: COPY failed" if re.match(r'\s*COPY "stg_time"', sql) else None
    try:
        proc = cli("run", "-c", str(config), env=env)
    finally:
        redshift.proxy.fail_if = None
    assert proc.returncode == 1, proc.stderr
    assert "injected: COPY failed" in proc.stderr
    kept = s3.keys("sparkify-staging", schema)
    assert kept, "a failed run keeps its staged files"
    assert f"staged files kept for inspection in s3://sparkify-staging/{schema}/" in proc.stderr

    after = rs_tables(redshift, schema)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)


def _normalise(statements: list[str], schema: str) -> str:
    out = []
    for sql in statements:
        sql = sql.replace(schema, "<schema>")
        sql = re.sub(r"s3://[^']+/(\w+)/'", r"s3://<staging>/<run>/\1/'", sql)
        out.append(sql.strip())
    return "\n;\n".join(out) + "\n"


def test_sql_sent_by_the_load_matches_the_snapshot(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_in_s3: dict[str, str], request: Any
) -> None:
    """A dependency upgrade (awswrangler, redshift_connector) that changes the SQL on the wire fails here.

    Regenerate deliberately with SPARKIFY_UPDATE_SNAPSHOTS=1 and review the diff.
    """
    import os

    schema = new_schema()
    config, env = rs_config(tmp_path, s3, redshift, sample_in_s3, schema)
    start = len(redshift.proxy.statements)
    run_json(config, env=env)
    got = _normalise(redshift.proxy.statements[start:], schema)
    if os.environ.get("SPARKIFY_UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(got)
        if os.environ.get("SPARKIFY_UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"snapshot {SNAPSHOT} was missing and has been written; review and commit it")
    assert got == SNAPSHOT.read_text()


def test_the_password_never_leaves_the_environment(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_dir: Path
) -> None:
    """The Redshift password is in the environment of every run here: it must reach no output, log, rejected
    record, run history, metrics or exception text, and a connection that fails names the host instead."""
    from tests.support.services import FAKE_AWS

    schema = new_schema()
    logs = tmp_path / "logs"
    shutil.copytree(sample_dir / "log_data", logs)
    sorted(logs.rglob("*.json"))[0].write_bytes(b'{"ts": "bad"}\n' + sorted(logs.rglob("*.json"))[0].read_bytes())
    sources = s3.upload_sources(sample_dir / "song_data", logs, "sparkify-raw", schema)
    config, env = rs_config(tmp_path, s3, redshift, sources, schema)
    ok = cli("run", "-v", "--json", "-c", str(config), env=env)
    assert ok.returncode == 0, ok.stderr
    s3.upload_tree(sample_dir / "log_data", "sparkify-raw", f"{schema}/log_data")  # a changed file: run again
    failed = cli("run", "-v", "-c", str(config), env={**env, "SPARKIFY_FAULT_FAIL_AT": "merged-songplays"})
    assert failed.returncode == 1 and "injected failure" in failed.stderr
    wrong = cli(
        "run",
        "-v",
        "-c",
        str(config),
        env={"SPARKIFY_REDSHIFT_PASSWORD": "wrong-" + RS_PASSWORD, "SPARKIFY__WAREHOUSE__REDSHIFT__PORT": "1"},
    )
    assert wrong.returncode == 69, "a refused connection is an unreachable warehouse, not an unexpected error"
    assert "warehouse unreachable: cannot connect to redshift:127.0.0.1:1/postgres" in wrong.stderr
    con = redshift.connect()
    cur = con.cursor()
    cur.execute(f'SELECT "error" FROM "{schema}"."_sparkify_runs"')
    history = " ".join(str(r[0]) for r in cur.fetchall())
    con.close()
    assert "injected failure" in history
    rejects = "".join(p.read_text() for p in (tmp_path / "rejects").rglob("*.jsonl"))
    assert '"reason"' in rejects
    everything = "".join(
        [
            ok.stdout,
            ok.stderr,
            failed.stdout,
            failed.stderr,
            wrong.stdout,
            wrong.stderr,
            config.read_text(),
            history,
            rejects,
            (tmp_path / "build" / "sparkify.prom").read_text(),
        ]
    )
    for secret in (
        RS_PASSWORD,
        "wrong-" + RS_PASSWORD,
        FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        FAKE_AWS["AWS_SESSION_TOKEN"],
    ):
        assert secret not in everything


def test_the_stand_in_enforces_no_keys_so_the_pipelines_checks_are_what_catch_a_duplicate(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_in_s3: dict[str, str]
) -> None:
    schema = new_schema()
    config, env = rs_config(tmp_path, s3, redshift, sample_in_s3, schema)
    assert cli("run", "-q", "-c", str(config), env=env).returncode == 0
    con = redshift.connect()
    cur = con.cursor()
    # Redshift would accept this duplicate of a primary key; so does the stand-in.
    cur.execute(f'INSERT INTO "{schema}"."songplays" SELECT * FROM "{schema}"."songplays" LIMIT 1')
    con.commit()
    con.close()
    checked = cli("check", "-c", str(config), env=env)
    assert checked.returncode == 3
    assert "FAILED songplays.primary_key_unique: 1" in checked.stdout


def test_a_value_too_long_in_bytes_is_a_rejected_record_on_both_targets(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_dir: Path
) -> None:
    """200 characters of 'é' fit a 256-character column but not Redshift's 256 bytes: the same record is
    rejected, with its reason, on either target, and the rest loads."""
    logs = tmp_path / "logs"
    shutil.copytree(sample_dir / "log_data", logs)
    day = sorted(logs.rglob("*.json"))[3]
    day.write_bytes(day.read_bytes() + b"\n" + json.dumps(event(firstName="é" * 200, sessionId=4242)).encode())
    schema = new_schema()
    sources = s3.upload_sources(sample_dir / "song_data", logs, "sparkify-raw", schema)
    config, env = rs_config(tmp_path, s3, redshift, sources, schema)
    on_redshift = run_json(config, env=env)
    local = tmp_path / "local"
    local.mkdir()
    on_duckdb = run_json(write_config(local, sample_dir / "song_data", logs))
    for summary in (on_redshift, on_duckdb):
        assert summary["records_rejected"]["log_data"] == 1
        assert summary["rows_total"] == REFERENCE
    rejects = [json.loads(x) for p in tmp_path.rglob("*.jsonl") for x in p.read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["'firstName' is 400 bytes, longer than the 256 its column holds"] * 2


def test_a_long_non_ascii_error_is_recorded_as_failed(tmp_path: Path, s3: S3Endpoint, redshift: Redshift) -> None:
    """An error of 6,000 bytes of UTF-8 is cut to the 4,096 bytes its column holds, so the run is recorded as
    failed (not left 'running', to be called abandoned by the next run)."""
    schema = new_schema()
    s3.ensure_bucket("sparkify-raw")
    missing = "s3://sparkify-raw/" + "é" * 3000
    config, env = rs_config(tmp_path, s3, redshift, {"song_data": missing, "log_data": missing}, schema)
    assert cli("run", "-c", str(config), env=env).returncode == 5
    [r] = json.loads(cli("runs", "--json", "-c", str(config), env=env).stdout)
    assert r["status"] == "failed"
    assert r["error"].startswith("SourceError: s3://sparkify-raw/éé") and len(r["error"].encode()) <= 4096


def test_nights_on_redshift_end_equal_to_one_full_run(tmp_path: Path, s3: S3Endpoint, redshift: Redshift) -> None:
    """The nightly property on the stand-in: sources on the S3 API, re-deliveries and deletions included."""
    ds, nights = scenarios.hard_case()
    schema = new_schema()
    s3.ensure_bucket("sparkify-raw")
    source = scenarios.S3Source(s3.client, "sparkify-raw", f"{schema}/src")
    urls = {kind: f"s3://sparkify-raw/{schema}/src/{kind}" for kind in ("song_data", "log_data")}
    config, env = rs_config(tmp_path, s3, redshift, urls, schema)
    for night in nights:
        source.apply(ds, night)
        summary = run_json(config, env={**env, "SPARKIFY__SOURCE__BATCH_MB": "0.004"})
        assert summary["status"] == "succeeded"

    once = tmp_path / "once"
    once.mkdir()
    expected = scenarios.expected_folder(ds, nights, tmp_path / "expected")
    run_json(write_config(once, expected / "song_data", expected / "log_data"))
    want, got = read_tables(once / "wh.duckdb"), rs_tables(redshift, schema)
    for name in want:
        pd.testing.assert_frame_equal(comparable(got[name]), comparable(want[name]), obj=name)


def test_the_analysts_queries_answer_alike_on_both_warehouses(
    tmp_path: Path,
    s3: S3Endpoint,
    redshift: Redshift,
    sample_in_s3: dict[str, str],
    sample_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.analytics.queries import Analytics
    from pipeline.core.config import load_config
    from pipeline.load import destination_for

    schema = new_schema()
    config, env = rs_config(tmp_path, s3, redshift, sample_in_s3, schema)
    run_json(config, env=env)
    local = tmp_path / "local"
    local.mkdir()
    local_config = write_config(local, sample_dir / "song_data", sample_dir / "log_data")
    run_json(local_config)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rs = Analytics(destination_for(load_config(config)))
    duck = Analytics(destination_for(load_config(local_config)))
    questions = {
        "match_breakdown": lambda a: a.match_breakdown(),
        "top_unmatched": lambda a: a.top_unmatched(10),
        "top_songs": lambda a: a.top_songs(10),
        "top_artists": lambda a: a.top_artists(10),
        "level_changes": lambda a: a.level_changes(),
        "active_users_per_day": lambda a: a.active_users_per_day(),
        "known_users_by_level_per_day": lambda a: a.known_users_by_level_per_day(),
        "co_play_seeds": lambda a: a.co_play_seeds(3, 10),
        "promotion_targets": lambda a: a.promotion_targets(20),
        "weekly_plays": lambda a: a.weekly_plays("song", 3),
        "movers": lambda a: a.movers("artist", 5),
        "played_with": lambda a: a.played_with("You're The One", "Dwight Yoakam", 10),
    }
    for name, ask in questions.items():
        got, want = ask(rs), ask(duck)
        assert len(want), f"{name} answers something on the sample"
        # Computed shares and rates agree to the last few bits only (each engine's own float arithmetic).
        floats = [c for c in want.columns if pd.api.types.is_float_dtype(want[c])]
        got, want = (
            got.assign(**{c: got[c].astype(float).round(9) for c in floats}),
            want.assign(**{c: want[c].round(9) for c in floats}),
        )
        pd.testing.assert_frame_equal(comparable(got), comparable(want), obj=name)


def test_a_text_literal_reads_back_exactly_on_both_warehouses(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_in_s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Analysts' questions quote a song title into SQL; Redshift reads a backslash there as an escape.
    from pipeline.core.config import load_config
    from pipeline.load import destination_for

    config, env = rs_config(tmp_path, s3, redshift, sample_in_s3, new_schema())
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rs = destination_for(load_config(config))
    (tmp_path / "d").mkdir()
    duck = destination_for(load_config(write_config(tmp_path / "d", "s", "l")))
    for value in ["O'Brien\\", "a\\'b", "C:\\new\\table", "plain"]:
        for dest in (rs, duck):
            got = dest.query(f"SELECT {dest.dialect.literal(value)} AS v")["v"].iloc[0]
            assert got == value, (dest.dialect.name, value, got)


def test_a_shrunk_redelivery_is_held_on_redshift_too_and_loads_once_accepted(
    tmp_path: Path, s3: S3Endpoint, redshift: Redshift, sample_dir: Path
) -> None:
    schema = new_schema()
    sources = s3.upload_sources(sample_dir / "song_data", sample_dir / "log_data", "sparkify-raw", schema)
    config, env = rs_config(tmp_path, s3, redshift, sources, schema)
    assert run_json(config, env=env)["status"] == "succeeded"
    loaded = rs_tables(redshift, schema)
    day = sorted((sample_dir / "log_data").rglob("*.json"))[10]
    key = f"{schema}/log_data/{day.relative_to(sample_dir / 'log_data').as_posix()}"
    s3.client.put_object(Bucket="sparkify-raw", Key=key, Body=day.read_bytes().split(b"\n")[0])  # cut short
    held = cli("run", "--json", "-c", str(config), env=env)
    assert held.returncode == 6, held.stderr
    summary = json.loads(held.stdout)
    assert [h["url"] for h in summary["files_held"]] == [f"s3://sparkify-raw/{key}"]
    for name, frame in rs_tables(redshift, schema).items():
        pd.testing.assert_frame_equal(frame, loaded[name], obj=name)
    accepted = cli("run", "--json", "-c", str(config), "--accept-shrunk", f"s3://sparkify-raw/{key}", env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert len(rs_tables(redshift, schema)["songplays"]) < len(loaded["songplays"])
