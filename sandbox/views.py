from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from sandbox.core import dispatch


@csrf_exempt  # API clients, not browsers; the consent form is the sandbox's own page
def sandbox_view(request: HttpRequest, platform: str, path: str) -> HttpResponse:
    if not settings.SANDBOX_ENABLED:
        raise Http404("the sandbox platforms are switched off (SANDBOX_ENABLED)")
    return dispatch(request, platform, path)
