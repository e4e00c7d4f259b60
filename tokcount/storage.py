"""Where input bytes come from: local paths, and URIs of object stores and web servers
(``s3://``, ``gs://``, ``az://``/``abfs://``, ``hf://``, ``http(s)://``) through fsspec.

Formats open, size and list their files here and never ask where they live. Locally this is
``open``, ``os.stat`` and ``glob``, unchanged. Remotely:

- reads are ranged GETs of what the reader asks for (``RemoteFile``): a jsonl byte range, a
  compressed stream in chunks, a Parquet footer and its row groups, a whole ``.idx``; a ``.bin``
  is only sized unless its tokens are verified;
- credentials come from each library's standard chain (environment, profiles, instance
  metadata); ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` point ``s3://`` at an S3-compatible
  server, as for boto3 and the AWS CLI; ``--storage-option KEY=VALUE`` passes anything else;
- the stores' clients retry throttling, 5xx and dropped connections with backoff (botocore's
  standard mode, s3fs's own retries); what still fails is raised as ``RemoteError``, an
  ``OSError`` whose one-line message names the URI and the cause, so the formats' handlers
  turn it into the same ``FileCheckError`` as a local read error;
- a read never returns fewer bytes than asked before the object's end: a body cut short is an
  error (the HTTP client checks Content-Length), never a smaller file.
"""

from __future__ import annotations

import errno
import glob as local_glob
import io
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

# scheme -> (fsspec protocol, the package that implements it, the tokcount extra that installs it)
PROTOCOLS: dict[str, tuple[str, str, str]] = {
    "s3": ("s3", "s3fs", "s3"),
    "s3a": ("s3", "s3fs", "s3"),
    "gs": ("gcs", "gcsfs", "gcs"),
    "gcs": ("gcs", "gcsfs", "gcs"),
    "az": ("abfs", "adlfs", "azure"),
    "abfs": ("abfs", "adlfs", "azure"),
    "abfss": ("abfs", "adlfs", "azure"),
    "hf": ("hf", "huggingface_hub", "hf"),
    "http": ("http", "aiohttp", "http"),
    "https": ("http", "aiohttp", "http"),
}

# Friendlier names for the options people pass most, per protocol (the libraries' own names work too).
OPTION_ALIASES: dict[str, dict[str, str]] = {
    "s3": {"endpoint": "endpoint_url", "region": "client_kwargs.region_name", "anonymous": "anon"},
    "gcs": {"anonymous": "token", "project": "project"},
    "abfs": {"anonymous": "anon", "account": "account_name"},
}

# Bounded retries with exponential backoff for throttling and 5xx (botocore's "standard" mode).
S3_DEFAULTS: dict[str, Any] = {"config_kwargs": {"retries": {"max_attempts": 5, "mode": "standard"}}}

OPTIONS_ENV = "TOKCOUNT_STORAGE_OPTIONS"  # how worker processes receive --storage-option
SEQUENTIAL_READ_BYTES = 8 << 20  # one ranged GET per 8 MB read in order (jsonl, compressed streams)

_options: dict[str, Any] | None = None
_filesystems: dict[str, Any] = {}
_filesystems_pid = 0
_stats: dict[str, RemoteStat] = {}  # what listings and HEADs told this process, by URI
_tails: dict[str, tuple[int, bytes]] = {}  # URI -> (offset, its last bytes), footers read this scan
TAIL_CACHE_BYTES = 1 << 20


class RemoteError(OSError):
    """A remote read that failed after the client's retries: ``strerror`` is the one-line cause."""

    def __init__(self, uri: str, cause: str, code: int = errno.EIO):
        super().__init__(code, cause, uri)


@dataclass(frozen=True)
class RemoteStat:
    size: int
    etag: str | None = None
    generation: str | None = None  # GCS generation, S3 version id, a hub blob id
    mtime: str | None = None


def is_remote(path: str) -> bool:
    return _SCHEME.match(str(path)) is not None


def scheme_of(uri: str) -> str:
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else ""


