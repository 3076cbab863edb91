"""Image library integration (put on sale / take off sale). Placeholder."""
