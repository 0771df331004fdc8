"""The JSON manifest: what was deployed, written after every change.

A manifest that cannot be read is never overwritten: loading raises ManifestError and the
command stops. Where it lives is its Document's business (core/state.py): a local file is
written to a temporary file in the same directory, fsynced, and renamed over the old one, so
a crash leaves either the old or the new version; an S3 object is written conditionally.
A save that would change nothing but the time is not written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskmgmt_deploy.core.models import Record
from taskmgmt_deploy.core.state import Document, Durable, LocalDocument, durable_now
from taskmgmt_deploy.errors import ManifestError
from taskmgmt_deploy.stack.config import StackConfig

SCHEMA_VERSION = 1
_RECORD_FIELDS = ("key", "kind", "region", "name", "step", "state")


def manifest_path(state_dir: Path, env: str) -> Path:
    return state_dir / f"{env}.json"


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Manifest:
    store: Document  # or the Path of a local file
    env: str
    account_id: str | None = None
    config: StackConfig | None = None  # what the last deploy deployed
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    records: dict[str, Record] = field(default_factory=dict)
    _saved: str | None = field(default=None, repr=False, compare=False)  # the content last read or written

    def __post_init__(self) -> None:
        if isinstance(self.store, Path):  # a path names a local file
            self.store = LocalDocument(self.store)

    @property
    def where(self) -> str:
        return self.store.where

    # -- reading -----------------------------------------------------------------
    @classmethod
    def load(cls, store: Document | Path) -> Manifest | None:
        """The manifest `store` holds, None when there is none, ManifestError when damaged."""
        store = LocalDocument(store) if isinstance(store, Path) else store
        text = store.read()
        if text is None:
            return None
        try:
            manifest = cls._from_json(store, json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            raise ManifestError(
                f"manifest {store.where} is damaged ({exc}); it was left untouched. "
                "Rebuild it from the live resources with `taskmgmt status --rebuild`"
            ) from exc
        manifest._saved = manifest._content()
        return manifest

    @classmethod
    def _from_json(cls, store: Document, data: Any) -> Manifest:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unknown schema_version {version!r}, expected {SCHEMA_VERSION}")
        records = [_record_from_json(item) for item in data["resources"]]
        return cls(
            store=store,
            env=str(data["env"]),
            account_id=data.get("account_id"),
            config=_config_from_json(store.where, data.get("config")),
            created_at=str(data.get("created_at") or utc_now()),
            updated_at=str(data.get("updated_at") or utc_now()),
            records={r.key: r for r in records},
        )

    # -- changing ----------------------------------------------------------------
    def put(self, record: Record) -> None:
        self.records[record.key] = record

    def forget(self, key: str) -> None:
        self.records.pop(key, None)

    def get(self, key: str) -> Record | None:
        return self.records.get(key)

    def __iter__(self) -> Iterator[Record]:
        return iter(sorted(self.records.values(), key=lambda r: (r.position, r.key)))

    # -- writing -----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "env": self.env,
            "account_id": self.account_id,
            "config": self.config.to_dict() if self.config else {},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "resources": [_record_to_json(r) for r in self],
        }

    def save(self) -> Durable:
        """Write it if anything but the time changed; the returned callable waits until the
        write is durable (a remote document writes in the background)."""
        lines = _lines(self.to_json())
        content = _comparable(lines)
        if content == self._saved:
            return durable_now  # nothing to write
        self.updated_at = utc_now()
        lines["updated_at"] = _field("updated_at", self.updated_at)
        durable = self.store.write(_join(lines))
        self._saved = content
        return durable

    def flush(self) -> None:
        """Wait until every save is durable."""
        self.store.flush()

    def delete_file(self) -> None:
        self.store.flush()
        self.store.delete()
        self._saved = None

    def text(self) -> str:
        """The manifest as it is written."""
        return _join(_lines(self.to_json()))

    def _content(self) -> str:
        return _comparable(_lines(self.to_json()))


def _lines(data: dict[str, Any]) -> dict[str, str]:
    """The written form by field: one field, and one resource, per line. Readable and diffable,
    and made by json's C encoder (indent= takes the pure-Python one, and the manifest is
    written after every step)."""
    lines = {k: _field(k, v) for k, v in data.items() if k != "resources"}
    resources = ",\n".join(f"    {json.dumps(r)}" for r in data["resources"])
    lines["resources"] = f'  "resources": [\n{resources}\n  ]' if resources else '  "resources": []'
    return lines


def _field(name: str, value: Any) -> str:
    return f"  {json.dumps(name)}: {json.dumps(value)}"


def _join(lines: dict[str, str]) -> str:
    return "{\n" + ",\n".join(lines.values()) + "\n}\n"


def _comparable(lines: dict[str, str]) -> str:
    """Everything but the time (to_json's order is fixed, and a tuple is written as a list)."""
    return _join({k: v for k, v in lines.items() if k != "updated_at"})


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _config_from_json(where: str, data: Any) -> StackConfig | None:
    if not data:
        return None
    try:
        return StackConfig(**data)
    except TypeError as exc:
        raise ManifestError(
            f"manifest {where} has an unreadable config ({exc}); rebuild it with `taskmgmt status --rebuild`"
        ) from None


def _record_to_json(record: Record) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": record.key,
        "kind": record.kind,
        "region": record.region,
        "name": record.name,
        "id": record.id,
        "arn": record.arn,
        "step": record.position,
        "state": record.state,
        "outputs": {k: record.outputs[k] for k in sorted(record.outputs)},
        "depends_on": list(record.depends_on),
    }
    if record.token:
        data["token"] = record.token
    return data


def _record_from_json(item: Any) -> Record:
    if not isinstance(item, dict) or any(f not in item for f in _RECORD_FIELDS):
        raise ValueError(f"resource entry lacks one of {', '.join(_RECORD_FIELDS)}")
    outputs = item.get("outputs") or {}
    if not isinstance(outputs, dict):
        raise ValueError(f"outputs of {item['key']} is not an object")
    return Record(
        key=str(item["key"]),
        kind=str(item["kind"]),
        region=item["region"],
        name=str(item["name"]),
        position=int(item["step"]),
        state=str(item["state"]),
        outputs=outputs,
        depends_on=tuple(item.get("depends_on") or ()),
        token=item.get("token"),
    )
