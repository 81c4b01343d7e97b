"""Amazon SES v2 SendEmail and SendBulkEmail, as documented: SigV4-signed requests
(AWS4-HMAC-SHA256, credential scope .../{region}/ses/aws4_request, X-Amz-Date; the
signature is recomputed here with the test secret), SendBulkEmail with at most 50
entries and an inline template whose {{tags}} take each entry's replacement data;
errors as JSON with the type in x-amzn-ErrorType. `verified` plays the sandbox: a
request to any other address is refused with 400 MessageRejected "Email address is
not verified"."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from email.utils import parseaddr
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse, Response

from tests.servers.scripted import Delivered, Received, Service, substitute

ACCESS_KEY = "AKIDEXAMPLETEST"
SECRET_KEY = "secret/example/key"
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/ses/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def error(status: int, kind: str, message: str) -> Response:
    return JSONResponse(
        {"message": message},
        status,
        headers={
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"
        },
    )


def _signature(r: Received, date: str, region: str, signed: str) -> str:
    """SigV4 of the request, as AWS computes it."""
    headers = "".join(
        f"{name}:{' '.join(r.headers.get(name, '').split())}\n" for name in signed.split(";")
    )
    payload = r.headers.get("x-amz-content-sha256") or hashlib.sha256(r.body).hexdigest()
    canonical = "\n".join(["POST", quote(r.path, safe="/~"), "", headers, signed, payload])
    scope = f"{date}/{region}/ses/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            r.headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (date, region, "ses", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _auth_problem(r: Received, region: str, token: str | None) -> Response | None:
    match = AUTHORIZATION.match(r.headers.get("authorization", ""))
    amz_date = r.headers.get("x-amz-date", "")
    if not match or not re.fullmatch(r"\d{8}T\d{6}Z", amz_date) or amz_date[:8] != match["date"]:
        return error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires a valid SigV4 signature.",
        )
    if match["key"] != ACCESS_KEY:
        return error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if match["region"] != region or not {"host", "x-amz-date"} <= set(match["signed"].split(";")):
        return error(
            403, "InvalidSignatureException", "Credential should be scoped to a valid region."
        )
    if token is not None and r.headers.get("x-amz-security-token") != token:
        return error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if not hmac.compare_digest(
        match["signature"], _signature(r, match["date"], match["region"], match["signed"])
    ):
        return error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return None


def _check(path: str, body: Any) -> Response | None:
    if not body.get("FromEmailAddress"):
        return error(400, "BadRequestException", "FromEmailAddress is required")
    if path == "/v2/email/outbound-emails":
        simple = body.get("Content", {}).get("Simple")
        if not simple or not body.get("Destination", {}).get("ToAddresses"):
            return error(400, "BadRequestException", "Destination and Content are required")
        return None
    entries = body.get("BulkEmailEntries") or []
    if not 1 <= len(entries) <= 50:
        return error(
            400, "BadRequestException", "BulkEmailEntries must hold between 1 and 50 entries"
        )
    template = body.get("DefaultContent", {}).get("Template", {})
    if not template.get("TemplateContent") and not template.get("TemplateName"):
        return error(400, "BadRequestException", "DefaultContent.Template is required")
    for entry in entries:
        json.loads(
            entry.get("ReplacementEmailContent", {})
            .get("ReplacementTemplate", {})
            .get("ReplacementTemplateData", "{}")
        )
        if any(
            not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", t["Value"])
            for t in entry.get("ReplacementTags", [])
        ):
            return error(
                400,
                "BadRequestException",
                "Tag values may hold only ASCII letters, digits, _ and -",
            )
    return None


def _destinations(path: str, body: Any) -> list[str]:
    entries = [body] if path == "/v2/email/outbound-emails" else body["BulkEmailEntries"]
    return [parseaddr(e["Destination"]["ToAddresses"][0])[1] for e in entries]


def ses(
    region: str = "us-east-1", token: str | None = None, verified: set[str] | None = None
) -> Service:
    async def answer(service: Service, r: Received) -> Response:
        problem = _auth_problem(r, region, token)
        if problem:
            return problem
        if r.method != "POST" or r.path not in (
            "/v2/email/outbound-emails",
            "/v2/email/outbound-bulk-emails",
        ):
            return error(404, "NotFoundException", "Unknown operation")
        body = r.json()
        problem = _check(r.path, body)
        if problem:
            return problem
        unverified = [
            a for a in _destinations(r.path, body) if verified is not None and a not in verified
        ]
        if unverified:
            return error(
                400,
                "MessageRejected",
                "Email address is not verified. The following identities failed the check "
                f"in region {region.upper()}: {', '.join(unverified)}",
            )
        if r.path == "/v2/email/outbound-emails":
            return JSONResponse({"MessageId": f"0100{uuid.uuid4().hex}-000000"})
        results = [
            {"Status": "SUCCESS", "MessageId": f"0100{uuid.uuid4().hex}-000000"}
            for _ in body["BulkEmailEntries"]
        ]
        return JSONResponse({"BulkEmailEntryResults": results})

    def render(r: Received) -> list[Delivered]:
        body = r.json()
        reply = (
            {"Reply-To": ", ".join(body["ReplyToAddresses"])}
            if body.get("ReplyToAddresses")
            else {}
        )
        if r.path == "/v2/email/outbound-emails":
            simple = body["Content"]["Simple"]
            tags = {t["Name"]: t["Value"] for t in body.get("EmailTags", [])}
            return [
                Delivered(
                    body["Destination"]["ToAddresses"][0],
                    simple["Subject"]["Data"],
                    simple["Body"]["Html"]["Data"],
                    simple["Body"]["Text"]["Data"],
                    {**reply, **{h["Name"]: h["Value"] for h in simple.get("Headers", [])}},
                    tags,
                )
            ]
        template = body["DefaultContent"]["Template"]
        content = template["TemplateContent"]
        defaults = json.loads(template.get("TemplateData", "{}"))
        copies = []
        for entry in body["BulkEmailEntries"]:
            data = {
                **defaults,
                **json.loads(
                    entry["ReplacementEmailContent"]["ReplacementTemplate"][
                        "ReplacementTemplateData"
                    ]
                ),
            }

            def fill(text: str, data: dict[str, str] = data) -> str:
                return substitute(text, r"\{\{([A-Za-z0-9_]+)\}\}", data)

            headers = {
                **reply,
                **{h["Name"]: h["Value"] for h in template.get("Headers", [])},
                **{h["Name"]: h["Value"] for h in entry.get("ReplacementHeaders", [])},
            }
            tags = {
                t["Name"]: t["Value"]
                for t in body.get("DefaultEmailTags", []) + entry.get("ReplacementTags", [])
            }
            to = entry["Destination"]["ToAddresses"][0]
            copies.append(
                Delivered(
                    to,
                    fill(content["Subject"]),
                    fill(content["Html"]),
                    fill(content["Text"]),
                    headers,
                    tags,
                )
            )
        return copies

    return Service(answer, render)
