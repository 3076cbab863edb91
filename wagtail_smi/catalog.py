"""Keeps ``SaleListing`` in step with published pages. Placeholder until the storefront lands."""
