#!/usr/bin/env python3
"""Regenerate generated/ from protos/ (messages, gRPC stubs and .pyi type stubs).

    python scripts/generate.py          # rewrite generated/
    python scripts/generate.py --check  # exit 1 if generated/ is stale (CI)

The google/api and google/rpc protos are not committed: they are copied from the installed
googleapis-common-protos wheel into .protodeps/ (ignored by git), where protoc and buf find them.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED = ROOT / "generated"
DEPS = ROOT / ".protodeps"
THIRD_PARTY = ("google/api", "google/rpc")


def copy_third_party() -> None:
    import google.api

    site = Path(google.api.__path__[0]).parent.parent
    for folder in THIRD_PARTY:
        target = DEPS / folder
        target.mkdir(parents=True, exist_ok=True)
        for proto in (site / folder).glob("*.proto"):
            shutil.copyfile(proto, target / proto.name)


def generate(out: Path) -> None:
    import grpc_tools

    wkt = Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTOS}", f"-I{DEPS}", f"-I{wkt}",
        f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
        *sources,
    ]
    subprocess.run(cmd, check=True, cwd=PROTOS)


def same_tree(a: Path, b: Path) -> list[str]:
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    problems = [f"missing: {p}" for p in sorted(files_a - files_b)]
    problems += [f"extra: {p}" for p in sorted(files_b - files_a)]
    problems += [f"differs: {p}" for p in sorted(files_a & files_b) if not filecmp.cmp(a / p, b / p, shallow=False)]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if generated/ is not what the protos produce")
    args = parser.parse_args()
    copy_third_party()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            problems = same_tree(Path(tmp), GENERATED)
        if problems:
            print("generated/ is stale; run: python scripts/generate.py", *problems, sep="\n  ")
            return 1
        print("generated/ is fresh")
        return 0
    if GENERATED.exists():
        shutil.rmtree(GENERATED)
    generate(GENERATED)
    print(f"regenerated {GENERATED.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