# --- options ---------------------------------------------------------------------------------


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--storage-option``; true/false and integers are typed."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--storage-option {text!r}: expected KEY=VALUE, e.g. endpoint_url=http://127.0.0.1:9000")
    typed: Any = value
    if value.lower() in ("true", "false"):
        typed = value.lower() == "true"
    elif re.fullmatch(r"-?\d+", value):
        typed = int(value)
    return key.strip(), typed


def new_scan(options: Mapping[str, Any] | None = None) -> None:
    """Start a scan with these storage options (``--storage-option``) for every remote URI, and
    forget what earlier listings said: objects change between scans, and so may the endpoint."""
    global _options
    if _filesystems_pid == os.getpid():
        for fs in _filesystems.values():
            fs.invalidate_cache()
    _filesystems.clear()
    _stats.clear()
    _tails.clear()
    _options = dict(options or {})


def worker_env() -> dict[str, str]:
    """The environment a worker process needs to open remote files as this one does."""
    options = _current_options()
    return {OPTIONS_ENV: json.dumps(options)} if options else {}


def _current_options() -> dict[str, Any]:
    global _options
    if _options is None:
        raw = os.environ.get(OPTIONS_ENV)
        _options = json.loads(raw) if raw else {}
    return _options


def _nested(options: Mapping[str, Any], aliases: Mapping[str, str], base: dict[str, Any]) -> dict[str, Any]:
    """Options with dotted keys (``client_kwargs.region_name``) merged into ``base`` as nested dicts."""
    out = json.loads(json.dumps(base))
    for key, value in options.items():
        target = out
        *parents, leaf = aliases.get(key, key).split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return out


def _filesystem_options(protocol: str) -> dict[str, Any]:
    options = _current_options()
    if protocol != "s3":
        return _nested(options, OPTION_ALIASES.get(protocol, {}), {})
    kwargs = _nested(options, OPTION_ALIASES["s3"], S3_DEFAULTS)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and "endpoint_url" not in kwargs:
        kwargs["endpoint_url"] = endpoint  # as boto3 does; set here so no client version decides it
    if kwargs.get("anon") is True and "skip_instance_cache" not in kwargs:
        kwargs["skip_instance_cache"] = True
    return kwargs


def filesystem(uri: str) -> tuple[Any, str]:
    """(the fsspec filesystem for ``uri``'s scheme, the path within it)."""
    scheme = scheme_of(uri)
    if scheme not in PROTOCOLS:
        known = ", ".join(f"{s}://" for s in ("s3", "gs", "az", "abfs", "hf", "http", "https"))
        raise UsageError(f"{uri}: unsupported scheme {scheme}:// (tokcount reads local paths and {known})")
    protocol, package, extra = PROTOCOLS[scheme]
    global _filesystems_pid
    if _filesystems_pid != os.getpid():
        _filesystems.clear()  # a forked worker: the parent's clients and event loop are not its own
        _filesystems_pid = os.getpid()
    fs = _filesystems.get(protocol)
    if fs is None:
        import fsspec

        try:
            cls = fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError):
            raise UsageError(
                f"{uri}: reading {scheme}:// needs the {package} package: pip install 'tokcount[{extra}]'"
            ) from None
        try:
            fs = cls(**_filesystem_options(protocol))
        except ImportError:
            raise UsageError(
                f"{uri}: reading {scheme}:// needs the {package} package: pip install 'tokcount[{extra}]'"
            ) from None
        except (TypeError, ValueError) as e:
            raise UsageError(f"{uri}: --storage-option not accepted by {package}: {_first_line(e)}") from None
        _filesystems[protocol] = fs
    if protocol == "http":
        return fs, uri
    return fs, fs._strip_protocol(uri)


def _uri(scheme: str, path: str) -> str:
    return path if scheme in ("http", "https") else f"{scheme}://{path}"


# --- errors ------------------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    text = (getattr(e, "strerror", None) or str(e)).strip() or type(e).__name__
    return text.splitlines()[0]


