"""Google Cloud access tokens: a service-account key signs a JWT that the key's token URI exchanges (RFC 7523),
or, without a key, the metadata server of the node (GKE Workload Identity) hands one out.

Tokens are cached per identity until a minute before they expire, so each analysis step does not pay a token
round trip.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from flaggerpy.analysis.providers.errors import AuthError, HttpError, MalformedResponse, ProviderConfigError
from flaggerpy.analysis.providers.http import Response, request
from flaggerpy.outbound import controller_session

SCOPE = "https://www.googleapis.com/auth/monitoring.read"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TOKEN_LIFETIME = 3600
_REFRESH_MARGIN = 60.0
_METADATA_DEFAULT = "metadata.google.internal"


@dataclass(frozen=True)
class ServiceAccountKey:
    """The fields of a service-account JSON key file that the token exchange needs."""

    client_email: str
    private_key: str
    token_uri: str
    private_key_id: str | None = None
    project_id: str | None = None

    def __repr__(self) -> str:
        return f"ServiceAccountKey(client_email={self.client_email!r}, private_key=***)"

    @classmethod
    def from_json(cls, text: str, name: str) -> ServiceAccountKey:
        """Parse the key file; a config error names what is missing (never echoing key material)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProviderConfigError(name, "secret key 'serviceAccountKey' is not a JSON key file") from exc
        if not isinstance(data, dict):
            raise ProviderConfigError(name, "secret key 'serviceAccountKey' is not a JSON object")
        missing = [field for field in ("client_email", "private_key") if not data.get(field)]
        if missing:
            raise ProviderConfigError(name, f"serviceAccountKey has no {', '.join(missing)}")
        return cls(
            client_email=str(data["client_email"]),
            private_key=str(data["private_key"]),
            token_uri=str(data.get("token_uri") or DEFAULT_TOKEN_URI),
            private_key_id=data.get("private_key_id"),
            project_id=data.get("project_id"),
        )


_cache: dict[tuple[str, ...], tuple[str, float]] = {}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_assertion(key: ServiceAccountKey, name: str, now: float | None = None) -> str:
    """A JWT (RS256) asserting the service account, for the key's token URI, with the monitoring read scope."""
    issued = int(now if now is not None else time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    if key.private_key_id:
        header["kid"] = key.private_key_id
    claims = {
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": issued,
        "exp": issued + _TOKEN_LIFETIME,
    }
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    try:
        private = serialization.load_pem_private_key(key.private_key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ProviderConfigError(name, "serviceAccountKey.private_key is not a PEM RSA key") from exc
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ProviderConfigError(name, "serviceAccountKey.private_key is not an RSA key")
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64(signature)


async def service_account_token(
    key: ServiceAccountKey, session: aiohttp.ClientSession, *, name: str, time_limit: float
) -> str:
    """An access token for ``key``, from the cache or a fresh JWT-bearer exchange."""
    cache_key = ("sa", key.client_email, key.private_key_id or "", key.token_uri)
    cached = _cached(cache_key)
    if cached:
        return cached
    form = {"grant_type": GRANT_TYPE, "assertion": signed_assertion(key, name)}
    try:
        resp = await request(session, "POST", key.token_uri, provider=name, time_limit=time_limit, data=form)
    except HttpError as exc:
        if exc.status >= 500:
            raise
        raise AuthError(name, exc.status, f"token exchange for {key.client_email} refused: {exc.message}") from exc
    return _store(cache_key, resp.json(name), name)


def metadata_host() -> str:
    """The metadata server (``GCE_METADATA_HOST`` overrides it, as in Google's own client libraries)."""
    return os.environ.get("GCE_METADATA_HOST") or _METADATA_DEFAULT


async def metadata_token(*, name: str, time_limit: float) -> str:
    """An access token of the node's (or Workload Identity's) default service account."""
    host = metadata_host()
    cache_key = ("metadata", host)
    cached = _cached(cache_key)
    if cached:
        return cached
    resp = await _metadata_get("instance/service-accounts/default/token", name, time_limit, {"scopes": SCOPE})
    return _store(cache_key, resp.json(name), name)


async def metadata_project(*, name: str, time_limit: float) -> str:
    """The project id the node runs in."""
    resp = await _metadata_get("project/project-id", name, time_limit)
    return resp.body.decode().strip()


async def _metadata_get(path: str, name: str, time_limit: float, params: Mapping[str, str] | None = None) -> Response:
    # A session of its own: the tenant sessions refuse the metadata server by design.
    async with controller_session() as session:
        return await request(session, "GET", f"http://{metadata_host()}/computeMetadata/v1/{path}", provider=name,
                             time_limit=time_limit, params=params, headers={"Metadata-Flavor": "Google"})


def _cached(cache_key: tuple[str, ...]) -> str | None:
    entry = _cache.get(cache_key)
    if entry and entry[1] - _REFRESH_MARGIN > time.monotonic():
        return entry[0]
    return None


def _store(cache_key: tuple[str, ...], payload: object, name: str) -> str:
    if not isinstance(payload, Mapping) or not isinstance(payload.get("access_token"), str):
        raise MalformedResponse(name, "token endpoint answered without an access_token")
    expires_in = payload.get("expires_in", _TOKEN_LIFETIME)
    lifetime = float(expires_in) if isinstance(expires_in, int | float) else float(_TOKEN_LIFETIME)
    _cache[cache_key] = (payload["access_token"], time.monotonic() + lifetime)
    return payload["access_token"]


def forget_tokens() -> None:
    """Drop every cached token (tests, and after a credentials rotation is noticed)."""
    _cache.clear()
