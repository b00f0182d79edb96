"""Health endpoint for load balancers and monitors."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database reachable, and the job queue's depth and last activity. 503 when the database is down."""
    body: dict[str, object] = {"status": "ok", "time": timezone.now().isoformat()}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["database"] = {"status": "ok", "vendor": connection.vendor}
    except Exception as exc:  # any driver error means "down"; the message is for the operator
        body["status"] = "error"
        body["database"] = {"status": "error", "error": str(exc)[:200]}
        return JsonResponse(body, status=503)

    from django_q.models import OrmQ, Task

    last = Task.objects.order_by("-stopped").values_list("stopped", flat=True).first()
    body["queue"] = {
        "status": "ok",
        "broker": "orm",
        "queued": OrmQ.objects.count(),
        "last_task_finished": last.isoformat() if last else None,
        "failed_last_24h": Task.objects.filter(
            success=False, stopped__gte=timezone.now() - timedelta(hours=24)
        ).count(),
    }
    return JsonResponse(body)
