"""Loading a Hugging Face tokenizer (a file, a directory, a hub name) into a ``TokenizerSpec``:
its fingerprint, its summary for reports, and the ``Tokenizer`` every engine is checked against.

"Exact" means: the count of a text is ``len(tokenizer.encode(text, add_special_tokens=...).ids)``
for the tokenizer the user named. Two deliberate exceptions, both applied by ``build_tokenizer``
and reported by ``TokenizerSpec.info()``: padding and truncation settings stored in a
tokenizer.json are ignored. Padding would make a batch count differ from the single-text count
(BatchLongest pads every text to the longest in the batch), and truncation would cap counts at
a model's context length, which is not what a training-data count means.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

from . import disk_cache
from .errors import UsageError

TOKENIZER_FILE_NAME = "tokenizer.json"

# A hub download of a large tokenizer.json (Llama 3: ~9 MB) on a slow link must fit in this;
# without any bound a failing lookup is retried by huggingface_hub for ~23 s here, and a
# stalled connection could block forever.
HUB_LOAD_TIMEOUT_SECONDS = 120.0
# How long the reachability probe waits for a TCP connection to the hub before going offline.
HUB_PROBE_TIMEOUT_SECONDS = 3.0

NO_NETWORK_HINT = "pass a local tokenizer.json path (or a directory containing one) instead"

# Candidate end-of-document tokens, most specific first: GPT-2/NeoX/Qwen use <|endoftext|>,
# Llama 3 <|end_of_text|>, Llama 1/2 and most SentencePiece models </s>, Gemma <eos>.
END_OF_DOCUMENT_TOKENS = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")

# huggingface_hub's rule for repo ids ("name" or "namespace/name"); anything else can't be a
# hub name, so it is reported as a missing path without a network attempt.
_HUB_REPO_ID = re.compile(r"^(?:[\w\-.]{1,96}/)?[\w\-.]{1,96}$")


@dataclass(frozen=True)
class TokenizerSpec:
    """Picklable description of a tokenizer, shipped to worker processes."""

    source: str  # what the user passed (path, directory, or hub name)
    json: str  # tokenizer.json text (to_str's on 0.2x): workers rebuild from it, never re-resolving a hub name
    fingerprint: str  # sha256 hex of `json`
    vocab_size: int  # Tokenizer.get_vocab_size(with_added_tokens=True)
    # What info() reads, as JSON, taken from the loaded Tokenizer: parsing Llama-3's whole JSON
    # for it took 0.2 s. Empty: info() parses `json`.
    summary: str = ""

    def info(self) -> dict:
        """JSON-serialisable description for reports."""
        if self.summary:
            config = json.loads(self.summary)
            eod_token, eod_id = config["end_of_document"]
        else:
            config = json.loads(self.json)
            eod_token, eod_id = _end_of_document_from_config(config)
        model = config.get("model") or {}
        special_tokens = [t["content"] for t in config.get("added_tokens") or [] if t.get("special")]
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "vocab_size": self.vocab_size,
            "tokenizers_version": tokenizers.__version__,
            "model_type": model.get("type"),
            "byte_fallback": bool(model.get("byte_fallback", False)),
            "normalizer": _describe_component(config.get("normalizer")),
            "pre_tokenizer": _describe_component(config.get("pre_tokenizer")),
            "post_processor": _describe_component(config.get("post_processor")),
            "decoder": _describe_component(config.get("decoder")),
            "has_post_processor": config.get("post_processor") is not None,
            "special_token_count": len(special_tokens),
            "end_of_document_id": eod_id,
            "end_of_document_token": eod_token,
            # Stored settings that counting ignores (see the module docstring).
            "ignored_truncation": config.get("truncation") is not None,
            "ignored_padding": config.get("padding") is not None,
        }


def _describe_component(component: dict | None) -> str | None:
    """'ByteLevel', or 'Sequence[Prepend, Replace]' for nested sequences."""
    if component is None:
        return None
    kind = component.get("type", "?")
    if kind == "Sequence":
        # Each component family names its list differently in the JSON.
        for key in ("normalizers", "pretokenizers", "processors", "decoders"):
            if key in component:
                inner = ", ".join(_describe_component(c) or "None" for c in component[key])
                return f"Sequence[{inner}]"
    return kind


# tokenizers 1.x is a rewrite: no to_str/from_str, no component objects (normalizers,
# pre_tokenizers, ...), settable padding/truncation. Where the two differ, each is used its own
# way; the count is always len(encode(text).ids) of the installed version.
TOKENIZERS_1 = not hasattr(Tokenizer, "to_str")


def tokenizer_from_json(text: str) -> Tokenizer:
    """A Tokenizer from its tokenizer.json text (1.x reads only files)."""
    from_str = getattr(Tokenizer, "from_str", None)
    if from_str is not None:
        return from_str(text)
    fd, path = tempfile.mkstemp(prefix="tokcount-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return Tokenizer.from_file(path)
    finally:
        os.unlink(path)


# The Tokenizer that load_tokenizer_spec built, handed to the first build_tokenizer of the same
# spec in this process: rebuilding Llama-3's from its JSON costs 0.35 s.
_just_loaded: dict[str, Tokenizer] = {}


def build_tokenizer(spec: TokenizerSpec) -> Tokenizer:
    """A fresh Tokenizer for `spec`, configured for exact counting (no padding, no truncation)."""
    tokenizer = _just_loaded.pop(spec.fingerprint, None) or tokenizer_from_json(spec.json)
    if hasattr(tokenizer, "no_padding"):
        tokenizer.no_padding()
        tokenizer.no_truncation()
    else:  # 1.x: settable properties (read-only in 0.2x's stubs)
        setattr(tokenizer, "padding", None)  # noqa: B010
        setattr(tokenizer, "truncation", None)  # noqa: B010
    return tokenizer


def end_of_document_id(spec: TokenizerSpec) -> int | None:
    """The id preprocessing (e.g. Megatron's preprocess_data.py) likely appends as end of document.

    Informational only: it is guessed from well-known token names, not from a model's config.
    Read from the spec's summary (or its JSON), without building the tokenizer (0.3 s for
    Llama-3).
    """
    return spec.info()["end_of_document_id"]


def _end_of_document(tokenizer: Tokenizer) -> tuple[str | None, int | None]:
    for token in END_OF_DOCUMENT_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token, token_id
    return None, None


def _end_of_document_from_config(config: dict) -> tuple[str | None, int | None]:
    """Same answer as _end_of_document, read from the JSON (building a Tokenizer from a
    large JSON costs ~0.5 s)."""
    added = {t["content"]: t["id"] for t in config.get("added_tokens") or []}
    vocab = (config.get("model") or {}).get("vocab")
    for token in END_OF_DOCUMENT_TOKENS:
        if token in added:
            return token, added[token]
        if isinstance(vocab, dict) and token in vocab:
            return token, vocab[token]
        if isinstance(vocab, list):
            for i, entry in enumerate(vocab):
                if entry and entry[0] == token:
                    return token, i
    return None, None


def _spec_from_tokenizer(source: str, tokenizer: Tokenizer, file_text: str | None = None) -> TokenizerSpec:
    """The spec of a loaded tokenizer. 0.2x: its own serialisation (a file and the hub give one
    fingerprint). 1.x writes only its own new JSON layout, so the file's text is the spec."""
    if TOKENIZERS_1:
        if file_text is None:
            raise AssertionError("tokenizers 1.x: the spec needs the tokenizer.json text")
        serialised = file_text
        config = json.loads(file_text)
        vocab_size = _vocab_size_from_config(config)
        summary = _summary_from_config(config)
    else:
        serialised = tokenizer.to_str()
        vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        summary = _summary(tokenizer)
    spec = TokenizerSpec(
        source=source,
        json=serialised,
        fingerprint=hashlib.sha256(serialised.encode("utf-8")).hexdigest(),
        vocab_size=vocab_size,
        summary=summary,
    )
    _just_loaded.clear()  # one at a time: a tokenizer can take hundreds of MB
    _just_loaded[spec.fingerprint] = tokenizer
    return spec


