"""The coach dashboard (/coach/): one module per section, each with its urlpatterns."""
