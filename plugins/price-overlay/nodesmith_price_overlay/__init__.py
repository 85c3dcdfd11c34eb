"""nodesmith-price-overlay: Karpenter's NodeOverlay (price, price adjustment, extra capacity) from a file.

Set ``NODESMITH_PRICE_OVERLAYS`` to a YAML file of ``karpenter.sh/v1alpha1`` NodeOverlay manifests; the
plugin's ``nodesmith_adjust_instance_types`` hook applies them to every NodePool's instance types. Modules:
``overlay`` (parse and validate one overlay), ``apply`` (precedence, conflicts, adjusted instance types),
``source`` (the file, cached by its stat stamp), ``plugin`` (the hook).
"""

from nodesmith_price_overlay.apply import apply_overlays
from nodesmith_price_overlay.overlay import NodeOverlay, OverlayError, parse_overlay
from nodesmith_price_overlay.source import ENV_VAR

__all__ = ["ENV_VAR", "NodeOverlay", "OverlayError", "apply_overlays", "parse_overlay"]
