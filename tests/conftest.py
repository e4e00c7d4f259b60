import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # the test-side writers (idx_writer) import as top-level modules


@pytest.fixture(autouse=True, scope="session")
def _compiled_kernels(_private_cache_directory):
    """Compile the fast engine's kernels once, first, as a first real run would (about two minutes):
    afterwards no test depends on being the one that paid for it, or printed the status line."""
    try:
        import tokenizer_fixtures

        from tokcount.engines import fast_engine_available
        from tokcount.engines.fast import FastCounter
        from tokcount.tokenizer import load_tokenizer_spec
    except ImportError:  # tokenizers 1.x: no fast engine
        return
    if fast_engine_available() is None:
        FastCounter(load_tokenizer_spec(tokenizer_fixtures.bytelevel_bpe())).count(["warm up", ""])


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
