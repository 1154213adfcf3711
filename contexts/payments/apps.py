from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "contexts.payments"
    label = "payments"
    verbose_name = "Payments"
