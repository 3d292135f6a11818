"""Build the simulator's HTTP replies: BCE JSON errors, JSON pages and raw bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass

from exporter.errors import ExporterError

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html"


class RejectedRequestError(ExporterError):
    """Carry a BCE error answer up to the request handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{message} (code={code}, status={status})")


@dataclass(frozen=True)
class Reply:
    """Describe one HTTP answer; `cut_after` and `trickle_seconds` shape broken deliveries."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    cut_after: int | None = None
    trickle_seconds: float = 0.0


def error_reply(
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    """Answer with the BCE error document `{code, message, requestId}`."""
    document = {"code": code, "message": message, "requestId": request_id}
    return Reply(status, encode_json(document), code=code, headers=headers)


def encode_json(document: object) -> bytes:
    """Serialize compactly as UTF-8, keeping non-ASCII image names readable."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
