"""nodesmith-provider-template: a minimal, working cloud provider to copy.

``plugin`` holds the hooks nodesmith calls, ``provider`` the async ``CloudProvider`` they return, ``cloud``
an in-memory stand-in for a cloud SDK (replace it with yours), ``catalogue`` the instance types it sells.
"""

from nodesmith_provider_template.provider import PROVIDER_NAME, TemplateProvider

__all__ = ["PROVIDER_NAME", "TemplateProvider"]
