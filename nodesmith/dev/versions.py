"""The one place where the local control plane's component versions are pinned.

Fed by nobody: change a version here and everything else follows (cache keys, build modules,
link-time version stamps, the version check on binaries found on PATH).
Consumed by `nodesmith.dev.binaries` (what to look for, what to build and how) and by
`nodesmith.dev.cluster` (which binary plays which role).

Pinned together because they were tried together (shared/notes/local-control-plane.md):
Kubernetes v1.34.2 with its staging modules at v0.34.2, etcd v3.6.5, kwok v0.8.0.
"""

from __future__ import annotations

import dataclasses
import re

KUBERNETES = "v1.34.2"
#: Staging modules (`k8s.io/api`, `k8s.io/client-go`, ...) are tagged v0.<minor>.<patch>.
KUBERNETES_STAGING = "v0.34.2"
ETCD = "v3.6.5"
KWOK = "v0.8.0"

#: Every staging module `k8s.io/kubernetes` requires as v0.0.0; a module that depends on it must
#: `replace` each one with the matching tag or `go mod tidy` cannot resolve anything.
KUBERNETES_STAGING_MODULES = (
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to build one group of binaries with `go` in a throwaway module.

    `module`@`version` is required by the throwaway module, `packages` are built with one
    `go build -o <dir>/`, and each package's last path element names the binary it produces.
    """

    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    replaces: tuple[tuple[str, str], ...] = ()
    ldflags: tuple[str, ...] = ()
    cgo: bool = False

    @property
    def binaries(self) -> tuple[str, ...]:
        return tuple(_binary_name(p) for p in self.packages)


def go_output_name(package: str) -> str:
    """The file name `go build -o dir/` gives `package`'s binary (a /vN suffix is skipped)."""
    parts = package.rstrip("/").split("/")
    if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _binary_name(package: str) -> str:
    # `go.etcd.io/etcd/server/v3` is the etcd server's main package; go calls its binary "server".
    name = go_output_name(package)
    return "etcd" if package.startswith("go.etcd.io/etcd/server/") else name


def _k8s_minor() -> str:
    return KUBERNETES.lstrip("v").split(".")[1]


KUBERNETES_RECIPE = Recipe(
    name="kubernetes",
    module="k8s.io/kubernetes",
    version=KUBERNETES,
    packages=(
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-scheduler",
    ),
    replaces=tuple((f"k8s.io/{m}", f"k8s.io/{m} {KUBERNETES_STAGING}") for m in KUBERNETES_STAGING_MODULES),
    # Without a version stamp the binaries report v0.0.0-master+$Format:%H$, which clients refuse.
    ldflags=(
        f"-X k8s.io/component-base/version.gitVersion={KUBERNETES}",
        "-X k8s.io/component-base/version.gitMajor=1",
        f"-X k8s.io/component-base/version.gitMinor={_k8s_minor()}",
        "-X k8s.io/component-base/version.gitTreeState=clean",
    ),
)

ETCD_RECIPE = Recipe(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    version=ETCD,
    # The etcd server module's own main package is the `etcd` binary.
    packages=("go.etcd.io/etcd/server/v3",),
)

KWOK_RECIPE = Recipe(
    name="kwok",
    module="sigs.k8s.io/kwok",
    version=KWOK,
    packages=("sigs.k8s.io/kwok/cmd/kwok",),
    ldflags=(f"-X sigs.k8s.io/kwok/pkg/consts.Version={KWOK}",),
)

#: The real node's binaries (`nodesmith dev up --real-node`): same module, version and stamps as the
#: control plane, built in their own throwaway module so the control-plane cache is never rebuilt.
KUBERNETES_NODE_RECIPE = dataclasses.replace(
    KUBERNETES_RECIPE,
    name="kubernetes-node",
    packages=("k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-proxy"),
)

RECIPES = (ETCD_RECIPE, KWOK_RECIPE, KUBERNETES_RECIPE, KUBERNETES_NODE_RECIPE)

#: component name -> pinned version, in start order.
COMPONENTS: dict[str, str] = {
    "etcd": ETCD,
    "kube-apiserver": KUBERNETES,
    "kube-controller-manager": KUBERNETES,
    "kube-scheduler": KUBERNETES,
    "kwok": KWOK,
}

#: The real node's components (not started by a plain `dev up`).
NODE_COMPONENTS: dict[str, str] = {"kubelet": KUBERNETES, "kube-proxy": KUBERNETES}


def recipe_for(component: str) -> Recipe:
    """The recipe that builds `component`."""
    for recipe in RECIPES:
        if component in recipe.binaries:
            return recipe
    raise KeyError(component)
