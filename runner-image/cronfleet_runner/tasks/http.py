"""``http``: call an HTTP endpoint and judge the run by the status code.

Only the standard library is used, so the image stays small. Credentials come
from environment variables (``headersFromEnv``), which the Schedule fills from
Secrets with ``env``/``envFrom``; they never appear in params, logs or
messages.

How statuses count: a status in ``expectedStatus`` (default any 2xx)
succeeds; one in ``retryableStatus`` (default 408, 429 and any 5xx) fails
with exit 1; any other status fails with exit 2. Connection errors and
timeouts are retryable. Addresses on the deny-list (cronfleet_runner.egress)
are refused before connecting, a permanent failure.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.client import HTTPException
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BeforeValidator,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from cronfleet_runner import __version__
from cronfleet_runner.egress import (
    AddressDeniedError,
    DenyListError,
    Guard,
    GuardedHTTPHandler,
    GuardedHTTPSHandler,
    deny_rules_from,
)
from cronfleet_runner.eventlog import EventLog
from cronfleet_runner.summary import clip
from cronfleet_runner.task import (
    Outcome,
    PermanentFailure,
    RetryableFailure,
    RunContext,
    TaskParams,
    task,
)
from cronfleet_runner.tasks.names import EnvVarName

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
MAX_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
EXCERPT_CHARS = 300
# A JSON response this small is returned in the summary's data.
MAX_DATA_JSON_BYTES = 1024
READ_CHUNK_BYTES = 64 * 1024
# Headers that carry credentials are not sent on to another origin when the
# server redirects there, whatever else is followed.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STATUS_CLASS = re.compile(r"^[1-5]xx$")


def _status_selector(value: object) -> int | str:
    """``503``, ``"503"`` or a class such as ``"5xx"``."""
    code: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        code = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if _STATUS_CLASS.fullmatch(text):
            return text
        if text.isdigit():
            code = int(text)
    if code is None or not 100 <= code <= 599:
        raise ValueError(
            'a status must be a code from 100 to 599 (such as 503) or a class from "1xx" to "5xx"'
        )
    return code


StatusSelector = Annotated[
    int | str,
    BeforeValidator(_status_selector),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": _STATUS_CLASS.pattern},
            ]
        }
    ),
]


def _header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")
    return name


def _header_value(value: str) -> str:
    if any(character in value for character in "\r\n\x00"):
        raise ValueError("a header value cannot contain line breaks or NUL characters")
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderValue = Annotated[str, AfterValidator(_header_value)]


def status_matches(status: int, selectors: Sequence[int | str]) -> bool:
    for selector in selectors:
        if isinstance(selector, int):
            if selector == status:
                return True
        elif selector[0] == str(status // 100):
            return True
    return False


def _selectors_text(selectors: Sequence[int | str]) -> str:
    return ", ".join(str(selector) for selector in selectors) or "none"


# Given as defaults, not factories, so that they show in the params' JSON schema;
# pydantic copies mutable defaults for every instance.
DEFAULT_EXPECTED_STATUS: list[int | str] = ["2xx"]
DEFAULT_RETRYABLE_STATUS: list[int | str] = [408, 429, "5xx"]


class HttpParams(TaskParams):
    url: AnyHttpUrl = Field(description="The http:// or https:// URL to call.")
    method: Method = Field(default="GET", description="The HTTP method.")
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict,
        description="Request headers with literal values. Put credentials in headersFromEnv.",
    )
    headers_from_env: dict[HeaderName, EnvVarName] = Field(
        default_factory=dict,
        description="Request headers whose values are read from environment variables, header "
        'name -> variable name, e.g. {"Authorization": "API_AUTHORIZATION"}; fill the '
        "variables from Secrets with the Schedule's env or envFrom.",
    )
    json_body: Any = Field(
        default=None,
        alias="json",
        description="A JSON request body (any JSON value); sets Content-Type: application/json "
        "unless headers set one. Exclusive with body.",
    )
    body: str | None = Field(
        default=None,
        description="A text request body, sent as UTF-8; sets Content-Type: text/plain "
        "unless headers set one. Exclusive with json.",
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        gt=0,
        le=24 * 3600,
        description="The time allowed for the whole exchange, redirects and body included; "
        "a timeout is a retryable failure.",
    )
    expected_status: list[StatusSelector] = Field(
        default=DEFAULT_EXPECTED_STATUS,
        min_length=1,
        description='Statuses that mean success: codes (200) or classes ("2xx").',
    )
    retryable_status: list[StatusSelector] = Field(
        default=DEFAULT_RETRYABLE_STATUS,
        description="Statuses that fail the run with exit 1 (retried later); any status that "
        "is neither expected nor retryable fails with exit 2.",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=0,
        le=MAX_MAX_RESPONSE_BYTES,
        description="The most body bytes read; a larger successful response fails the run "
        "with exit 2.",
    )
    follow_redirects: bool = Field(
        default=True,
        description="Follow 301, 302, 303, 307 and 308 redirects. When false a redirect is "
        "a response like any other, judged by expectedStatus.",
    )
    max_redirects: int = Field(
        default=DEFAULT_MAX_REDIRECTS,
        ge=1,
        le=30,
        description="The most redirects followed; one more fails the run with exit 2.",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, method: object) -> object:
        return method.upper() if isinstance(method, str) else method

    @model_validator(mode="after")
    def _consistent(self) -> HttpParams:
        if "json_body" in self.model_fields_set and self.body is not None:
            raise ValueError(
                "params.json and params.body cannot both be set: send a JSON body or a text body"
            )
        literal = {name.lower() for name in self.headers}
        both = [name for name in self.headers_from_env if name.lower() in literal]
        if both:
            raise ValueError(
                f"the header {both[0]!r} is in both params.headers and params.headersFromEnv; "
                "keep it in one of them"
            )
        return self


class RedirectRefusedError(Exception):
    """A redirect the params do not allow: too many, or to a scheme other than http(s)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port


