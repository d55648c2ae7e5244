"""`make mutation`: mutmut over the stores, the API layer, the models and the settings, against
the fast app suite (`tests/app`, `-m "not slow"`).

mutmut's own timeout counts CPU seconds, which a mutant that hangs on a lock or a queue never
spends; pytest-timeout ends those instead (10 s a test, where the slowest fast test takes a few,
and with its thread method, which ends the whole process, teardown hangs too), so they count as
killed, not as timed out.

mutmut looks for code only under ./, src/ or source/, so it runs on a copy laid out that way,
`build/mutation/src/kiusys_app` with `tests/` beside it, made afresh each run. The score counts
the survivors listed in tests/support/mutation_equivalent.txt (no observable difference, each
with its reason) as equivalent, not as missed.

Usage: python -m tests.support.mutation [PATTERN ...]
       python -m tests.support.mutation --resume
  PATTERN: what to mutate, relative to kiusys_app/, e.g. `stores/sqlite/store.py` or `api/*`
  (default: the whole scope below)
  --resume: go on with the run in build/mutation that was stopped, instead of starting afresh
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import REPO_ROOT

SCOPE = ("stores/*", "api/*", "models.py", "config.py")
WORKDIR = REPO_ROOT / "build" / "mutation"
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.txt")
MUTMUT_CONFIG = """
[tool.mutmut]
source_paths = ["src"]
only_mutate = {only_mutate}
pytest_add_cli_args = ["-m", "not slow", "-p", "no:cacheprovider", "-q", "--timeout", "10", "--timeout-method", "thread"]
# A mutant that loops is stopped after 4 times its tests' CPU time (mutmut's default, 15, let one
# spin for minutes on this suite).
timeout_multiplier = 4.0
pytest_add_cli_args_test_selection = ["tests/app"]
"""


def stage(patterns: list[str]) -> None:
    """The package as src/kiusys_app, the tests, and a pyproject with pytest's and mutmut's
    settings, in a fresh WORKDIR."""
    shutil.rmtree(WORKDIR, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(
        REPO_ROOT / "kiusys-app" / "kiusys_app", WORKDIR / "src" / "kiusys_app", ignore=ignore
    )
    shutil.copytree(REPO_ROOT / "tests", WORKDIR / "tests", ignore=ignore)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    pytest_settings = pyproject[pyproject.index("[tool.pytest.ini_options]") :]
    only_mutate = json.dumps([f"src/kiusys_app/{pattern}" for pattern in patterns])
    (WORKDIR / "pyproject.toml").write_text(
        pytest_settings + MUTMUT_CONFIG.format(only_mutate=only_mutate)
    )


def equivalent() -> dict[str, str]:
    """Survivors judged equivalent: mutant name -> why no test can tell it apart."""
    listed = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.partition(" ")
            listed[name] = why.strip()
    return listed


def survivors() -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "mutmut", "results"],
        cwd=WORKDIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        line.split(":")[0].strip()
        for line in result.stdout.splitlines()
        if line.strip().endswith(": survived")
    ]


def main() -> None:
    resume = sys.argv[1:] == ["--resume"]
    patterns = [] if resume else sys.argv[1:] or list(SCOPE)
    if not resume:
        stage(patterns)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(os.cpu_count() or 1)],
        cwd=WORKDIR,
        check=True,
    )
    minutes = (time.monotonic() - started) / 60
    subprocess.run([sys.executable, "-m", "mutmut", "export-cicd-stats"], cwd=WORKDIR, check=True)
    stats = json.loads((WORKDIR / "mutants" / "mutmut-cicd-stats.json").read_text())
    survived = survivors()
    judged = equivalent()
    missed = [name for name in survived if name not in judged]
    counted = stats["total"] - (len(survived) - len(missed))
    killed = stats["killed"] + stats["timeout"]
    print(f"\nscope: {', '.join(patterns) or 'as staged'}; {minutes:.0f} min")
    print(
        f"mutants {stats['total']}, killed {stats['killed']}, timed out {stats['timeout']}, "
        f"survived {len(survived)} ({len(survived) - len(missed)} judged equivalent), "
        f"no tests {stats['no_tests']}"
    )
    print(f"score: {killed} of {counted} non-equivalent mutants killed ({killed / counted:.1%})")
    for name in missed:
        print(f"  missed: {name}  (mutmut show {name}, in {WORKDIR.relative_to(REPO_ROOT)})")


if __name__ == "__main__":
    main()
