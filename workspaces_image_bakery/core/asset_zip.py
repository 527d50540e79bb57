"""Lambda code as one deterministic zip file, kept in a cache folder.

The CDK stages a folder asset by walking it, testing each path against the exclude globs,
hashing and copying every file into the cloud assembly, in every synth; a zip file it hashes
and copies as one file (the runtime's folder: about 0.1 s a stack, more once tests and type
checks have left caches in it). A zip holds the same bytes whatever machine packs it (sorted
entries, stored uncompressed, dated 1980-01-01, mode 644), so the asset's hash depends only
on what it holds.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

from .cache_folder import write_atomically


def zip_bytes(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A zip of `entries` (name in the archive, content), in the order of their paths' parts
    (as sorted Path objects: "a/b" before "a-b")."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in sorted(entries, key=lambda entry: entry[0].split("/")):
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o100644 << 16
            entry.create_system = 3  # Unix, whatever machine packs it
            # Stored, not deflated: compressed bytes differ between zlib builds.
            entry.compress_type = zipfile.ZIP_STORED
            archive.writestr(entry, content)
    return buffer.getvalue()


def write_zip(entries: Iterable[tuple[str, bytes]], target: Path) -> Path:
    """`target` holding :func:`zip_bytes` of `entries`. Left as it is when it already holds
    those bytes (what a cache file holds is checked, never trusted); otherwise written with
    :func:`~.cache_folder.write_atomically` (another process packing the same entries at the
    same time writes the same bytes)."""
    packed = zip_bytes(entries)
    if target.is_file() and target.read_bytes() == packed:
        return target
    return write_atomically(target, packed)
