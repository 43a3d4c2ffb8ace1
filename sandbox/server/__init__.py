"""The stair-stepper server: a deliberately allocation-heavy Starlette app run under uvicorn."""
