"""Build the function's zip: lambda/ plus its dependencies, for the Lambda platform.

Dependencies are installed with pip's explicit --platform/--python-version/--only-binary
flags, so that pip picks the runtime's wheels (psycopg's manylinux aarch64 binary for
Lambda's arm64 Python), never those of the machine running the tool; every ELF file in the
result is checked against the target architecture. The zip is deterministic
(sorted entries, fixed timestamps), so its hash only changes when its content does, and
it is cached by the hash of its inputs.
"""

from __future__ import annotations

import base64
import hashlib
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from taskmgmt_deploy.errors import TaskmgmtError

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
ELF_MACHINES = {183: "aarch64", 62: "x86_64"}
SKIPPED_PARTS = {"__pycache__", "bin", "tests"}
SHIPPED_SUFFIXES = {".py", ".html", ".js", ".css"}  # the code, and the board the function serves at GET /


class PackagingError(TaskmgmtError):
    pass


@dataclass(frozen=True)
class Target:
    python: str  # "3.13"
    machine: str  # ELF machine name the native libraries must have
    platforms: tuple[str, ...] = ()  # pip --platform tags; empty means "this machine"

    @property
    def label(self) -> str:
        return f"py{self.python}-{self.machine}" + ("" if self.platforms else "-local")


LAMBDA_ARM64 = Target("3.13", "aarch64", ("manylinux_2_28_aarch64", "manylinux2014_aarch64"))


def this_machine() -> Target:
    return Target(f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine())


@dataclass(frozen=True)
class Package:
    path: Path
    code_sha256: str  # base64, as Lambda reports CodeSha256
    size: int
    inputs: str  # hex hash of what went in


Installer = Callable[[Path, Path, Target], None]


def pip_install(requirements: Path, dest: Path, target: Target) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--only-binary=:all:",
        "--target",
        str(dest),
        "-r",
        str(requirements),
    ]
    if target.platforms:
        command += ["--implementation", "cp", "--python-version", target.python]
        for tag in target.platforms:
            command += ["--platform", tag]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise PackagingError(f"installing the function's dependencies for {target.label} failed: {tail}")


class PackageBuilder:
    def __init__(self, source: Path, cache_dir: Path, target: Target, installer: Installer = pip_install):
        self.source = source
        self.cache_dir = cache_dir
        self.target = target
        self.installer = installer

    @property
    def requirements(self) -> Path:
        return self.source / "requirements.txt"

    def _source_files(self) -> Iterator[tuple[str, Path]]:
        root = self.source / "task_processor"
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(self.source)
            if path.is_file() and path.suffix in SHIPPED_SUFFIXES and not SKIPPED_PARTS & set(relative.parts):
                yield relative.as_posix(), path

    def _deps_hash(self) -> str:
        text = self.requirements.read_bytes() if self.requirements.is_file() else b""
        return hashlib.sha256(self.target.label.encode() + b"\0" + text).hexdigest()

    def inputs_hash(self) -> str:
        digest = hashlib.sha256(self._deps_hash().encode())
        for name, path in self._source_files():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def _zip_path(self, inputs: str) -> Path:
        return self.cache_dir / f"task-processor-{self.target.label}-{inputs[:20]}.zip"

    def cached(self) -> Package | None:
        inputs = self.inputs_hash()
        path = self._zip_path(inputs)
        return _package(path, inputs) if path.is_file() else None

    def build(self) -> Package:
        inputs = self.inputs_hash()
        path = self._zip_path(inputs)
        if not path.is_file():
            deps = self._dependencies()
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.cache_dir, suffix=".zip.tmp", delete=False) as tmp:
                write_zip(Path(tmp.name), self._entries(deps))
            check_architecture(Path(tmp.name), self.target.machine)
            Path(tmp.name).replace(path)
        return _package(path, inputs)

    def _dependencies(self) -> Path | None:
        if not self.requirements.is_file() or not self.requirements.read_text().strip():
            return None
        deps = self.cache_dir / f"deps-{self.target.label}-{self._deps_hash()[:20]}"
        if not deps.is_dir():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".deps-"))
            try:
                self.installer(self.requirements, staging, self.target)
                try:
                    staging.rename(deps)
                except OSError:
                    if not deps.is_dir():  # not a concurrent build of the same dependencies
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return deps

    def _entries(self, deps: Path | None) -> list[tuple[str, Path]]:
        entries = dict(self._source_files())
        if deps is not None:
            for path in deps.rglob("*"):
                relative = path.relative_to(deps)
                if path.is_file() and not SKIPPED_PARTS & set(relative.parts) and path.suffix != ".pyc":
                    entries.setdefault(relative.as_posix(), path)
        return sorted(entries.items())


def write_zip(path: Path, entries: list[tuple[str, Path]]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, source in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = (0o755 if source.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes(), compresslevel=9)


def elf_machine(data: bytes) -> str | None:
    """The architecture of an ELF file's bytes, or None if it is not ELF."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    byte_order = "<" if data[5] == 1 else ">"
    (machine,) = struct.unpack(byte_order + "H", data[18:20])
    return ELF_MACHINES.get(machine, f"e_machine {machine}")


def native_libraries(path: Path) -> dict[str, str]:
    """name -> architecture of every ELF file inside the zip."""
    found: dict[str, str] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                machine = elf_machine(member.read(20))
            if machine:
                found[info.filename] = machine
    return found


def check_architecture(path: Path, machine: str) -> None:
    wrong = {name: arch for name, arch in native_libraries(path).items() if arch != machine}
    if wrong:
        listed = ", ".join(f"{name} ({arch})" for name, arch in sorted(wrong.items())[:5])
        raise PackagingError(f"the package holds native libraries that are not {machine}: {listed}")


def _package(path: Path, inputs: str) -> Package:
    data = path.read_bytes()
    return Package(
        path=path, code_sha256=base64.b64encode(hashlib.sha256(data).digest()).decode(), size=len(data), inputs=inputs
    )
