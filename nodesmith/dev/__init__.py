"""Developer tooling: a real, local Kubernetes control plane on loopback.

`nodesmith dev up|down|env|status|build|wait` (``cli``) and the pytest fixture in
`nodesmith.testing.cluster` both drive `cluster.LocalCluster`, which runs etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok as plain processes. Versions are pinned in
``versions``; ``binaries`` finds, caches or builds them with Go; ``pki`` makes the certificates;
``processes`` starts, checks and stops them; ``data/kwok-stages.yaml`` tells kwok how fake nodes and
their pods behave. Nothing here is imported by the controller itself.

`nodesmith dev up --real-node` adds one real kubelet node (``node``: containerd, runc, a CNI bridge,
kube-proxy; ``nodenet``: its bridge, API server address and egress fence; ``host``: root, packages,
sysctls), and `nodesmith dev image` builds ``deploy/Dockerfile`` without Docker (``images``, ``oci``);
``incluster_demo`` is `make demo-in-cluster`.

Environment:

* ``NODESMITH_BINARIES_DIR`` (colon-separated) and ``KUBEBUILDER_ASSETS`` -- directories to take
  binaries from before anything else; ``NODESMITH_GO`` -- the ``go`` to build with;
* ``NODESMITH_CACHE_DIR`` -- cache root (default ``$XDG_CACHE_HOME/nodesmith`` or
  ``~/.cache/nodesmith``), holding ``bin/<component>-<version>/``, ``build/`` and ``clusters/<name>/``;
* ``NODESMITH_TEST_KUBECONFIG`` -- make the test fixture use an existing cluster instead of starting one.
"""
