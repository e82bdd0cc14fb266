"""Who is calling: the API key of the request resolved to a `Principal`, and the tenant checks.

Every route starts with one of these calls, before it reads the body, so that another tenant's
paths answer 404 whatever the request carries.
"""

from __future__ import annotations

from flask import request

from application.use_cases.authenticate import Principal
from entrypoints.http.services import container


def caller() -> Principal:
    """The principal of the API key header; Unauthorized (401) when it is missing or unknown."""
    header = container().settings().api_key_header
    return container().authenticate()(request.headers.get(header))


def caller_for(user_id: str) -> Principal:
    """The caller, allowed to reach `user_id`'s resources: a tenant only its own, the admin all."""
    principal = caller()
    principal.require_access(user_id)
    return principal


def admin_caller() -> Principal:
    """The caller, who must hold the admin key; anyone else is told the resource does not exist."""
    principal = caller()
    principal.require_admin()
    return principal
