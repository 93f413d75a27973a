"""The HTTP face of the task service: the API function's routes (Powertools' REST
resolver), problem+json errors, the OpenAPI document, and the authorizer's policy."""
