"""Access control: bearer tokens, JWKS, the guard and request budgets."""
