"""The emulator's state in SQLite: resources as the SDK's own JSON, so a restart loses nothing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from google.cloud.aiplatform_v1 import types

KINDS = {
    "model": types.Model,
    "endpoint": types.Endpoint,
    "pipeline_job": types.PipelineJob,
    "schedule": types.Schedule,
}


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS resources (name TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS counters (kind TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS servers (
                deployed_model_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, port INTEGER NOT NULL, log TEXT NOT NULL);
            """
        )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def next_id(self, kind: str, start: int = 1) -> str:
        row = self.db.execute("SELECT value FROM counters WHERE kind = ?", (kind,)).fetchone()
        value = (row[0] if row else start - 1) + 1
        self.db.execute("INSERT OR REPLACE INTO counters (kind, value) VALUES (?, ?)", (kind, value))
        return str(value)

    def get(self, kind: str, name: str):
        row = self.db.execute("SELECT body FROM resources WHERE name = ? AND kind = ?", (name, kind)).fetchone()
        return _load(kind, row[0]) if row else None

    def put(self, kind: str, name: str, resource) -> None:
        body = json.dumps(resource) if kind == "operation" else KINDS[kind].to_json(resource)
        self.db.execute("INSERT OR REPLACE INTO resources (name, kind, body) VALUES (?, ?, ?)", (name, kind, body))

    def delete(self, name: str) -> None:
        self.db.execute("DELETE FROM resources WHERE name = ?", (name,))

    def list(self, kind: str, prefix: str) -> list:
        rows = self.db.execute(
            "SELECT body FROM resources WHERE kind = ? AND name LIKE ? ESCAPE '\\' ORDER BY rowid",
            (kind, prefix.replace("%", "\\%").replace("_", "\\_") + "%"),
        )
        return [_load(kind, body) for (body,) in rows]

    # The model-server processes behind deployed models (runtime facts, kept so `status` and restarts find them).

    def set_server(self, deployed_model_id: str, endpoint: str, port: int, log: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO servers (deployed_model_id, endpoint, port, log) VALUES (?, ?, ?, ?)",
            (deployed_model_id, endpoint, port, log),
        )

    def drop_server(self, deployed_model_id: str) -> None:
        self.db.execute("DELETE FROM servers WHERE deployed_model_id = ?", (deployed_model_id,))

    def servers(self) -> dict[str, tuple[str, int, str]]:
        rows = self.db.execute("SELECT deployed_model_id, endpoint, port, log FROM servers")
        return {d: (e, p, log) for d, e, p, log in rows}


def _load(kind: str, body: str):
    return json.loads(body) if kind == "operation" else KINDS[kind].from_json(body)
