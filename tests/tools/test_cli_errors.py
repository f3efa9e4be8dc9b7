"""What docs/operator.md promises about errors: one line on stderr starting `error: `, and
its exit code (2 for bad input or setup), before any work is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools.conftest import RunCli


@pytest.mark.parametrize("args", [
    ("simulate", "--count", "10", "--out", "{missing}/events.jsonl"),
    ("export", "--since", "-1h", "--out", "{missing}/events.jsonl"),
    ("report", "--since", "-1h", "--out", "{missing}/day.md"),
    ("report", "--since", "-1h", "--chart", "{missing}/day.png"),
])
async def test_an_unwritable_output_path_is_one_line_and_exit_2(
    run_cli: RunCli, database_url: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "no-such-folder"
    argv = [arg.format(missing=missing) for arg in args]

    result = await run_cli(*argv, env={"DATABASE_URL": database_url})

    option, path = argv[-2], argv[-1]
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {option} {path}: folder {missing} does not exist"]
    assert not missing.exists()


async def test_an_output_path_that_is_a_folder_is_one_line(
    run_cli: RunCli, database_url: str, tmp_path: Path
) -> None:
    result = await run_cli("report", "--since", "-1h", "--out", str(tmp_path),
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--out'") and "is a directory" in line
    assert line.endswith("(`trafficlight report -h` for usage)")


@pytest.mark.parametrize(("args", "message"), [
    (("disable",), "error: Missing option '--reason'."),
    (("set-percentage", "ten", "--reason", "x"), "error: Invalid value for 'PCT'"),
    (("status", "--no-such-flag"), "error: No such option: --no-such-flag"),
])
async def test_a_usage_error_is_one_line_and_exit_2(
    run_cli: RunCli, database_url: str, args: tuple[str, ...], message: str
) -> None:
    result = await run_cli(*args, env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(message)
    assert line.endswith("-h` for usage)")
