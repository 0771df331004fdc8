"""moto's own races, which request threads of one process meet and AWS does not have."""

from __future__ import annotations

from botocore.model import OperationModel as BotocoreOperationModel
from moto.core.model import OperationModel as MotoOperationModel
from moto.core.utils import get_service_model


def test_an_operation_model_cached_by_botocore_is_answered_as_moto_s(aws):
    """Between botocore caching its model and moto caching its own under the same key, another
    thread got botocore's, without http_trait: deploys failed with an AttributeError."""
    service = get_service_model("apigatewayv2")
    key = ("operation_model", ("GetStage",))
    service._instance_cache[key] = BotocoreOperationModel(
        service._service_description["operations"]["GetStage"], service, "GetStage"
    )
    model = service.operation_model("GetStage")
    assert isinstance(model, MotoOperationModel)
    assert model.http_trait.path == "/v2/apis/{apiId}/stages/{stageName}"
    assert service._instance_cache[key] is model
