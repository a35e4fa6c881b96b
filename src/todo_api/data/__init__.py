"""Data access: one module per entity, holding its SQL statements (built once, bound per call).
Services call these functions; nothing outside this package and `migrations/` builds SQL."""
