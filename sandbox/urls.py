from django.urls import path

from sandbox.views import developer_webhook, developer_webhook_intent, developer_webhooks, sandbox_view

urlpatterns = [
    # QuickBooks and Xero set webhooks in their developer portals; these stand in for them
    path("<str:platform>/developer/webhooks", developer_webhooks, name="sandbox-developer-webhooks"),
    path(
        "<str:platform>/developer/webhooks/<str:public_id>",
        developer_webhook,
        name="sandbox-developer-webhook",
    ),
    path(
        "<str:platform>/developer/webhooks/<str:public_id>/intent",
        developer_webhook_intent,
        name="sandbox-developer-webhook-intent",
    ),
    path("<str:platform>/<path:path>", sandbox_view, name="sandbox"),
]
