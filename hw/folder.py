"""A design folder: the one owner of reading and writing what ``tconv generate`` makes.

A design folder is data, wherever it came from (docs/design-folders.md):

- reading (:meth:`DesignFolder.load`): ``manifest.json`` must parse and match the
  schema (:mod:`tconv.hw.manifest`); every path it names is relative and resolves
  inside the folder, symlinks followed; the Verilog it names is checked for
  constructs that reach the host (system tasks other than ``$signed`` /
  ``$unsigned``, compiler directives such as `` `include``) before any tool
  compiles it; nothing is evaluated as code;
- writing (:func:`write_design`): tconv replaces only the files it generated
  before (the manifest's ``files``), keeps every other file, refuses a non-empty
  folder it did not generate, and writes its own files all or nothing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .files import current_umask
from .manifest import GENERATOR_PACKAGE, CycleFormula, ManifestError, check_manifest, check_relative_path

__all__ = ["DesignFolder", "FolderError", "write_design", "check_output_folder", "check_verilog_text", "check_waivers_text",
           "MANIFEST", "MAX_MANIFEST_BYTES"]

MANIFEST = "manifest.json"
#: A real manifest is a few kB; a larger one is not a tconv manifest.
MAX_MANIFEST_BYTES = 1 << 20
#: Largest Verilog file a folder may hand to a simulator or synthesis (a 65536-PE design is ~100 MB).
MAX_VERILOG_BYTES = 1 << 30
#: Largest activation table file: 65536 entries (MAX_TABLE_ENTRIES) of up to 20 digits each.
MAX_TABLE_BYTES = 4 << 20
#: System functions the generated Verilog uses; any other ($system, $fopen, $readmemh, ...) reaches
#: the host or the file system and is refused.
ALLOWED_SYSTEM_FUNCTIONS = frozenset({"$signed", "$unsigned"})
#: Compiler directives the generated Verilog may hold (it holds none today).
ALLOWED_DIRECTIVES = frozenset({"`timescale", "`default_nettype"})

# Comments, strings and escaped identifiers (`\anything ` may hold '$' and '`') are removed
# before looking for system tasks and directives.
_VERILOG_SKIP = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|\\\S+", re.S)
_VERILOG_TOKEN = re.compile(r"[$`][A-Za-z_][A-Za-z0-9_$]*")
_WAIVER_LINE = re.compile(r'lint_off -rule [A-Z0-9_]+ -file "[^"\n]*"( -match "[^"\n]*")?')


class FolderError(ValueError):
    """A design folder that cannot be used as it is; the message is one line naming the file and the key."""


def check_verilog_text(text: str, where: str) -> None:
    """Refuse Verilog that reaches outside the simulation: system tasks other than
    ``$signed``/``$unsigned`` and compiler directives other than `` `timescale``."""
    for token in _VERILOG_TOKEN.findall(_VERILOG_SKIP.sub(" ", text)):
        if token not in ALLOWED_SYSTEM_FUNCTIONS and token not in ALLOWED_DIRECTIVES:
            kind = "system task" if token.startswith("$") else "compiler directive"
            raise FolderError(f"{where}: holds the {kind} {token}, which tconv never generates and will not "
                              f"compile (it could reach files or programs outside the design)")


def check_waivers_text(text: str, where: str) -> None:
    """A Verilator configuration file may hold only comments and ``lint_off`` waivers."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("//") or line == "`verilator_config" or _WAIVER_LINE.fullmatch(line):
            continue
        raise FolderError(f"{where}: line {number} is not a lint_off waiver ({line[:60]!r}); a waiver file "
                          f"holds only `verilator_config, comments and lint_off -rule R -file \"F\" lines")


