"""The ceiling: a FastAPI endpoint that does no work. `make bench` serves `app` with uvicorn (the\nseed's server, the goal's baseline) and `same_app` with kiusys-app's."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/noop/{route}")
async def noop(route: str) -> dict[str, int]:
    return {route: 0}


same_app = app
