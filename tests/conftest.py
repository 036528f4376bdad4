"""Fixtures shared by the integration and end-to-end tests."""

import pytest

from tests.integration.localvertex_fixtures import Emulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """A real localvertex on 127.0.0.1 with a fresh data directory and 8 TPU v5e cores of quota; the SDK points at it."""
    running = Emulator(tmp_path_factory.mktemp("localvertex"), tpu_cores=8).start()
    running.init_sdk()
    yield running
    running.stop()
