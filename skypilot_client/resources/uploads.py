"""Local files of a task (``workdir``, ``file_mounts``) uploaded the way the server expects.

The server cannot read the caller's disk, so local sources travel as one zip: ``GET
/upload_v2/blob`` asks whether the server already holds that content (the blob id is a hash
of the zip's entries, so an unchanged workdir is sent once), ``POST /upload_v2`` sends the
zip in chunks, then the launch/exec body carries ``file_mounts_blob_id`` and the task a
``file_mounts_mapping`` from each local path to its place in the zip. Servers older than API
version 41 get the same zip through ``POST /upload`` and no blob id.

Packing (walking, ignore rules, zipping into a temporary file, blob id, chunk plan, path
mapping) touches only the local disk. ``upload_local_files`` is a flow: it yields ``Call``
effects that the sync and async clients run, so both share it.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import inspect
import logging
import math
import os
import stat
import subprocess
import tempfile
import time
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from .._tasks import dump_task, load_task
from ..errors import APITimeoutError, InvalidInputError, MalformedResponseError, SkyPilotError

if TYPE_CHECKING:
    from .._base_client import BaseClient
    from .._effects import Call, Flow, Reply
    from ..models import LaunchRequest, ProgressEvent
    from .clusters import ClusterFlows

logger = logging.getLogger("skypilot_client.uploads")

#: Bytes per chunk: the server's ``UPLOAD_CHUNK_BYTES``; its upload size cap counts chunks
#: at this size, so smaller chunks could be refused as "too large".
CHUNK_BYTES = 95 * 1000 * 1000
#: First server API version with ``/upload_v2`` (``UPLOAD_API_V2_VERSION``).
UPLOAD_V2_API_VERSION = 41
#: Read timeout of one chunk POST: the last chunk makes the server assemble and unzip.
CHUNK_READ_TIMEOUT = 180.0
#: Rounds of re-sending chunks the server still reports missing.
MAX_UPLOAD_ROUNDS = 3

_BLOCK = 1 << 16  # file read size: what one chunk keeps in memory
_WORTH_COMPRESSING = 0.9  # deflate a file when its first block shrinks by 10% or more
_clock = time.monotonic  # the upload deadline's clock (tests move it)
_SYMLINK_ATTR = 0xA1ED0000  # S_IFLNK | 0o755, as upstream marks symlinks in the zip
_EMPTY_DIGEST = hashlib.sha256(b"").digest()

ProgressCallback = Callable[["ProgressEvent"], object]


# ---------------------------------------------------------------------------- local paths


def is_cloud_uri(source: str) -> bool:
    """True for ``s3://``, ``gs://``, ``r2://``, ``https://...``: the server fetches those."""
    return bool(urlsplit(source).netloc)


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


@dataclass(frozen=True)
class LocalFiles:
    """The local sources of a task and the task rewritten to name them absolutely.

    Attributes:
        task: The task mapping with local paths made absolute and, when there is anything
            to upload, ``file_mounts_mapping`` added.
        paths: Absolute local paths to zip, in the order they appear in the task.
    """

    task: dict[str, Any]
    paths: list[str]


def find_local_files(task: dict[str, Any], *, workdir_only: bool = False) -> LocalFiles:
    """Find the local ``workdir`` and ``file_mounts`` sources of a task (no upload).

    Cloud URIs are left untouched. ``workdir_only`` (``exec``) ignores file mounts, as the
    server does. Raises ``InvalidInputError`` for a local path that does not exist.
    """
    task = dict(task)
    paths: list[str] = []
    mapping: dict[str, str] = {}

    def local(source: Any, what: str) -> Any:
        if not isinstance(source, str) or is_cloud_uri(source):
            return source
        path = _absolute(source)
        if not os.path.exists(path):
            raise InvalidInputError(f"{what} {source!r} does not exist (looked for {path})")
        if path not in mapping:
            paths.append(path)
        # Keys are what the task says after rewriting; values are paths inside the zip.
        mapping[path] = path
        return path

    workdir = task.get("workdir")
    if isinstance(workdir, str):
        task["workdir"] = local(workdir, "workdir")
        if not is_cloud_uri(workdir) and not os.path.isdir(task["workdir"]):
            raise InvalidInputError(f"workdir {workdir!r} is a file; give a folder")
    mounts = task.get("file_mounts")
    if not workdir_only and isinstance(mounts, dict):
        rewritten: dict[str, Any] = {}
        for dst, src in mounts.items():
            if isinstance(src, dict) and "source" in src:
                src = dict(src)
                source = src["source"]
                if isinstance(source, list):
                    src["source"] = [local(s, f"file_mounts[{dst!r}] source") for s in source]
                else:
                    src["source"] = local(source, f"file_mounts[{dst!r}] source")
                rewritten[dst] = src
            else:
                rewritten[dst] = local(src, f"file_mounts[{dst!r}]")
        task["file_mounts"] = rewritten
    if mapping:
        task["file_mounts_mapping"] = mapping
    return LocalFiles(task=task, paths=paths)


