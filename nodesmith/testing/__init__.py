"""The test kit: what nodesmith's own tests and a provider's tests build on.

``clock`` (a `FakeClock` tests step instead of sleeping), ``cloudprovider`` (a fake cloud provider offered
through the real plugin manager), ``expectations`` (drive one reconciler one reconcile at a time against a
real API server), ``factories`` and ``manifests`` (objects as the API delivers them), ``conformance`` (the
suite every provider must pass), ``cluster`` and ``e2e`` (a throwaway control plane and the daemon in it), ``dashboard`` (which series the
shipped Grafana dashboard draws, and whether a run moved them).
Import the module you need; this package imports nothing itself.
"""
