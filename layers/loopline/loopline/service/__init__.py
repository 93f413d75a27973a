"""The task service's domain: API keys and tenants, workflows, tasks, their events and step
runs, status tracking. Each function takes typed arguments (the tenant first), applies the
rules, reads and writes through ``loopline.store`` and raises ``loopline.service.errors``;
the API routes, the Lambda handlers and the CLI call it, never the other way round.
"""
