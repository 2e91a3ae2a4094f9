"""Error pages: styled HTML for people, the API's {"error", "detail"} JSON under /api/ (handler400-500)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

API_PREFIX = "/api/"
_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    500: "Something went wrong",
}
_SENTENCES = {
    400: "The request could not be understood.",
    403: "Your role does not allow this.",
    404: "There is nothing at this address.",
    500: "The server failed to answer this request. It has been logged; please try again.",
}


def _reason(exception: Exception | None, status: int) -> str:
    # Http404/PermissionDenied raised with a sentence for people carry it as their first argument.
    if exception is not None and exception.args and isinstance(exception.args[0], str):
        return exception.args[0]
    return _SENTENCES[status]


def error_response(request: HttpRequest, status: int, exception: Exception | None = None) -> HttpResponse:
    """The answer for an error status: JSON for API paths, the styled page otherwise."""
    reason = _reason(exception, status) if status != 500 else _SENTENCES[500]
    if request.path.startswith(API_PREFIX):
        return JsonResponse(
            {"error": reason, "detail": {"status": status, "path": request.path}}, status=status
        )
    # 500.html extends nothing that needs the database or a request context: it must render when they fail.
    template = loader.get_template("500.html" if status == 500 else "error.html")
    context = {"status": status, "title": _TITLES[status], "reason": reason}
    body = template.render(context, request if status != 500 else None)
    return HttpResponse(body, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400."""
    return error_response(request, 400, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler403."""
    return error_response(request, 403, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404."""
    return error_response(request, 404, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500."""
    return error_response(request, 500)