# ---------------------------------------------------------------------------- ignore rules


def _skyignore_excluded(root: str, skyignore: str) -> set[str]:
    # Upstream's reading of .skyignore: "/x" is anchored at the root, anything else matches
    # at any depth; patterns are globs.
    excluded: set[str] = set()
    with open(skyignore, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            pattern = "." + line if line.startswith("/") else "**/" + line
            for match in glob.glob(os.path.join(glob.escape(root), pattern), recursive=True):
                excluded.add(os.path.relpath(match, root))
    return excluded


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "safe.directory=*", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _gitignore_excluded(root: str) -> set[str]:
    # git itself decides (.gitignore, .git/info/exclude, global excludes), per submodule too.
    try:
        subs = _git("-C", root, "submodule", "foreach", "-q", 'printf "$displaypath\\0"')
    except FileNotFoundError:  # git not installed
        if os.path.exists(os.path.join(root, ".gitignore")):
            logger.warning("%s has a .gitignore but git is not installed: not applied", root)
        return set()
    if subs.returncode != 0:  # not a git repository (a .gitignore alone means nothing)
        return set()
    repos = [""] + [s for s in subs.stdout.split("\0")[:-1] if not s.startswith("../")]
    excluded: set[str] = set()
    for repo in repos:
        listed = _git(
            "-C",
            os.path.join(root, repo),
            "ls-files",
            "-z",
            "--others",
            "--ignore",
            "--exclude-standard",
            "--directory",
        )
        if listed.returncode != 0:
            continue
        for item in listed.stdout.split("\0")[:-1]:
            if repo == "" and item == "./":  # the whole folder is ignored: ignore nothing
                return set()
            excluded.add(os.path.join(repo, item).rstrip("/"))
    return excluded


def excluded_paths(root: str) -> set[str]:
    """Paths under the folder ``root`` left out of an upload, relative to ``root``.

    ``.skyignore`` when the folder has one, else what git ignores (``.gitignore``), as the
    official client does. Files named explicitly in ``file_mounts`` are never excluded.
    """
    skyignore = os.path.join(root, ".skyignore")
    if os.path.exists(skyignore):
        return _skyignore_excluded(root, skyignore)
    return _gitignore_excluded(root)


# ---------------------------------------------------------------------------- packing


@dataclass(frozen=True)
class PackedZip:
    """A zip of local files in a temporary file (the caller deletes it).

    Attributes:
        path: The zip file.
        size: Its size in bytes.
        blob_id: Content hash of its entries (names and contents, not timestamps).
        entries: Number of entries (files, folders, symlinks).
    """

    path: str
    size: int
    blob_id: str
    entries: int


class _Packer:
    """Writes entries into a zip and hashes them as it goes (one read of each file)."""

    def __init__(self, zipf: zipfile.ZipFile) -> None:
        self.zipf = zipf
        self.digests: list[tuple[str, bytes]] = []
        self.names: set[str] = set()

    def seen(self, name: str) -> bool:
        """True when ``name`` is already in the zip (a file mount inside the workdir)."""
        if name in self.names:
            return True
        self.names.add(name)
        return False

    def folder(self, path: str) -> None:
        info = zipfile.ZipInfo.from_file(path, path, strict_timestamps=False)
        if self.seen(info.filename):
            return
        self.zipf.writestr(info, b"")  # ZipFile.mkdir is 3.11+
        self.digests.append((info.filename, _EMPTY_DIGEST))

    def file(self, path: str) -> None:
        info = zipfile.ZipInfo.from_file(path, path, strict_timestamps=False)
        if self.seen(info.filename):
            return
        digest = hashlib.sha256()
        with open(path, "rb") as src:
            block = src.read(_BLOCK)
            # Deflate runs at ~25 MB/s on data it cannot shrink (weights, archives, media):
            # such files are stored; the rest is deflated at level 1, ~4x faster than the
            # default 6 for a slightly larger zip. The blob id does not depend on either.
            if len(zlib.compress(block, 1)) < len(block) * _WORTH_COMPRESSING:
                info.compress_type = zipfile.ZIP_DEFLATED
                info._compresslevel = 1  # type: ignore[attr-defined]  # no public per-entry level
            with self.zipf.open(info, "w") as dst:
                while block:
                    digest.update(block)
                    dst.write(block)
                    block = src.read(_BLOCK)
        self.digests.append((info.filename, digest.digest()))

    def symlink(self, path: str, *, is_dir: bool) -> None:
        target = os.readlink(path)
        # An absolute target means nothing on the server: keep it relative to the link.
        if os.path.isabs(target):
            target = os.path.relpath(target, os.path.dirname(path))
        info = zipfile.ZipInfo(path + "/" if is_dir else path)
        if self.seen(info.filename):
            return
        info.external_attr = _SYMLINK_ATTR
        data = target.encode()
        self.zipf.writestr(info, data)
        self.digests.append((info.filename, hashlib.sha256(data).digest()))

    def blob_id(self) -> str:
        return _blob_id(self.digests)


def _blob_id(digests: list[tuple[str, bytes]]) -> str:
    # Upstream's blob id: sha256 over (name, sha256(content)) in name order; folders hash as
    # empty content. Matching it lets a blob sent by the official client serve us and back.
    total = hashlib.sha256()
    for name, digest in sorted(digests, key=lambda e: e[0]):
        total.update(name.encode("utf-8"))
        total.update(digest)
    return total.hexdigest()


def blob_id_of_zip(path: str) -> str:
    """The blob id of an existing zip, read back entry by entry (as upstream computes it)."""
    digests: list[tuple[str, bytes]] = []
    with zipfile.ZipFile(path) as zipf:
        for info in zipf.infolist():
            is_link = (info.external_attr >> 28) == 0xA
            if info.filename.endswith("/") and not is_link:
                digests.append((info.filename, _EMPTY_DIGEST))
                continue
            digest = hashlib.sha256()
            with zipf.open(info) as f:
                while block := f.read(_BLOCK):
                    digest.update(block)
            digests.append((info.filename, digest.digest()))
    return _blob_id(digests)


def _pack_folder(packer: _Packer, root: str) -> None:
    if os.path.islink(root):
        packer.symlink(root, is_dir=True)
    else:
        packer.folder(root)
    excluded = {os.path.join(root, e) for e in excluded_paths(root)}
    for current, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if os.path.join(current, d) not in excluded]
        dirs.sort()
        for name in dirs:
            path = os.path.join(current, name)
            if os.path.islink(path):  # kept as a link, not followed
                packer.symlink(path, is_dir=True)
            else:
                packer.folder(path)  # empty folders travel too
        for name in sorted(files):
            path = os.path.join(current, name)
            if path in excluded:
                continue
            if os.path.islink(path):
                packer.symlink(path, is_dir=False)
            elif stat.S_ISREG(os.stat(path).st_mode):  # sockets, fifos, devices: skipped
                packer.file(path)