def _read_manifest(folder: Path) -> object:
    path = folder / MANIFEST
    if path.is_symlink() and not _inside(folder, path):
        raise FolderError(f"{path}: a symbolic link out of the design folder")
    if not path.is_file():
        raise FolderError(f"{folder}: no {MANIFEST}; is this a folder written by `tconv generate`?")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise FolderError(f"{path}: {path.stat().st_size} bytes, larger than any tconv manifest "
                          f"({MAX_MANIFEST_BYTES} at most)")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise FolderError(f"{path}: not a JSON text file (byte {err.start} is not UTF-8)") from None
    except json.JSONDecodeError as err:
        raise FolderError(f"{path}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise FolderError(f"{path}: JSON nested too deeply") from None
    except OSError as err:
        raise FolderError(f"{path}: cannot read ({err.strerror})") from None


def _inside(folder: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


@dataclass
class DesignFolder:
    """A checked design folder: the manifest as parsed data and the files it names.

    Attributes
    ----------
    folder : Path
        The folder (absolute).
    manifest : dict
        ``manifest.json`` as written (for keys only humans read).
    parsed : dict
        What :func:`tconv.hw.manifest.check_manifest` returned.
    """

    folder: Path
    manifest: dict
    parsed: dict

    @classmethod
    def load(cls, folder) -> DesignFolder:
        """Read and check ``folder/manifest.json``; raises :class:`FolderError` (a ValueError)."""
        folder = Path(folder).absolute()
        if not folder.is_dir():
            raise FolderError(f"{folder}: no such folder, so no manifest.json; give a folder written by `tconv generate`")
        manifest = _read_manifest(folder)
        try:
            parsed = check_manifest(manifest, str(folder / MANIFEST))
        except ManifestError as err:
            raise FolderError(str(err)) from None
        design = cls(folder, manifest, parsed)
        # Every path the manifest names stays inside the folder, whichever command reads it.
        named = [(v, f"verilog[{i}]") for i, v in enumerate(parsed["verilog"])]
        named += [(v, f"verilog_ecp5[{i}]") for i, v in enumerate(parsed.get("verilog_ecp5", []))]
        named += [(v, f"files[{i}]") for i, v in enumerate(parsed["files"] or [])]
        named += [(parsed[k], k) for k in ("verilator_waivers", "weights", "test_vectors")]
        named += [(parsed["activation_table"], "activation.table")]
        named += [(t, f"stages[{i}].activation.table") for i, t in enumerate(parsed.get("stage_tables", []))]
        named += [(parsed["ecp5_multiplier"], "array.multiplier_cell.ecp5_verilog")]
        for rel, key in named:
            if rel is not None:
                design.path(rel, key, must_exist=False)
        return design

    @classmethod
    def is_generated(cls, folder) -> bool:
        """True when ``folder`` holds a manifest that tconv wrote (its ``generator.package``)."""
        try:
            manifest = _read_manifest(Path(folder))
        except FolderError:
            return False
        return isinstance(manifest, dict) and isinstance(manifest.get("generator"), dict) \
            and manifest["generator"].get("package") == GENERATOR_PACKAGE

    def path(self, relative: str, key: str, *, must_exist: bool = True) -> Path:
        """``relative`` (from the manifest's ``key``) inside the folder, symlinks resolved; refuses escapes."""
        where = f"{self.folder / MANIFEST}: {key}"
        check_relative_path(relative, where)
        path = self.folder / relative
        if not _inside(self.folder, path):
            raise FolderError(f"{where}: {relative!r} leads out of the design folder (through a symbolic link)")
        if must_exist and not path.is_file():
            raise FolderError(f"{where}: {relative!r} is missing (or not a file) in {self.folder}")
        return path

    @property
    def top(self) -> str:
        return self.parsed["top"]

    @functools.cached_property  # the text check reads every file once per load
    def verilog(self) -> list[Path]:
        """The portable Verilog, in order, each checked by :func:`check_verilog_text`."""
        return [self._verilog(v, f"verilog[{i}]") for i, v in enumerate(self.parsed["verilog"])]

    @functools.cached_property  # the text check reads every file once per load
    def verilog_ecp5(self) -> list[Path] | None:
        """The ECP5 source list (``verilog_ecp5``), in order, each checked; None when the manifest has none."""
        rels = self.parsed.get("verilog_ecp5")
        if rels is None:
            return None
        return [self._verilog(v, f"verilog_ecp5[{i}]") for i, v in enumerate(rels)]

    @functools.cached_property  # the text check reads every file once per load
    def ecp5_multiplier(self) -> Path | None:
        """The ECP5 form of the multiplier cell, or None."""
        rel = self.parsed["ecp5_multiplier"]
        return None if rel is None else self._verilog(rel, "array.multiplier_cell.ecp5_verilog")

    @functools.cached_property  # the text check reads every file once per load
    def waivers(self) -> Path | None:
        rel = self.parsed["verilator_waivers"]
        if rel is None:
            return None
        path = self.path(rel, "verilator_waivers")
        check_waivers_text(self._text(path, "verilator_waivers"), str(path))
        return path

    @property
    def weights(self) -> Path:
        return self.path(self.parsed["weights"], "weights")

    @property
    def activation_table(self) -> dict | None:
        """The table of a table activation as stored (`ActivationTable.to_json`), or None.

        Raises :class:`FolderError` when the file is missing, too large or not JSON.
        """
        return self.table(self.parsed["activation_table"], "activation.table")

    def table(self, rel: str | None, key: str) -> dict | None:
        """An activation table file ``rel`` (named by the manifest's ``key``) as stored, or None."""
        if rel is None:
            return None
        path = self.path(rel, key)
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise FolderError(f"{path} ({key}): larger than {MAX_TABLE_BYTES} bytes")
        try:
            table = json.loads(path.read_bytes())
        except (UnicodeDecodeError, ValueError) as err:
            raise FolderError(f"{path} ({key}): not a JSON file ({err})") from None
        if not isinstance(table, dict):
            raise FolderError(f"{path} ({key}): a JSON object expected")
        return table

    @property
    def test_vectors(self) -> Path | None:
        """The shipped test vectors, or None when the manifest names none or the file is gone."""
        rel = self.parsed["test_vectors"]
        if rel is None:
            return None
        path = self.path(rel, "test_vectors", must_exist=False)
        return path if path.is_file() else None

    @property
    def cycle_formula(self) -> CycleFormula | None:
        return self.parsed["cycle_formula"]

    def work_dir(self, name: str) -> Path:
        """A folder of tconv's own inside the design (``synth``): created if missing, refused when it is
        a symbolic link or a file, so that nothing is written outside the folder."""
        path = self.folder / name
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise FolderError(f"{path}: tconv writes its work files here, but it is "
                              f"{'a symbolic link' if path.is_symlink() else 'not a folder'}; remove it")
        path.mkdir(exist_ok=True)
        return path

    def _verilog(self, rel: str, key: str) -> Path:
        path = self.path(rel, key)
        check_verilog_text(self._text(path, key), str(path))
        return path

    def _text(self, path: Path, key: str) -> str:
        if path.stat().st_size > MAX_VERILOG_BYTES:
            raise FolderError(f"{path} ({key}): larger than {MAX_VERILOG_BYTES} bytes")
        try:
            return path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise FolderError(f"{path} ({key}): not a text file (byte {err.start} is not UTF-8)") from None


# --------------------------------------------------------------------------------------------
# Writing


def _previous_files(out: Path) -> set[str] | None:
    """The files an earlier ``tconv generate`` wrote into ``out`` (None: ``out`` is new or empty).

    Raises :class:`FolderError` for a non-empty folder that tconv did not generate.
    """
    if not out.exists():
        return None
    if not out.is_dir():
        raise FolderError(f"{out} exists and is not a folder; choose another -o")
    if not any(out.iterdir()):
        return None
    if not DesignFolder.is_generated(out):
        what = "holds a manifest.json that tconv did not write" if (out / MANIFEST).exists() \
            else "holds no tconv design (no manifest.json)"
        raise FolderError(f"{out} is not empty and {what}; tconv generate writes only into a new or empty "
                          f"folder or one it generated before: choose another -o")
    manifest = json.loads((out / MANIFEST).read_text())
    where = f"{out / MANIFEST}"
    try:
        if isinstance(manifest.get("files"), list):
            names = [check_relative_path(v, f"{where}: files[{i}]") for i, v in enumerate(manifest["files"])]
        else:  # a manifest of tconv before 0.2 lists no files: its own keys name them
            parsed = check_manifest(manifest, where)
            names = [*parsed["verilog"], *parsed.get("verilog_ecp5", []), parsed["verilator_waivers"],
                     parsed["ecp5_multiplier"],
                     parsed["weights"], parsed["test_vectors"]]
    except ManifestError as err:
        raise FolderError(f"{err}; tconv cannot tell which files it wrote there, so it changes none: "
                          f"choose another -o") from None
    return {n for n in names if n} | {MANIFEST}


def _check_destination(out: Path, rel: str, previous: set[str]) -> None:
    dest = out / rel
    for parent in reversed(dest.relative_to(out).parents[:-1]):  # ecp5/ of ecp5/x.v
        p = out / parent
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            raise FolderError(f"{p} is {'a symbolic link' if p.is_symlink() else 'a file'}, but tconv generate "
                              f"writes {rel} there; move it away")
    if dest.is_dir() and not dest.is_symlink():
        raise FolderError(f"{dest} is a folder, but tconv generate writes a file of that name; move it away")
    if (dest.exists() or dest.is_symlink()) and rel not in previous:
        raise FolderError(f"{dest} exists and was not written by tconv generate; move it away "
                          f"(tconv never replaces a file it did not write)")


def check_output_folder(out_dir) -> set[str] | None:
    """Whether ``tconv generate`` may write into ``out_dir``, checked before any work.

    Returns the files an earlier generate wrote there (None for a new or empty
    folder); raises :class:`FolderError` naming the reason otherwise.
    """
    out = Path(out_dir)
    if out.is_symlink() and not out.is_dir():
        raise FolderError(f"{out} is a symbolic link to {os.readlink(out)!r}, which is not a folder; "
                          f"point it at a folder or choose another -o")
    for parent in out.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise FolderError(f"cannot create the design folder {out}: {parent} is a file, not a folder")
    return _previous_files(out)


def write_design(out_dir, files: dict[str, bytes], manifest: dict) -> None:
    """Write ``files`` ({relative path: bytes}) and ``manifest.json`` into ``out_dir``, all or nothing.

    ``manifest["files"]`` is set to the sorted file names. The folder is created if
    missing (a symbolic link to a folder is written through). Files of an earlier
    generate that are not written again are removed; every other file is kept.
    On any error, or an interrupt, the folder is left exactly as it was.
    """
    out = Path(out_dir)
    previous = check_output_folder(out)
    names = sorted(files)
    for rel in names:
        check_relative_path(rel, "generated file")
    manifest = {**manifest, "files": names}
    blobs = {**files, MANIFEST: (json.dumps(manifest, indent=2) + "\n").encode()}
    for rel in blobs:
        _check_destination(out, rel, previous or {MANIFEST})

    created = not out.exists()
    staging = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tconv-generate-", dir=out))
    except OSError as err:
        raise FolderError(f"cannot create the design folder {out}: {err.strerror or err}") from None
    except BaseException:  # an interrupt between creating the staging folder and using it
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created:
            _rmdir_if_empty(out)
        raise
    mask = current_umask()
    moved_in: list[str] = []
    backed_up: list[str] = []
    made_dirs: list[Path] = []
    try:
        for rel, data in blobs.items():
            path = staging / "new" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o666 & ~mask)  # the permissions an ordinary write would give
        # Commit: set aside what an earlier generate wrote, then move the new files in
        # (the manifest last, so that a reader sees either the old design or the new one).
        for rel in sorted(previous or ()):
            dest = out / rel
            if dest.is_file() or dest.is_symlink():
                (staging / "old" / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(dest, staging / "old" / rel)
                backed_up.append(rel)
        for rel in sorted(blobs, key=lambda r: r == MANIFEST):
            dest = out / rel
            for parent in reversed(dest.relative_to(out).parents[:-1]):
                if not (out / parent).is_dir():
                    (out / parent).mkdir(mode=0o777 & ~mask)
                    made_dirs.append(out / parent)
            os.replace(staging / "new" / rel, dest)
            moved_in.append(rel)
    except BaseException:
        for rel in moved_in:
            (out / rel).unlink(missing_ok=True)
        for rel in backed_up:
            os.replace(staging / "old" / rel, out / rel)
        for d in reversed(made_dirs):
            _rmdir_if_empty(d)
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            _rmdir_if_empty(out)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    # Folders that only held files of the earlier design (ecp5/ under another top name).
    for rel in backed_up:
        if rel not in blobs:
            for parent in Path(rel).parents[:-1]:
                _rmdir_if_empty(out / parent)


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
