"""The README's worked examples run as written, from a clean database, and show what they print.

Each ``$ command`` of the circle and digits examples runs in bash, in that order, in an empty folder
against a fresh database (``SQLNET_DATABASE_URL``); its output must be the output the README shows
below it, timings aside. ``SQLNET_UPDATE_README=1 python -m pytest tests/test_readme.py`` rewrites
the README's outputs from such a run (review the diff).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

README = Path(__file__).parent.parent / "README.md"
SECTIONS = (
    "## The tables",
    "## The command line",
    "## Training real networks",
    "## Data in, predictions out",
    "## Reliability and security",
    "## Looking at the phases in psql",
)
PYTHON_SECTION = "## The Python API"
FROM_PYTHON_SECTION = "## From Python: SQLAlchemy, pandas, scikit-learn"
SPARK_SECTIONS = ("## Apache Spark (`--engine spark`)",)
TIMING = re.compile(r"\b\d+\.\d+ s\b")
STARTED = re.compile(r"\b\d\d-\d\d \d\d:\d\d\b")  # sqlnet runs' start times
SIZE = re.compile(r"\b\d+(\.\d)? (B|kB|MB|GB)\b")  # the records' size: pages, which servers allot their own way


@dataclass
class Step:
    command: list[str]  # the lines of the command as the README writes them (first one after "$ ")
    output: list[str]  # the lines the README shows it printing


def blocks(text: str, sections: tuple[str, ...] = SECTIONS) -> list[tuple[int, int]]:
    """(start, end) line indexes of the text blocks of the example sections that hold commands."""
    lines = text.split("\n")
    found = []
    section = None
    i = 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i]
        if lines[i] == "```text" and section in sections:
            end = lines.index("```", i + 1)
            if lines[i + 1].startswith("$ "):
                found.append((i + 1, end))
            i = end
        i += 1
    return found


def open_quotes(command: str) -> bool:
    """Whether a command is not finished: a quote left open or a backslash at the end of a line."""
    single = double = False
    escaped = False
    previous = " "
    for ch in command:
        if ch == "#" and not (single or double or escaped) and previous.isspace():
            return False  # a comment runs to the end of the line, and the command ends with it
        previous = ch
        if escaped:
            escaped = False
        elif ch == "\\" and not single:
            escaped = True
        elif ch == "'" and not double:
            single = not single
        elif ch == '"' and not single:
            double = not double
    return single or double or command.endswith("\\")


def steps(lines: list[str]) -> list[Step]:
    result: list[Step] = []
    i = 0
    while i < len(lines):
        assert lines[i].startswith("$ "), f"a README example block must start with a command: {lines[i]!r}"
        command = [lines[i][2:]]
        i += 1
        while open_quotes("\n".join(command)):
            command.append(lines[i])
            i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        result.append(Step(command, output))
    return result


def normal(lines: list[str], database: str = "sqlnet") -> list[str]:
    """Timings and sizes aside, and the test's database named as the README's (sqlnet, the embedded server's)."""
    return [
        SIZE.sub("<size>", STARTED.sub("<started>", TIMING.sub("<t> s", line.rstrip()))).replace(database, "sqlnet")
        for line in lines
    ]


EXPORT = re.compile(r"^export ([A-Z_][A-Z0-9_]*)=(\S*)")
UNSET = re.compile(r"^unset ([A-Z_][A-Z0-9_]*)")


@pytest.fixture(scope="module")
def sklearn_present() -> None:
    pytest.importorskip("sklearn", reason="the digits example reads scikit-learn's copy of the data")


def test_the_worked_examples_run_as_written(
    db_url: str, conn: psycopg.Connection, tmp_path: Path, sklearn_present: None
) -> None:
    try:
        run_examples(SECTIONS, {"SQLNET_DATABASE_URL": db_url}, tmp_path, conn.info.dbname)
        run_python(PYTHON_SECTION, {"SQLNET_DATABASE_URL": db_url}, tmp_path)
    finally:  # the README makes role trainer: roles belong to the whole server, not to the test's database
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'trainer'").fetchone():
            conn.execute("DROP OWNED BY trainer")
            conn.execute("DROP ROLE trainer")


def test_the_from_python_section_runs_as_written(db_url: str, tmp_path: Path) -> None:
    """SQLAlchemy, pandas and scikit-learn, as the README shows them, against a fresh database."""
    run_python(FROM_PYTHON_SECTION, {"SQLNET_DATABASE_URL": db_url}, tmp_path)


def run_python(section: str, extra_env: dict[str, str], tmp_path: Path) -> None:
    """The Python API block runs as written (after the examples before it) and prints what the README shows
    in the text block after it."""
    lines = README.read_text().split("\n")
    start = lines.index(section)
    begin = lines.index("```python", start)
    end = lines.index("```", begin + 1)
    shown = lines.index("```text", end)
    shown_end = lines.index("```", shown + 1)
    env = {**os.environ, **extra_env}
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(lines[begin + 1 : end])],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = done.stdout.rstrip("\n").split("\n")
    if os.environ.get("SQLNET_UPDATE_README"):
        lines[shown + 1 : shown_end] = printed
        README.write_text("\n".join(lines))
        return
    assert normal(printed) == normal(lines[shown + 1 : shown_end]), "\n".join(printed)


