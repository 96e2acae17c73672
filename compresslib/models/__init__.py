"""Model families and their registry; importing this package registers every model."""

from compresslib.models import convnet, graph_layers, resnet_basic, resnet_cifar, shufflenet, vdcnn, vgg, wide_resnet  # noqa: F401
from compresslib.models.registry import (
    count_parameters,
    create_model,
    is_model,
    list_models,
    load_model,
    model_file_info,
    register_model,
    save_model,
)

__all__ = ["create_model", "list_models", "is_model", "register_model", "save_model", "load_model", "model_file_info",
           "count_parameters"]