def _summary(tokenizer: Tokenizer) -> str:
    """The parts of the tokenizer's JSON that info() reports, without the vocabulary and merges."""

    def component(value) -> dict | None:
        return None if value is None else json.loads(value.__getstate__())  # its JSON, as pickling uses

    return json.dumps(
        {
            "model": {
                "type": type(tokenizer.model).__name__,
                "byte_fallback": bool(getattr(tokenizer.model, "byte_fallback", False)),
            },
            "normalizer": component(tokenizer.normalizer),
            "pre_tokenizer": component(tokenizer.pre_tokenizer),
            "post_processor": component(tokenizer.post_processor),
            "decoder": component(tokenizer.decoder),
            "added_tokens": [
                {"content": t.content, "special": t.special} for t in tokenizer.get_added_tokens_decoder().values()
            ],
            "truncation": tokenizer.truncation,
            "padding": tokenizer.padding,
            "end_of_document": list(_end_of_document(tokenizer)),
        }
    )


def _vocab_size_from_config(config: dict) -> int:
    """get_vocab_size(with_added_tokens=True) of 0.2x, from a tokenizer.json: the model's tokens
    and the added ones, each string once."""
    vocab = (config.get("model") or {}).get("vocab") or {}
    tokens = set(vocab) if isinstance(vocab, dict) else {entry[0] for entry in vocab}
    tokens.update(t["content"] for t in config.get("added_tokens") or [])
    return len(tokens)


