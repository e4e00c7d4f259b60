import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # the test-side writers (idx_writer) import as top-level modules


@pytest.fixture(autouse=True, scope="session")
def _private_cache_directory(tmp_path_factory):
    """The tests never touch the user's home: tokcount's cache (tokenizer specs, engine plans,
    code-point tables) goes to a directory of this run, for this process and every subprocess.
    numba's own cache stays beside the package, where `cache=True` puts it."""
    directory = tmp_path_factory.mktemp("tokcount-cache")
    saved = os.environ.get("TOKCOUNT_CACHE_DIR")
    os.environ["TOKCOUNT_CACHE_DIR"] = str(directory)
    yield directory
    if saved is None:
        os.environ.pop("TOKCOUNT_CACHE_DIR", None)
    else:
        os.environ["TOKCOUNT_CACHE_DIR"] = saved
