"""Reading an API request's parameters the way both SMS APIs define them: the query
string, and for POST the urlencoded or multipart body (the body wins on a name both
carry). Each API brings its own strict form decoder and its own refusal."""

from __future__ import annotations

from collections.abc import Callable

from flask import request

from app.domain.mt_request import first_values

FORM_MIMETYPES = ("", "application/x-www-form-urlencoded", "text/plain")


def request_params(
    decode: Callable[[bytes], dict[str, str]], unsupported: Callable[[str], Exception]
) -> dict[str, str]:
    query = decode(request.query_string)
    if request.method != "POST":
        return query
    if request.mimetype == "multipart/form-data":
        body = first_values(request.form.items(multi=True))
    elif request.mimetype in FORM_MIMETYPES:
        body = decode(request.get_data(cache=False))
    else:
        raise unsupported(f"unsupported content type {request.mimetype!r}")
    return {**query, **body}
