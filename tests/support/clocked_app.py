"""The service as `kiusys-app` serves it (`--target tests.support.clocked_app:app`), with its
store on the file clock that KIUSYS_TEST_CLOCK_FILE names (`tests.support.file_clock`)."""

import os
from pathlib import Path

from kiusys_app.config import load_settings
from kiusys_app.main import create_app
from tests.support.file_clock import CLOCK_FILE_SETTING, FileClock

app = create_app(load_settings(), FileClock(Path(os.environ[CLOCK_FILE_SETTING])))
