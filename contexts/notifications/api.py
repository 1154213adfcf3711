"""HTTP entry points of the notifications context."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import IsAuthenticated

from contexts.notifications import selectors
from contexts.notifications.domain import Kind
from orderflow.auth import principal_id


class NotificationOut(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=[k.value for k in Kind])
    order_id = serializers.UUIDField()
    subject = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True, help_text="null until the email was sent")


class NotificationListApi(generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = NotificationOut

    def get_queryset(self):
        return selectors.notifications_of(customer_id=principal_id(self.request))

    @extend_schema(
        summary="Your notifications, newest first",
        examples=[
            OpenApiExample(
                "an order confirmation",
                response_only=True,
                value={
                    "id": "5b0f3c56-8a6e-4d8e-9d3a-0c6f2b9e7a11",
                    "kind": "order_confirmed",
                    "order_id": "9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f",
                    "subject": "Your order 9C1D2E3F is confirmed",
                    "sent_at": "2026-11-21T19:26:03.120000Z",
                },
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