def shown_url(url: str) -> str:
    """The URL without user:password, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedirectPolicy(urllib.request.HTTPRedirectHandler):
    """Follows redirects within the params' limits and keeps credentials on their origin."""

    # urllib's own loop limits stay above the highest params.maxRedirects, so
    # the redirect count (and its message) is always this class's.
    max_redirections = 100
    max_repeats = 100

    def __init__(
        self,
        params: HttpParams,
        secret_headers: frozenset[str],
        deadline: float,
        log: EventLog,
    ) -> None:
        super().__init__()
        self.params = params
        self.secret_headers = secret_headers | CREDENTIAL_HEADERS
        self.deadline = deadline
        self.log = log
        self.hops = 0

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not self.params.follow_redirects:
            return None
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise RedirectRefusedError(
                f"it was redirected ({code}) to {shown_url(newurl)}, which is not an http or "
                "https URL"
            )
        if self.hops >= self.params.max_redirects:
            raise RedirectRefusedError(
                f"it was redirected more than params.maxRedirects={self.params.max_redirects} "
                f"times; the last redirect ({code}) pointed to {shown_url(newurl)}"
            )
        if time.monotonic() >= self.deadline:
            raise TimeoutError("the deadline passed while following redirects")
        method = req.get_method()
        data = req.data
        # What browsers and curl do: 303 always, and 301/302 after a POST, become
        # a GET without a body; 307 and 308 repeat the request as it was.
        if (code == 303 and method != "HEAD") or (code in (301, 302) and method == "POST"):
            method, data = "GET", None
        forwarded = dict(req.headers)
        if data is None:
            forwarded = {
                name: value
                for name, value in forwarded.items()
                if name.lower() not in ("content-type", "content-length")
            }
        if _origin(newurl) != _origin(req.full_url):
            forwarded = {
                name: value
                for name, value in forwarded.items()
                if name.lower() not in self.secret_headers
            }
        self.hops += 1
        self.log.info("http.redirect", status=code, location=shown_url(newurl), method=method)
        return urllib.request.Request(newurl, data=data, headers=forwarded, method=method)


