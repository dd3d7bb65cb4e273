"""The README's Quick start is what new users run first: keep it exact and in step with CI."""

from tests.conftest import REPO


def quick_start_commands():
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_has_exactly_two_command_lines():
    install_and_run, install_and_test = quick_start_commands()
    assert install_and_run.startswith("python3 -m venv .venv && ")
    assert "pip install -e '.[embedded]'" in install_and_run
    assert install_and_run.endswith("&& atsboost-db init")
    assert install_and_test.endswith("&& pytest")


def test_ci_runs_the_second_line_verbatim():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert quick_start_commands()[1] in ci
