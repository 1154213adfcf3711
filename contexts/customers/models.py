from __future__ import annotations

import uuid

from django.db import models

from contexts.customers.domain import Customer
from orderflow.messaging.models import (
    DeadLetterBase,
    InboxEventBase,
    OutboxEventBase,
    ParkedKeyBase,
    dead_letter_constraints,
    inbox_constraints,
    outbox_indexes,
    parked_key_constraints,
)


class Account(models.Model):
    """A customer's (or staff member's) API identity. Passwords are Django password hashes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200)
    password = models.CharField(max_length=256)
    active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def to_domain(self) -> Customer:
        return Customer(id=self.id, email=self.email, name=self.name, active=self.active, is_staff=self.is_staff)

    def update_from_domain(self, customer: Customer) -> None:
        self.email, self.name, self.active = customer.email, customer.name, customer.active

    @classmethod
    def from_domain(cls, customer: Customer, *, password_hash: str) -> Account:
        return cls(
            id=customer.id,
            email=customer.email,
            name=customer.name,
            active=customer.active,
            is_staff=customer.is_staff,
            password=password_hash,
        )


class OutboxEvent(OutboxEventBase):
    class Meta(OutboxEventBase.Meta):
        indexes = outbox_indexes("customers")


class InboxEvent(InboxEventBase):
    class Meta(InboxEventBase.Meta):
        constraints = inbox_constraints("customers")


class DeadLetter(DeadLetterBase):
    class Meta(DeadLetterBase.Meta):
        constraints = dead_letter_constraints("customers")


class ParkedKey(ParkedKeyBase):
    class Meta(ParkedKeyBase.Meta):
        constraints = parked_key_constraints("customers")
