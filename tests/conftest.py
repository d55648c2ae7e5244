"""Every suite talks to emulators only: fake AWS credentials, no shared AWS config."""

import os

from tests.support.aws import FAKE_CREDENTIALS

os.environ.update(FAKE_CREDENTIALS)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "KIUSYS_STORE"):
    os.environ.pop(_name, None)
