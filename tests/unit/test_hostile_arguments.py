"""Hostile configuration and command-line arguments get a clear error and change nothing."""

from __future__ import annotations

import pytest

import cli
from pgbroker.queries import bind, check_schema_name
from settings import SettingsError, load_settings


@pytest.mark.parametrize(
    "name", ["a$$b", "x; DROP SCHEMA public", "Ünïcode", "1starts_with_digit", ""]
)
def test_a_schema_name_that_is_not_a_plain_identifier_is_refused_by_settings(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("JOBS_SCHEMA_NAME", name)
    with pytest.raises(SettingsError, match="JOBS_SCHEMA_NAME"):
        load_settings()


def test_a_schema_name_with_dollar_quotes_never_reaches_sql() -> None:
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        bind("DO $$ BEGIN PERFORM 1 FROM {schema}.queue; END $$", "evil$$")
    assert check_schema_name("pts_jobs_2") == "pts_jobs_2"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["purge", "--older-than", "99999999999999999999d"], "longer than 100 years"),
        (["purge", "--older-than", "1e400d"], "not a duration"),
        (["purge", "--older-than=-5d"], "not a duration"),
        (["dead", "list", "--limit", "-1"], "not between 1 and 10000"),
        (["dead", "list", "--limit", "99999999999"], "not between 1 and 10000"),
        (["dead", "list", "--limit", "lots"], "not a whole number"),
    ],
)
def test_out_of_range_cli_arguments_exit_2_with_a_clear_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert complaint in error and "Traceback" not in error