@pytest.mark.spark
def test_the_spark_example_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed: python -m pip install -e '.[spark]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java 17 or newer: no java on the PATH and no JAVA_HOME")
    run_examples(SPARK_SECTIONS, {}, tmp_path)


def run_examples(
    sections: tuple[str, ...], extra_env: dict[str, str], tmp_path: Path, database: str = "sqlnet"
) -> None:
    text = README.read_text()
    lines = text.split("\n")
    env = {
        **os.environ,
        **extra_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "COLUMNS": "160",  # rich draws tables this wide when not on a terminal, as the README shows them
    }
    env.pop("PGPASSWORD", None)
    rewritten: dict[tuple[int, int], list[str]] = {}
    mismatches = []
    for start, end in blocks(text, sections):
        new_block: list[str] = []
        for step in steps(lines[start:end]):
            script = "\n".join(step.command)
            exported = EXPORT.match(script)
            if exported:  # the shell's variable lasts for the commands after it, as in a terminal
                env[exported.group(1)] = exported.group(2)
            unset = UNSET.match(script)
            if unset:
                env.pop(unset.group(1), None)
            done = subprocess.run(
                ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
            )
            # a step shown failing must fail (exit 1, with sqlnet's message), every other must succeed; when
            # rewriting, a step may fail with sqlnet's message (the README will then show it)
            shown = step.output
            if os.environ.get("SQLNET_UPDATE_README"):
                shown = done.stderr.split("\n")
            failing = any(line.startswith("error:") for line in shown)
            assert done.returncode == (1 if failing else 0), (script, done.stdout, done.stderr)
            # what a terminal shows: stderr (progress, notes) and stdout, in that order for these commands
            printed = [line.rstrip() for line in (done.stderr + done.stdout).rstrip("\n").split("\n") if done.stderr + done.stdout]
            new_block += ["$ " + step.command[0], *step.command[1:], *(line.replace(database, "sqlnet") for line in printed)]
            if normal(printed, database) != normal(step.output):
                mismatches.append((script, step.output, printed))
        rewritten[(start, end)] = new_block
    if os.environ.get("SQLNET_UPDATE_README"):
        for (start, end), new_block in sorted(rewritten.items(), reverse=True):
            lines[start:end] = new_block
        README.write_text("\n".join(lines))
        return
    assert not mismatches, "\n\n".join(
        f"$ {script}\nREADME shows:\n" + "\n".join(want) + "\nit printed:\n" + "\n".join(got)
        for script, want, got in mismatches
    )
