"""The HTTP protocol: problem+json errors, responses, entity tags, OpenAPI, middleware."""
