"""Model families and their registry; importing this package registers every model.

Every constructor's name is listed in ``compresslib.catalog.MODELS`` (which config checks read without torch);
``register_model`` refuses one the catalogue does not list under its module.
"""

from compresslib.models import (  # noqa: F401
    convnet,
    graph_layers,
    lstm_nmt,
    resnet_basic,
    resnet_cifar,
    shufflenet,
    transformer_nmt,
    vdcnn,
    vgg,
    wide_resnet,
)
from compresslib.models.registry import (
    count_parameters,
    create_model,
    is_model,
    list_models,
    load_model,
    model_facts,
    model_file_info,
    register_model,
    save_model,
)

__all__ = ["create_model", "list_models", "is_model", "register_model", "save_model", "load_model", "model_file_info",
           "count_parameters", "model_facts"]