def request_headers(params: HttpParams, environ: Mapping[str, str]) -> dict[str, str]:
    headers = dict(params.headers)
    for header, variable in params.headers_from_env.items():
        value = environ.get(variable)
        if value is None:
            raise PermanentFailure(
                f"params.headersFromEnv.{header} names the environment variable {variable}, "
                "which is not set in the runner's container; set it in the Schedule's env "
                "(for example from a Secret with secretKeyRef) or envFrom."
            )
        if any(character in value for character in "\r\n\x00"):
            raise PermanentFailure(
                f"params.headersFromEnv.{header}: the environment variable {variable} contains "
                "a line break or NUL character, which cannot go in an HTTP header; check the "
                "Secret's value (a trailing newline is a common cause)."
            )
        headers[header] = value
    present = {name.lower() for name in headers}
    if "user-agent" not in present:
        headers["User-Agent"] = f"cronfleet-runner/{__version__}"
    if "content-type" not in present:
        if "json_body" in params.model_fields_set:
            headers["Content-Type"] = "application/json"
        elif params.body is not None:
            headers["Content-Type"] = "text/plain; charset=utf-8"
    return headers


def request_body(params: HttpParams) -> bytes | None:
    if "json_body" in params.model_fields_set:
        return json.dumps(params.json_body, ensure_ascii=False).encode("utf-8")
    if params.body is not None:
        return params.body.encode("utf-8")
    return None


