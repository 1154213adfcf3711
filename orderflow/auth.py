"""API authentication shared by every context: stateless JWTs issued by the customers context.

Any service verifies the signature and reads the claims (`user_id`, `is_staff`) without touching
the customers database, so contexts stay independent.
"""

from __future__ import annotations

import uuid

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.permissions import BasePermission
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication


class TokenAuthentication(JWTStatelessUserAuthentication):
    """Bearer access tokens; `request.user` is a TokenUser carrying the token's claims."""


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = TokenAuthentication
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Access token from POST /api/auth/token/",
        }


class IsStaff(BasePermission):
    message = "Staff only."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_staff)


def principal_id(request) -> uuid.UUID:
    """The authenticated account's id (the `user_id` claim)."""
    return uuid.UUID(str(request.user.id))


def is_staff(request) -> bool:
    return bool(getattr(request.user, "is_staff", False))
