"""The CLI on the real sample: SPEC.md's reference figures, exactly, and a second run that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from tests.support import sql_oracle
from tests.support.helpers import REFERENCE, cli, read_tables, run_json, write_config


def test_sample_gives_the_reference_figures_and_reruns_change_nothing(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    summary = run_json(config)

    assert summary["status"] == "succeeded"
    assert summary["files_read"] == {"song_data": 71, "log_data": 30}
    assert summary["records_read"] == {"song_data": 71, "log_data": 8056}
    assert summary["records_rejected"] == {"song_data": 0, "log_data": 0}
    assert summary["rows_total"] == REFERENCE
    assert set(summary["seconds"]) == {"prepare", "extract", "transform", "stage", "load"}

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    assert con.execute("SELECT COUNT(*) FROM songplays WHERE song_id IS NOT NULL").fetchone() == (1,)
    assert con.execute("SELECT COUNT(*) FROM user_levels WHERE valid_to IS NULL").fetchone() == (97,)
    # Users whose level changed: the sample's events show 8 users with both levels.
    changed = con.execute(
        "SELECT COUNT(*) FROM (SELECT user_id FROM songplays GROUP BY user_id HAVING COUNT(DISTINCT level) > 1)"
    ).fetchone()
    assert changed == (8,)
    con.close()
    assert not any((tmp_path / "staging").iterdir()), "a successful run removes its staged files"

    before = read_tables(tmp_path / "wh.duckdb")
    again = run_json(config)
    assert again["rows_total"] == summary["rows_total"]
    after = read_tables(tmp_path / "wh.duckdb")
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)


def test_sample_matches_an_independent_sql_implementation_of_the_contract(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    run_json(config)
    sql_oracle.assert_matches(
        read_tables(tmp_path / "wh.duckdb"),
        str(sample_dir / "song_data" / "*" / "*" / "*" / "*.json"),
        str(sample_dir / "log_data" / "*" / "*" / "*.json"),
    )


def test_malformed_line_is_reported_and_everything_else_loaded(sample_copy: Path, tmp_path: Path) -> None:
    victim = sorted((sample_copy / "log_data").rglob("*.json"))[3]
    lines = victim.read_bytes().split(b"\n")
    broken_line = 5
    original = json.loads(lines[broken_line - 1])
    lines[broken_line - 1] = lines[broken_line - 1][:40]  # cut mid-record
    victim.write_bytes(b"\n".join(lines))

    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    summary = run_json(config)

    lost_play = original["page"] == "NextSong" and original["userId"] != ""
    assert summary["records_read"]["log_data"] == 8056
    assert summary["records_rejected"] == {"song_data": 0, "log_data": 1}
    assert summary["rows_total"]["songplays"] == 6820 - lost_play
    rejects = [json.loads(x) for x in Path(summary["rejects_file"]).read_text().splitlines()]
    assert len(rejects) == 1
    assert rejects[0]["file"] == str(victim) and rejects[0]["line"] == broken_line
    assert rejects[0]["raw"] == lines[broken_line - 1].decode()
    assert rejects[0]["reason"]


def test_too_many_rejects_fails_and_loads_nothing(sample_copy: Path, tmp_path: Path) -> None:
    # At the default threshold (1% of the bytes read): a day's file of garbage is 4% of the sample.
    victim = sorted((sample_copy / "log_data").rglob("*.json"))[0]
    victim.write_bytes(b"garbage\n" * 20_000)
    config = write_config(tmp_path, sample_copy / "song_data", sample_copy / "log_data")
    proc = cli("run", "-c", str(config))
    assert proc.returncode == 4, proc.stderr
    assert "over rejects.max_fraction" in proc.stderr
    assert not (tmp_path / "wh.duckdb").exists() or read_tables(tmp_path / "wh.duckdb")["songplays"].empty


def test_bad_config_key_fails_fast_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("warehouse:\n  targett: duckdb\n")
    proc = cli("run", "-c", str(bad))
    assert proc.returncode == 2
    assert "warehouse.targett: unknown key" in proc.stderr


def test_missing_source_folder_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "nope" / "song_data", tmp_path / "nope" / "log_data")
    proc = cli("run", "-c", str(config))
    assert proc.returncode == 5
    assert "not found or not a folder" in proc.stderr


def test_schema_commands_and_checks(sample_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample_dir / "song_data", sample_dir / "log_data")
    assert cli("create-schema", "-c", str(config)).returncode == 0
    assert read_tables(tmp_path / "wh.duckdb")["users"].empty
    run_json(config)
    ok = cli("check", "-c", str(config))
    assert ok.returncode == 0 and "checks passed" in ok.stdout

    # Break referential integrity behind the pipeline's back: the check must say so, naming the check.
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute("DELETE FROM users WHERE user_id = (SELECT user_id FROM songplays LIMIT 1)")
    con.close()
    bad = cli("check", "-c", str(config))
    assert bad.returncode == 3
    assert "FAILED songplays.user_id_in_users" in bad.stdout

    refused = cli("drop-schema", "-c", str(config))
    assert refused.returncode == 2
    assert cli("drop-schema", "--yes", "-c", str(config)).returncode == 0
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    assert con.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'main'").fetchone() == (0,)
    con.close()


def test_every_command_has_help() -> None:
    for command in ("run", "create-schema", "drop-schema", "check", "generate", "config"):
        proc = cli(command, "--help")
        assert proc.returncode == 0 and "usage:" in proc.stdout, command
