"""A clock that a test moves for a real `kiusys-app`: the epoch second written in a file, which
every worker reads at each tick (`tests.support.clocked_app` serves the service on it)."""

from pathlib import Path

# The app that `kiusys-app --target` serves on this clock, and the setting that names its file.
TARGET = "tests.support.clocked_app:app"
CLOCK_FILE_SETTING = "KIUSYS_TEST_CLOCK_FILE"


class FileClock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> float:
        return float(self.path.read_text())

    def set(self, now: float) -> None:
        """Move every reader's clock at once: the new time is renamed over the old one."""
        partial = self.path.with_suffix(".partial")
        partial.write_text(repr(now))
        partial.replace(self.path)
