"""Write an OCI image-layout archive from plain directories, one uncompressed layer per directory.

Fed by `nodesmith.dev.images`, which makes the images no registry can give these machines: the pod
sandbox (pause) image and the Dockerfile's two base images. Consumed by ``ctr images import`` and
``buildah pull oci-archive:``; both take the image name from the index's ``io.containerd.image.name``
annotation (``org.opencontainers.image.ref.name`` carries the tag for tools that only read that one).

Every layer gets a history entry: buildah's layer cache refuses a base image whose history lists
fewer layers than it has.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import tempfile

EPOCH = "1970-01-01T00:00:00Z"
_TAR = ("tar", "--numeric-owner", "--sort=name", "--mtime=@0", "--xattrs")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config (what ``docker inspect`` shows under ``Config``)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (DEFAULT_PATH,)
    user: str = ""
    workdir: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"Env": list(self.env)}
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.user:
            out["User"] = self.user
        if self.workdir:
            out["WorkingDir"] = self.workdir
        return out


def _digest_file(path: pathlib.Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def write_archive(
    out: pathlib.Path, name: str, layers: list[pathlib.Path], config: ImageConfig
) -> pathlib.Path:
    """Write ``out`` (an OCI layout tar) holding image `name` built from `layers`; return `out`.

    The archive is written next to `out` and renamed into place, so a crash never leaves half an image.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".oci-", dir=out.parent) as tmp_name:
        tmp = pathlib.Path(tmp_name)
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)

        def put(data: bytes) -> tuple[str, int]:
            digest = hashlib.sha256(data).hexdigest()
            (blobs / digest).write_bytes(data)
            return digest, len(data)

        descriptors: list[dict[str, object]] = []
        diff_ids: list[str] = []
        for number, directory in enumerate(layers):
            tar = tmp / f"layer{number}.tar"
            # Reproducible: sorted names, numeric owners, one fixed mtime.
            subprocess.run(
                [*_TAR, "-C", str(directory), "-cf", str(tar), "."],
                check=True,
            )
            digest = _digest_file(tar)
            size = tar.stat().st_size
            os.rename(tar, blobs / digest)
            descriptors.append(
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{digest}",
                    "size": size,
                }
            )
            diff_ids.append(f"sha256:{digest}")
        image_config = {
            "created": EPOCH,
            "architecture": "amd64",
            "os": "linux",
            "config": config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": EPOCH, "created_by": f"nodesmith dev: layer {d.name}"} for d in layers],
        }
        config_digest, config_size = put(json.dumps(image_config, sort_keys=True).encode())
        manifest: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{config_digest}",
                "size": config_size,
            },
            "layers": descriptors,
        }
        manifest_digest, manifest_size = put(json.dumps(manifest, sort_keys=True).encode())
        index: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{manifest_digest}",
                    "size": manifest_size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
        (tmp / "index.json").write_text(json.dumps(index))
        (tmp / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        partial = out.with_name(out.name + ".partial")
        subprocess.run(
            ["tar", "-C", str(tmp), "-cf", str(partial), "oci-layout", "index.json", "blobs"], check=True
        )
        os.replace(partial, out)
    return out