def _summary_from_config(config: dict) -> str:
    """_summary's fields read from a tokenizer.json (1.x has no component objects)."""
    model = config.get("model") or {}
    return json.dumps(
        {
            "model": {"type": model.get("type"), "byte_fallback": bool(model.get("byte_fallback", False))},
            "normalizer": config.get("normalizer"),
            "pre_tokenizer": config.get("pre_tokenizer"),
            "post_processor": config.get("post_processor"),
            "decoder": config.get("decoder"),
            "added_tokens": [
                {"content": t["content"], "special": bool(t.get("special"))} for t in config.get("added_tokens") or []
            ],
            "truncation": config.get("truncation"),
            "padding": config.get("padding"),
            "end_of_document": list(_end_of_document_from_config(config)),
        }
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _looks_like_path(arg: str) -> bool:
    """True for arguments that can only mean a local file.

    A single '/' is not enough: hub names are "namespace/name". Absolute or explicitly relative
    paths, '~', nested directories and *.json names cannot be hub repo ids.
    """
    if arg.lower().endswith(".json") or arg.startswith(("/", "./", "../", "~")) or arg in (".", ".."):
        return True
    if (os.altsep and os.altsep in arg) or (os.sep != "/" and os.sep in arg):
        return True
    return arg.count("/") > 1


def load_tokenizer_spec(arg: str) -> TokenizerSpec:
    """Resolve a tokenizer.json file, a directory containing one, or a Hugging Face hub name.

    Every failure is a one-line UsageError naming `arg`.
    """
    if not arg.strip():
        raise UsageError("tokenizer argument is empty: pass a tokenizer.json path, a directory or a hub name")
    path = Path(arg).expanduser()
    if path.is_dir():
        candidate = path / TOKENIZER_FILE_NAME
        if not candidate.is_file():
            raise UsageError(f"{arg}: directory has no {TOKENIZER_FILE_NAME}")
        return _load_file(arg, candidate)
    if path.exists():
        return _load_file(arg, path)
    if _looks_like_path(arg):
        raise UsageError(f"{arg}: no such file")
    if not _HUB_REPO_ID.match(arg) or "--" in arg or ".." in arg:
        raise UsageError(f"{arg}: no such file, and not a valid Hugging Face hub name")
    tokenizer, text = _load_from_hub(arg)
    return _spec_from_tokenizer(arg, tokenizer, text)


def _load_file(arg: str, path: Path) -> TokenizerSpec:
    try:
        raw = path.read_bytes()
    except OSError:
        raw = None  # from_file reports it
    cache_path = _spec_cache_path(raw) if raw is not None else None
    spec = _cached_spec(arg, cache_path) if cache_path is not None else None
    if spec is not None:
        return spec
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # the Rust side raises plain Exception for parse errors
        raise UsageError(f"{arg}: not a valid tokenizer JSON file ({_first_line(error)})") from None
    _check_it_encodes(arg, tokenizer)
    spec = _spec_from_tokenizer(arg, tokenizer, raw.decode("utf-8") if raw is not None else None)
    if cache_path is not None:
        facts = {"fingerprint": spec.fingerprint, "vocab_size": spec.vocab_size, "summary": spec.summary}
        header = json.dumps(facts).encode("utf-8") + b"\n"
        disk_cache.store(cache_path, lambda f: f.write(header + spec.json.encode("utf-8")), keep=SPECS_KEPT)
    return spec


# A tokenizer file's spec is cached under the file's own hash: building it (from_file, then
# to_str for the fingerprint) takes 0.45 s for Llama-3, reading it back 0.02 s, and a scan
# waits for it before any worker can start. The entry holds to_str's text, not the file's,
# so a file and the hub give the same tokenizer one fingerprint. Bump SPEC_CACHE_FORMAT when
# TokenizerSpec or _summary change.
SPEC_CACHE_FORMAT = 1
SPECS_KEPT = 8


def _check_it_encodes(arg: str, tokenizer: Tokenizer) -> None:
    """tokenizers 1.x loads some files it cannot encode with (a Split regex it has no engine
    for): say so now, in one line, rather than from every worker in the middle of a scan."""
    try:
        tokenizer.encode("tokcount probe: Hello, world! 123", add_special_tokens=False)
    except Exception as error:  # the Rust side raises ValueError or plain Exception
        raise UsageError(
            f"{arg}: tokenizers {tokenizers.__version__} loads this tokenizer but cannot encode with it "
            f"({_first_line(error)})"
        ) from None


def _spec_cache_path(raw: bytes) -> Path:
    key = f"{hashlib.sha256(raw).hexdigest()}-tokenizers-{tokenizers.__version__}-v{SPEC_CACHE_FORMAT}"
    return disk_cache.cache_directory() / "specs" / f"{key}.spec"


def _cached_spec(source: str, cache_path: Path) -> TokenizerSpec | None:
    """The spec stored at cache_path (a JSON line of facts, then to_str's text), or None when
    it is missing or does not hold together."""
    stored = disk_cache.read_bytes(cache_path)
    if stored is None:
        return None
    header, _, body = stored.partition(b"\n")
    try:
        facts = json.loads(header)
        spec = TokenizerSpec(
            source, body.decode("utf-8"), facts["fingerprint"], int(facts["vocab_size"]), facts["summary"]
        )
    except (ValueError, KeyError, TypeError):
        return None
    if hashlib.sha256(body).hexdigest() != spec.fingerprint:
        return None  # damaged: rebuild it
    return spec


# Runs in a child process so that the whole hub lookup can be killed after a timeout: a Python
# thread stuck in from_pretrained's retries could not be stopped. The probe decides offline mode
# before huggingface_hub is imported, because it reads HF_HUB_OFFLINE only at import time;
# offline, from_pretrained still serves names from the local cache, instantly.
_HUB_CHILD = r"""
import os, socket, sys
from urllib.parse import urlsplit
name, probe_timeout = sys.argv[1], float(sys.argv[2])
def offline():  # huggingface_hub's own reading of the variable
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
if not offline() and not proxied:
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=probe_timeout).close()
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = "1"
from tokenizers import Tokenizer
try:
    tokenizer = Tokenizer.from_pretrained(name)
except Exception as error:
    lines = str(error).strip().splitlines() or [""]
    sys.stdout.write("\t".join(["ERROR", type(error).__name__, "1" if offline() else "0", lines[0]]))
    sys.exit(3)
if hasattr(tokenizer, "to_str"):
    sys.stdout.write(tokenizer.to_str())
else:  # tokenizers 1.x writes only its own layout: hand over the file it read
    from huggingface_hub import hf_hub_download
    with open(hf_hub_download(name, "tokenizer.json"), encoding="utf-8") as f:
        sys.stdout.write(f.read())
"""

_NOT_FOUND_ERRORS = {"RepositoryNotFoundError", "EntryNotFoundError", "RevisionNotFoundError", "GatedRepoError"}


def _load_from_hub(name: str) -> tuple[Tokenizer, str]:
    try:
        child = subprocess.run(
            [sys.executable, "-c", _HUB_CHILD, name, str(HUB_PROBE_TIMEOUT_SECONDS)],
            capture_output=True,
            timeout=HUB_LOAD_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"{name}: loading from the Hugging Face hub timed out after {HUB_LOAD_TIMEOUT_SECONDS:.0f} s; "
            + NO_NETWORK_HINT
        ) from None
    output = child.stdout.decode("utf-8", errors="replace")
    if child.returncode == 0:
        return tokenizer_from_json(output), output
    if not output.startswith("ERROR\t"):
        detail = (child.stderr.decode("utf-8", errors="replace").strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"{name}: loading from the Hugging Face hub failed ({detail}); {NO_NETWORK_HINT}")
    _, error_type, offline, message = (output.split("\t", 3) + [""] * 4)[:4]
    if offline == "1" or error_type == "LocalEntryNotFoundError":
        raise UsageError(
            f"{name}: not a local path nor in the local Hugging Face cache, and the hub could not be reached "
            f"to look the name up (no network, or HF_HUB_OFFLINE is set); {NO_NETWORK_HINT}"
        )
    if error_type in _NOT_FOUND_ERRORS:
        raise UsageError(
            f"{name}: not a local path, and no tokenizer.json for it on the Hugging Face hub; {NO_NETWORK_HINT}"
        )
    raise UsageError(f"{name}: loading from the Hugging Face hub failed ({error_type}: {message}); {NO_NETWORK_HINT}")
