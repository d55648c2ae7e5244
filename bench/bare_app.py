"""The ceiling: a FastAPI endpoint that does no work, served with the same uvicorn settings."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/noop/{route}")
async def noop(route: str) -> dict[str, int]:
    return {route: 0}
