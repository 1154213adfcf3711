from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "contexts.inventory"
    label = "inventory"
    verbose_name = "Inventory"
