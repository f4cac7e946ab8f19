"""Unpacking what ``POST /download`` sends: a zip of folders on the API server."""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ._protocol import malformed

_FIELD = "/download body"


def extract_folders(data: bytes, local_dir: Path, *, request_id: str | None) -> list[Path]:
    """Write the zip ``data`` (entries ``<folder>/<file>``, ``?relative=items``) under
    ``local_dir``; the files written.

    An entry that would land outside ``local_dir`` (absolute, ``..``) is refused
    (``MalformedResponseError``); symbolic links are skipped.
    """
    root = local_dir.expanduser().resolve()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise malformed(
            "download_logs", _FIELD, "not a zip archive", request_id=request_id
        ) from exc
    written: list[Path] = []
    with archive:
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            mode = info.external_attr >> 16
            if name.is_absolute() or ".." in name.parts:
                problem = f"refused entry {info.filename!r} (outside the folder)"
                raise malformed("download_logs", _FIELD, problem, request_id=request_id)
            if stat.S_ISLNK(mode):
                continue  # a symbolic link on the server: not recreated here
            target = root.joinpath(*name.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.write_bytes(archive.read(info))
            except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as exc:
                problem = f"cannot read entry {info.filename!r}"
                raise malformed("download_logs", _FIELD, problem, request_id=request_id) from exc
            written.append(target)
    return written
