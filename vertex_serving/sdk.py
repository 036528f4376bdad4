"""Points the aiplatform SDK at Vertex AI, or at whatever `api_endpoint` names (localvertex on loopback)."""

from __future__ import annotations


def init_vertex(project: str, location: str, api_endpoint: str = "", staging_bucket: str = "") -> None:
    """An empty `api_endpoint` is Google's; a plain-http one (localvertex) takes REST with no credentials."""
    from google.cloud import aiplatform

    kwargs = {"project": project, "location": location, "staging_bucket": staging_bucket or None}
    if api_endpoint:
        kwargs |= {"api_endpoint": api_endpoint, "api_transport": "rest"}
        if api_endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()
    aiplatform.init(**kwargs)


def open_endpoint(name: str):
    """The endpoint as the SDK class that can call it: private endpoints predict through their own URI."""
    from google.cloud import aiplatform

    endpoint = aiplatform.Endpoint(name)
    return aiplatform.PrivateEndpoint(name) if endpoint.network else endpoint


def read_text(uri: str, parameter: str) -> str:
    """A local file or a gs:// object as text; any failure is the user's to fix, so it names `parameter`."""
    from pathlib import Path

    from vertex_serving.errors import UserError

    try:
        if uri.startswith("gs://"):
            from google.cloud import storage  # STORAGE_EMULATOR_HOST points it at a local emulator

            bucket, _, name = uri.removeprefix("gs://").partition("/")
            return storage.Client().bucket(bucket).blob(name).download_as_text()
        return Path(uri).read_text()
    except Exception as e:  # a missing file or object, a bad bucket name, no permission
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        raise UserError(
            parameter, uri, f"cannot be read ({reason})", "give a JSON Lines file or gs:// object"
        ) from None
