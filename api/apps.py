from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "REST API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from simple_history.signals import pre_create_historical_record

        from api.services import history_reason_name_client, override_client_people
        from reconciliation import workflow

        # Proposals made through an API client count everyone behind the client for the four-eyes rule.
        if override_client_people not in workflow.PROPOSAL_PEOPLE_LOOKUPS:
            workflow.PROPOSAL_PEOPLE_LOOKUPS.append(override_client_people)
        pre_create_historical_record.connect(history_reason_name_client, dispatch_uid="api_client_in_history")
