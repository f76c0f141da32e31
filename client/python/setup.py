"""Build hook of the `dreambooth` package: compiles the API's .proto files into `dreambooth.v1`.

The stubs are never committed. At build time `build_py` runs grpc_tools.protoc on the repository's
proto/ folder, so a wheel always matches the protos it was built from. The gRPC service config
(dreambooth/v1/service_config.json, the retry policy of the idempotent calls) is copied beside
the stubs, where the clients load it from. protoc's generated imports
(`from dreambooth.v1 import job_spec_pb2`) resolve because the output lands in the package's own
`dreambooth/v1/` subpackage, which is the proto package's name.

Where the .proto files are read from, first match wins:
1. $DREAMBOOTH_PROTO_DIR (a folder holding dreambooth/v1/*.proto);
2. ../../proto beside this file (building from the repository: `pip install ./client/python`);
3. ./proto beside this file (an sdist: `sdist` copies the protos there).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import List, Optional

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
PROTO_PACKAGE = Path("dreambooth") / "v1"
SERVICE_CONFIG = "service_config.json"


def find_proto_root() -> Path:
    """Returns the folder that holds dreambooth/v1/*.proto, or exits naming the places tried."""
    candidates: List[Path] = []
    env = os.environ.get("DREAMBOOTH_PROTO_DIR")
    if env:
        candidates.append(Path(env))
    candidates += [HERE.parent.parent / "proto", HERE / "proto"]
    for root in candidates:
        if any((root / PROTO_PACKAGE).glob("*.proto")):
            return root.resolve()
    tried = ", ".join(str(c) for c in candidates)
    sys.exit(
        f"dreambooth: no {PROTO_PACKAGE}/*.proto found (tried {tried}); build from the repository "
        "(pip install ./client/python) or set DREAMBOOTH_PROTO_DIR to the repository's proto/"
    )


def generate_stubs(out_dir: Path) -> None:
    """Writes dreambooth/v1/*_pb2.py, *_pb2.pyi, *_pb2_grpc.py and service_config.json under
    out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    root = find_proto_root()
    protos = sorted(str(p.relative_to(root)) for p in (root / PROTO_PACKAGE).glob("*.proto"))
    target = out_dir / PROTO_PACKAGE
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        sys.exit(f"dreambooth: protoc failed on {', '.join(protos)} in {root}")
    config = root / PROTO_PACKAGE / SERVICE_CONFIG
    if not config.is_file():
        sys.exit(f"dreambooth: {config} is missing (the gRPC service config the clients load)")
    shutil.copyfile(config, target / SERVICE_CONFIG)
    (target / "__init__.py").write_text(
        f'"""The dreambooth.v1 API messages and stubs, generated from {", ".join(protos)}."""\n'
    )
    (target / "py.typed").write_text("")


class BuildPyWithStubs(build_py):
    """build_py that also generates the gRPC stubs into the build (or, editable, the source)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            generate_stubs(HERE / "src")
        else:
            generate_stubs(Path(self.build_lib))


class SdistWithProtos(sdist):
    """sdist that carries the .proto files and the service config (as ./proto), so the sdist
    builds on its own."""

    def make_release_tree(self, base_dir: str, files: List[str]) -> None:
        super().make_release_tree(base_dir, files)
        shutil.copytree(find_proto_root() / PROTO_PACKAGE, Path(base_dir) / "proto" / PROTO_PACKAGE)


def _version_of(distribution: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(distribution)
    except Exception:  # not installed in this build environment
        return None


def runtime_requirements() -> List[str]:
    """grpcio and protobuf at least as new as the stubs generated here need, plus the health
    stubs and the google.rpc error details (googleapis-common-protos, grpcio-status).

    Generated code refuses older runtimes (grpcio below the grpcio-tools version; a protobuf
    older than, or of another major version than, the one that generated it).
    """
    tools = _version_of("grpcio-tools")
    protobuf = _version_of("protobuf")
    grpcio = f"grpcio>={tools}" if tools else "grpcio"
    pb = "protobuf"
    if protobuf and re.match(r"^\d+\.\d+", protobuf):
        major = int(protobuf.split(".")[0])
        pb = f"protobuf>={protobuf},<{major + 1}"
    return [
        grpcio,
        pb,
        "grpcio-health-checking",
        "grpcio-status>=1.51",
        "googleapis-common-protos>=1.56",
    ]


setup(
    install_requires=runtime_requirements(),
    cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProtos},
)
