"""Shared fixtures. Tests that need Docker use the session-wide `sandbox` fixture: one container
for the whole session. There is no skip: without an engine the tests fail and say how to get one."""

import pytest


@pytest.fixture(scope="session")
def sandbox():
    from sandbox import Limits, Sandbox, SandboxError

    box = Sandbox(Limits(workers=2))
    try:
        box.start()
    except SandboxError as exc:
        pytest.fail(f"the Docker sandbox is not available: {exc}")
    yield box
    box.close()