def describe_error(uri: str, e: BaseException) -> RemoteError:
    """A client's exception as one line a user can act on."""
    name = type(e).__name__
    text = _first_line(e)
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "DefaultCredentialsError"):
        return RemoteError(
            uri,
            "no credentials found (set them as the store's client expects: environment variables, a profile "
            "or instance metadata; or --storage-option anon=true for public data)",
            errno.EACCES,
        )
    if isinstance(e, PermissionError):
        return RemoteError(uri, f"access denied ({text})", errno.EACCES)
    if isinstance(e, FileNotFoundError):
        detail = text if text and text != uri and not uri.endswith(text) else "no such bucket or key"
        return RemoteError(uri, f"not found: {detail}", errno.ENOENT)
    if isinstance(e, RemoteError):
        return e
    if name in ("ClientPayloadError", "IncompleteReadError", "IncompleteRead", "ServerDisconnectedError"):
        return RemoteError(uri, f"the connection dropped mid-transfer after the client's retries ({text})")
    if name in ("EndpointConnectionError", "ClientConnectorError", "ConnectTimeoutError", "ConnectionError"):
        return RemoteError(uri, f"cannot connect to the server ({text})")
    if isinstance(e, OSError) and e.errno in (errno.EBUSY, 121):  # 121: EREMOTEIO, the server's 5xx
        return RemoteError(uri, f"the server kept failing after the client's retries ({text})")
    return RemoteError(uri, f"{name}: {text}" if name not in text else text)


@contextmanager
def translated(uri: str) -> Iterator[None]:
    """Run remote calls for ``uri`` with their exceptions turned into ``RemoteError``."""
    try:
        yield
    except UsageError:
        raise
    except Exception as e:
        raise describe_error(uri, e) from None


# --- what a path is ---------------------------------------------------------------------------


def _remember(scheme: str, info: Mapping[str, Any]) -> RemoteStat:
    etag = info.get("ETag") or info.get("etag")
    generation = info.get("generation") or info.get("VersionId") or info.get("version_id") or info.get("blob_id")
    mtime = info.get("LastModified") or info.get("last_modified") or info.get("mtime") or info.get("updated")
    stat = RemoteStat(
        int(info.get("size") or 0),
        str(etag).strip('"') if etag else None,
        str(generation) if generation else None,
        str(mtime) if mtime else None,
    )
    _stats[_uri(scheme, str(info["name"]).rstrip("/"))] = stat
    return stat


def remote_stat(uri: str) -> RemoteStat:
    """Size and version of a remote object (from a listing already made, else one HEAD)."""
    if uri in _stats:
        return _stats[uri]
    fs, path = filesystem(uri)
    with translated(uri):
        info = fs.info(path)
    if info.get("type") == "directory":
        raise RemoteError(uri, "a directory (prefix), not an object", errno.EISDIR)
    stat = _remember(scheme_of(uri), dict(info, name=path))
    _stats[uri] = stat  # as the user spelled it, too
    return stat


def size(path: str) -> int:
    """Bytes in the file (remote: its listed size, or a HEAD)."""
    return remote_stat(path).size if is_remote(path) else os.path.getsize(path)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    try:
        remote_stat(path)
        return True
    except OSError:
        return False


def is_dir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    fs, inner = filesystem(path)
    with translated(path):
        return bool(fs.isdir(inner))


