"""The local stack: Step Functions in moto with Loopline's functions dispatched in-process."""
