from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "coachgate.catalog"
    label = "catalog"
    verbose_name = "Coaches and offers"
