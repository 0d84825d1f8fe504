"""The same greeting served by Flask, to show the WSGI side: `make demo-flask`."""

from __future__ import annotations

import os

from flask import Flask

from example_app.greeting import greet

app = Flask(__name__)


@app.get("/")
def home() -> str:
    return greet("world")


@app.get("/pid")
def process() -> dict[str, int]:
    return {"pid": os.getpid()}
