from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "contexts.customers"
    label = "customers"
    verbose_name = "Customers"