def file_identity(path: str) -> dict[str, Any]:
    """What tells a later run whether a file changed: its size and, for a local file, its
    resolved path and mtime; for a remote object, its ETag / generation where the store has one."""
    if is_remote(path):
        stat = remote_stat(path)
        out: dict[str, Any] = {"path": path, "size": stat.size}
        for key in ("etag", "generation", "mtime"):
            value = getattr(stat, key)
            if value is not None:
                out[key] = value
        return out
    st = os.stat(path)
    return {"path": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def glob(pattern: str) -> list[str]:
    """Files matching ``pattern``, sorted (``**`` matches any depth)."""
    if not is_remote(pattern):
        return sorted(local_glob.glob(pattern, recursive=True))
    scheme = scheme_of(pattern)
    fs, inner = filesystem(pattern)
    with translated(pattern):
        found = fs.glob(inner, detail=True)
    return sorted(_uri(scheme, name) for name, info in found.items() if _listed_file(scheme, name, info))


def walk(directory: str) -> list[str]:
    """Every object under a remote prefix, sorted."""
    scheme = scheme_of(directory)
    fs, inner = filesystem(directory)
    with translated(directory):
        found = fs.find(inner, detail=True)
    return sorted(_uri(scheme, name) for name, info in found.items() if _listed_file(scheme, name, info))


def _listed_file(scheme: str, name: str, info: Mapping[str, Any]) -> bool:
    if info.get("type") == "directory":
        return False
    _remember(scheme, dict(info, name=name))
    return True


# --- reading ----------------------------------------------------------------------------------


class RemoteFile(io.RawIOBase):
    """A remote object read by ranged GETs of what is asked: ``readinto`` fetches exactly the
    bytes requested, clipped at the object's end. A reply longer than asked (a server ignoring
    Range) or a failed transfer raises ``RemoteError``."""

    def __init__(self, uri: str):
        self.uri = uri
        self._fs, self._path = filesystem(uri)
        self._pos = 0
        self._size: int | None = _stats[uri].size if uri in _stats else None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _known_size(self) -> int:
        if self._size is None:
            self._size = remote_stat(self.uri).size
        return self._size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._known_size() + offset
        return self._pos

    def readinto(self, buffer) -> int:
        wanted = len(buffer)
        if wanted == 0 or (self._size is not None and self._pos >= self._size):
            return 0
        end = self._pos + wanted if self._size is None else min(self._pos + wanted, self._size)
        data = self._fetch(self._pos, end)
        if len(data) > end - self._pos:
            raise RemoteError(self.uri, f"the server sent {len(data)} bytes for a {end - self._pos}-byte range")
        if self._size is not None and len(data) < end - self._pos:
            raise RemoteError(
                self.uri,
                f"the server sent {len(data)} of {end - self._pos} bytes at byte {self._pos} "
                f"(the object is {self._size} bytes: it changed, or the connection dropped)",
            )
        if len(data) < end - self._pos:
            self._size = self._pos + len(data)  # a range is clipped at the object's end, and only there
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _fetch(self, start: int, end: int) -> bytes:
        """One ranged GET; a read ending at the object's end (a footer: Parquet's reader asks for
        the last 64 KB each time it opens the file, once per row group) is kept for this scan."""
        tail = _tails.get(self.uri)
        if tail is not None and tail[0] <= start and end == self._size:
            return tail[1][start - tail[0] :]
        with translated(self.uri):
            data = self._fs.cat_file(self._path, start=start, end=end)
        if end == self._size and end - start <= TAIL_CACHE_BYTES:
            _tails[self.uri] = (start, data)
        return data


def open_input(path: str, buffering: int = -1, sequential: bool = True):
    """A binary file for reading. Local: ``open``. Remote: ranged GETs, buffered in 8 MB reads
    for sequential readers; unbuffered for random access (each read one GET: Parquet footers,
    column chunks). Raises OSError (``RemoteError`` remotely)."""
    if not is_remote(path):
        return open(path, "rb", buffering=buffering)
    raw = RemoteFile(path)
    return io.BufferedReader(raw, buffer_size=SEQUENTIAL_READ_BYTES) if sequential else raw


def read_bytes(path: str) -> bytes:
    """The whole file (an ``.idx``, which is small next to its ``.bin``)."""
    if not is_remote(path):
        with open(path, "rb") as f:
            return f.read()
    fs, inner = filesystem(path)
    with translated(path):
        data = fs.cat_file(inner)
    expected = remote_stat(path).size if path in _stats else None
    if expected is not None and len(data) != expected:
        raise RemoteError(path, f"read {len(data)} bytes, but the object is {expected} bytes")
    return data