def pack(paths: list[str], *, directory: str | None = None) -> PackedZip:
    """Zip ``paths`` (absolute files and folders) into a temporary file in ``directory``.

    Entries are named by absolute path (the server extracts them under its upload area);
    folders honour ``.skyignore``/``.gitignore``; symlinks are stored as links with a relative
    target; empty folders are kept. Files that do not compress are stored, others deflated.
    Memory stays bounded: files are read in 64 KiB blocks.
    """
    fd, zip_path = tempfile.mkstemp(prefix="skypilot-upload-", suffix=".zip", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zipf:
            packer = _Packer(zipf)
            for path in paths:
                if os.path.isdir(path):
                    _pack_folder(packer, path)
                elif os.path.isfile(path):  # named explicitly: no ignore rule applies
                    packer.file(path)
                else:
                    raise InvalidInputError(f"{path} is neither a file nor a folder")
        return PackedZip(
            path=zip_path,
            size=os.path.getsize(zip_path),
            blob_id=packer.blob_id(),
            entries=len(packer.digests),
        )
    except BaseException:
        os.unlink(zip_path)
        raise


# ---------------------------------------------------------------------------- chunks


@dataclass(frozen=True)
class Chunk:
    """One slice of the zip: ``index`` of ``total``, ``length`` bytes from ``offset``."""

    index: int
    total: int
    offset: int
    length: int


def chunk_plan(size: int, chunk_bytes: int = CHUNK_BYTES) -> list[Chunk]:
    """The chunks a zip of ``size`` bytes is sent in (at least one)."""
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    total = max(1, math.ceil(size / chunk_bytes))
    return [
        Chunk(i, total, i * chunk_bytes, min(chunk_bytes, size - i * chunk_bytes))
        for i in range(total)
    ]


class FileSlice(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A request body read from ``length`` bytes of a file at ``offset``, block by block.

    Reopened on every iteration, so a retried request sends the slice again. ``on_sent``
    is told the bytes sent so far of this attempt.
    """

    def __init__(
        self, path: str, offset: int, length: int, on_sent: Callable[[int], None] | None = None
    ) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self._on_sent = on_sent

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            while sent < self.length:
                block = f.read(min(_BLOCK, self.length - sent))
                if not block:
                    raise OSError(f"{self.path} shrank while it was being uploaded")
                sent += len(block)
                yield block
                if self._on_sent is not None:
                    self._on_sent(sent)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Local 64 KiB reads, as httpx's own multipart files do on an AsyncClient.
        for block in self:
            yield block


# ---------------------------------------------------------------------------- the flow


@dataclass(frozen=True)
class UploadResult:
    """What an upload did (logged by ``upload_local_files``)."""

    blob_id: str | None
    size: int
    chunks_sent: int
    skipped: bool


class _Progress:
    """Upload progress as ``ProgressEvent``s (phase ``uploading``), percent never going back."""

    def __init__(self, callback: ProgressCallback | None, size: int = 0) -> None:
        self.callback = callback
        self.size = size
        self.percent = -1

    def report(self, percent: int, message: str) -> None:
        if self.callback is None or percent <= self.percent:
            return
        from ..models import LaunchPhase, ProgressEvent

        self.percent = percent
        event = ProgressEvent(
            phase=LaunchPhase.UPLOADING, percent=percent, message=message, request_id=""
        )
        try:
            self.callback(event)
        except Exception:  # a broken progress bar must not break the upload
            logger.exception("the upload progress callback raised")

    def sent(self, done: int) -> None:
        if self.size:
            self.report(min(99, done * 100 // self.size), f"uploading {_human(self.size)}")


def _human(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _v1_upload_id() -> str:
    # /upload wants a SkyPilot run timestamp plus 8 hex digits.
    stamp = datetime.now().strftime("sky-%Y-%m-%d-%H-%M-%S-%f")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def upload_local_files(
    client: BaseClient[Any],
    call: Call,
    *,
    workdir_only: bool | None = None,
    on_progress: ProgressCallback | None = None,
    timeout: float | None = None,
) -> Flow[Call]:
    """Upload the local files of the task in ``call``'s body; return the call to send.

    Any flow that submits a task body (``/launch``, ``/exec``, later ``/jobs/launch``)
    calls this first: ``call = yield from upload_local_files(self, call)``. A task without
    local sources comes back unchanged and nothing is sent. Otherwise the sources are zipped
    to a temporary file, uploaded unless the server already has the same content, and the
    returned call carries the rewritten task and ``file_mounts_blob_id``.

    Args:
        client: The client running the flow.
        call: The submission; its JSON body holds ``task`` (YAML text).
        workdir_only: Upload only the workdir (default: True for ``/exec``, as the server
            ignores an exec's file mounts).
        on_progress: Called with ``ProgressEvent``s of phase ``uploading``.
        timeout: Deadline in seconds for the whole upload (default: the launch timeout),
            checked before each chunk; one chunk's retries follow the client's retry policy.

    Raises:
        InvalidInputError: A local source does not exist (before anything is sent).
        SkyPilotError: A local file could not be read or zipped (nothing was sent).
        APITimeoutError: The upload did not finish within ``timeout``.
    """
    if inspect.iscoroutinefunction(on_progress):
        raise InvalidInputError("on_upload_progress must be a plain function, not async")
    body = call.json if isinstance(call.json, dict) else None
    task_text = body.get("task") if body is not None else None
    if body is None or not isinstance(task_text, str):
        return call
    if workdir_only is None:
        workdir_only = call.path == "/exec"
    found = find_local_files(load_task(task_text), workdir_only=workdir_only)
    if not found.paths:
        return call
    seconds = timeout if timeout is not None else client._settings.launch_timeout
    deadline = _clock() + seconds
    yield from client._require_version("upload")
    progress = _Progress(on_progress)
    progress.report(0, f"zipping {len(found.paths)} local path(s)")
    try:
        packed = pack(found.paths)
    except OSError as exc:  # unreadable file, vanished path, full temp disk
        raise SkyPilotError(f"upload: cannot zip the task's local files: {exc}") from exc
    try:
        result = yield from _send(client, packed, progress, deadline, seconds)
    finally:
        os.unlink(packed.path)
    logger.info(
        "upload: %s, %d bytes, %d chunk(s) sent%s",
        result.blob_id or "v1",
        result.size,
        result.chunks_sent,
        " (the server already had it)" if result.skipped else "",
        extra={"operation": "upload", "blob_id": result.blob_id},
    )
    progress.report(100, "files uploaded")
    new_body = {**body, "task": dump_task(found.task)}
    if result.blob_id is not None:
        new_body["file_mounts_blob_id"] = result.blob_id
    return dataclasses.replace(call, json=new_body)


def flow_submit_launch(client: ClusterFlows[Any], request: LaunchRequest) -> Flow[str]:
    """Submit a launch, its task's local files uploaded first; returns the request id."""
    call = yield from upload_local_files(
        client, client._launch_call(request), on_progress=request.on_upload_progress
    )
    request_id: str = yield from client._flow_submit(call)
    return request_id


def _send(
    client: BaseClient[Any], packed: PackedZip, progress: _Progress, deadline: float, seconds: float
) -> Flow[UploadResult]:
    from .._effects import Call

    user_hash = client._identity["SKYPILOT_USER_ID"]
    version = client.server_api_version
    use_v2 = version is not None and version >= UPLOAD_V2_API_VERSION
    if use_v2:
        reply: Reply = yield Call(
            "GET",
            "/upload_v2/blob",
            "upload",
            params={"user_hash": user_hash, "blob_id": packed.blob_id, "size_bytes": packed.size},
            pass_statuses=frozenset({404}),
        )
        if reply.status_code == 404:  # a server without /upload_v2 (a proxy may hide it)
            use_v2 = False
        elif not isinstance(reply.data, dict) or not isinstance(reply.data.get("exists"), bool):
            raise MalformedResponseError(
                "upload: GET /upload_v2/blob answered without a boolean 'exists'"
            )
        elif reply.data["exists"]:
            return UploadResult(packed.blob_id, packed.size, 0, skipped=True)
    endpoint = "/upload_v2" if use_v2 else "/upload"
    upload_id = packed.blob_id if use_v2 else _v1_upload_id()
    progress.size = packed.size
    chunks = chunk_plan(packed.size, CHUNK_BYTES)
    pending = list(chunks)
    sent = 0
    for _round in range(MAX_UPLOAD_ROUNDS):
        completed = False
        missing: set[str] = set()
        for chunk in pending:
            remaining = deadline - _clock()
            if remaining <= 0:
                raise APITimeoutError(
                    f"upload: {_human(packed.size)} not uploaded within {seconds:g}s "
                    f"(chunk {chunk.index + 1} of {chunk.total} not sent); nothing was submitted"
                )

            def on_sent(done: int, base: int = chunk.offset) -> None:
                progress.sent(base + done)

            reply = yield Call(
                "POST",
                endpoint,
                "upload",
                params={
                    "user_hash": user_hash,
                    "upload_id": upload_id,
                    "chunk_index": str(chunk.index),
                    "total_chunks": str(chunk.total),
                },
                content=FileSlice(packed.path, chunk.offset, chunk.length, on_sent),
                read_timeout=min(remaining, CHUNK_READ_TIMEOUT),
            )
            sent += 1
            data = reply.data if isinstance(reply.data, dict) else {}
            status = data.get("status")
            if status == "completed":
                completed = True
                break
            if status != "uploading":
                raise MalformedResponseError(
                    f"upload: POST {endpoint} answered with an unknown status {status!r}"
                )
            missing = {str(m) for m in data.get("missing_chunks") or []}
        if completed:
            return UploadResult(packed.blob_id if use_v2 else None, packed.size, sent, False)
        # Every chunk sent yet the server misses some (e.g. a restart lost them): resend those.
        pending = [c for c in chunks if f"part{c.index}" in missing] or list(chunks)
    raise MalformedResponseError(
        f"upload: the server never reported the upload complete after {MAX_UPLOAD_ROUNDS} "
        "rounds; nothing was submitted"
    )


__all__ = [
    "CHUNK_BYTES",
    "Chunk",
    "FileSlice",
    "LocalFiles",
    "PackedZip",
    "UploadResult",
    "blob_id_of_zip",
    "chunk_plan",
    "excluded_paths",
    "find_local_files",
    "flow_submit_launch",
    "is_cloud_uri",
    "pack",
    "upload_local_files",
]
