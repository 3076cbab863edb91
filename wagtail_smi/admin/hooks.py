"""Orders, reports and dashboard hooks. Placeholder."""
