"""Demo data of the customers context: the staff account (dev settings only)."""

from contexts.customers import services

STAFF_EMAIL = "admin@orderflow.local"
STAFF_PASSWORD = "admin"


def seed_demo() -> str:
    services.staff_ensure(email=STAFF_EMAIL, password=STAFF_PASSWORD, name="OrderFlow staff")
    return f"staff account {STAFF_EMAIL}"