def read_capped(response: Any, limit: int, deadline: float) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, and whether there was more."""
    chunks: list[bytes] = []
    total = 0
    # read1 returns what has arrived instead of waiting for a full chunk,
    # which keeps the deadline meaningful on a slow, dribbling response.
    read = getattr(response, "read1", None) or response.read
    while total <= limit:
        if time.monotonic() >= deadline:
            raise TimeoutError("the deadline passed while reading the body")
        chunk: bytes = read(min(READ_CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    content = b"".join(chunks)
    return content[:limit], total > limit


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return (
        not kind
        or kind.startswith("text/")
        or kind.endswith(("json", "xml", "javascript", "x-www-form-urlencoded"))
    )


def body_excerpt(content: bytes, content_type: str, charset: str | None) -> str:
    if not content:
        return ""
    if not _is_text(content_type):
        return f"[{len(content)} bytes of {content_type.split(';', 1)[0]}]"
    try:
        text = content.decode(charset or "utf-8", errors="replace")
    except LookupError:
        text = content.decode("utf-8", errors="replace")
    return clip(" ".join(text.split()), EXCERPT_CHARS)


def _json_data(content: bytes, content_type: str) -> Any:
    kind = content_type.split(";", 1)[0].strip().lower()
    if not kind.endswith("json") or not content or len(content) > MAX_DATA_JSON_BYTES:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


def _reason(status: int, given: str | None) -> str:
    if given:
        return given
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


@task("http", params=HttpParams)
def http_task(params: HttpParams, context: RunContext) -> Outcome:
    """Call an HTTP endpoint; the status code decides success, retry or permanent failure."""
    url = str(params.url)
    shown = f"{params.method} {shown_url(url)}"
    headers = request_headers(params, context.environ)
    secret_headers = frozenset(name.lower() for name in params.headers_from_env)
    try:
        guard = Guard(deny_rules_from(context.environ))
    except DenyListError as error:
        # Fail closed: a deny-list that cannot be read protects nothing.
        raise PermanentFailure(f"{shown} was not attempted: {error}.") from error
    started = time.monotonic()
    deadline = started + params.timeout_seconds
    redirects = RedirectPolicy(params, secret_headers, deadline, context.log)
    opener = urllib.request.build_opener(
        redirects, GuardedHTTPHandler(guard), GuardedHTTPSHandler(guard)
    )
    request = urllib.request.Request(
        url, data=request_body(params), headers=headers, method=params.method
    )
    context.log.info(
        "http.request",
        method=params.method,
        url=shown_url(url),
        timeoutSeconds=params.timeout_seconds,
    )

    def timed_out() -> RetryableFailure:
        return RetryableFailure(
            f"{shown} timed out: no complete response within params.timeoutSeconds="
            f"{params.timeout_seconds:g}s."
        )

    try:
        try:
            response: Any = opener.open(request, timeout=params.timeout_seconds)
        except urllib.error.HTTPError as error:
            # Statuses urllib calls errors are responses to judge like any other.
            response = error
        with response:
            status: int = response.status
            response_headers = response.headers
            content_length = response_headers.get("Content-Length", "")
            if content_length.isdigit() and int(content_length) > params.max_response_bytes:
                # Refused unread: the server said how much it would send.
                content, too_big = b"", params.method != "HEAD"
            else:
                content, too_big = read_capped(response, params.max_response_bytes, deadline)
    except RedirectRefusedError as refused:
        raise PermanentFailure(f"{shown} failed: {refused}.") from refused
    except AddressDeniedError as denied:
        context.log.error(
            "http.refused",
            host=denied.host,
            address=denied.address,
            rule=str(denied.rule.network),
            redirects=redirects.hops,
        )
        after = f" after {redirects.hops} redirect(s)" if redirects.hops else ""
        raise PermanentFailure(
            f"{shown} was refused{after}: {denied}.",
            {
                "refusedHost": denied.host,
                "refusedAddress": denied.address,
                "rule": str(denied.rule.network),
            },
        ) from denied
    except TimeoutError as error:
        raise timed_out() from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise timed_out() from error
        raise RetryableFailure(
            f"{shown} failed before a response arrived: {error.reason}."
        ) from error
    except (HTTPException, OSError) as error:
        raise RetryableFailure(
            f"{shown} failed before a complete response arrived: {type(error).__name__}: {error}."
        ) from error

    elapsed = time.monotonic() - started
    final_url = str(getattr(response, "url", "") or url)
    content_type = response_headers.get("Content-Type", "")
    reason = _reason(status, getattr(response, "reason", None))
    context.log.info(
        "http.response",
        status=status,
        bytes=len(content),
        durationSeconds=round(elapsed, 3),
        url=shown_url(final_url),
    )
    data: dict[str, Any] = {"status": status, "bytes": len(content)}
    if redirects.hops:
        data["redirects"] = redirects.hops
        data["url"] = shown_url(final_url)
    answered = f"{shown} returned {status} {reason}".rstrip() + f" after {elapsed:.2f}s"
    excerpt = body_excerpt(content, content_type, response_headers.get_content_charset())
    body_text = f"; body: {excerpt}" if excerpt else ""

    if status_matches(status, params.expected_status):
        if too_big:
            raise PermanentFailure(
                f"{answered}, but its body is larger than params.maxResponseBytes="
                f"{params.max_response_bytes} bytes; raise maxResponseBytes or ask the endpoint "
                "for less.",
                data,
            )
        parsed = _json_data(content, content_type)
        if parsed is not None:
            data["json"] = parsed
        return Outcome(f"{answered}{body_text}", data)
    if status_matches(status, params.retryable_status):
        raise RetryableFailure(
            f"{answered}, a retryable status (params.retryableStatus: "
            f"{_selectors_text(params.retryable_status)}){body_text}",
            data,
        )
    raise PermanentFailure(
        f"{answered}, which is neither expected (params.expectedStatus: "
        f"{_selectors_text(params.expected_status)}) nor retryable (params.retryableStatus: "
        f"{_selectors_text(params.retryable_status)}){body_text}",
        data,
    )
