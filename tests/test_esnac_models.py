"""ESNAC's CIFAR teachers (VGG-19, ResNet-18/34, ShuffleNet g = 2): parameter counts, one traced node per layer."""

from __future__ import annotations

import math
import operator

import pytest
import torch
import torch.fx as fx
from torch import nn

from compresslib.models import count_parameters, create_model, is_model, list_models, load_model, save_model
from compresslib.models.graph_layers import Concat

# (model, classes) -> parameters; seeds.md §3.2 gives them in millions to two decimals.
PARAMETER_COUNTS = {
    ("vgg19", 10): 20_040_522,
    ("vgg19", 100): 20_086_692,
    ("resnet18", 10): 11_173_962,
    ("resnet18", 100): 11_220_132,
    ("resnet34", 10): 21_282_122,
    ("resnet34", 100): 21_328_292,
    ("shufflenet_g2", 10): 987_870,
    ("shufflenet_g2", 100): 1_059_960,
}
ESNAC_MILLIONS = {
    ("vgg19", 10): 20.04, ("vgg19", 100): 20.09,
    ("resnet18", 10): 11.17, ("resnet18", 100): 11.22,
    ("resnet34", 10): 21.28, ("resnet34", 100): 21.33,
    ("shufflenet_g2", 10): 0.99, ("shufflenet_g2", 100): 1.06,
}
TEACHERS = ["vgg19", "resnet18", "resnet34", "shufflenet_g2"]
ADD_NODES = {"vgg19": 0, "resnet18": 8, "resnet34": 16, "shufflenet_g2": 3 + 7 + 3}  # a sum per residual block
SHORTCUT_CONV_INDICES = [11, 50, 125]  # ESNAC's stride-2 shortcut convs in module-call order (stem conv = 0)


class _ConcatLeafTracer(fx.Tracer):
    """Keeps ``Concat`` a module call; plain ``symbolic_trace`` inlines it as ``torch.cat``."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, Concat) or super().is_leaf_module(m, module_qualified_name)


def _layer_nodes(graph: fx.Graph) -> list[fx.Node]:
    """Module calls, plus the ``torch.cat`` of an inlined ``Concat``: ESNAC's layers in call order."""
    return [node for node in graph.nodes
            if node.op == "call_module" or (node.op == "call_function" and node.target is torch.cat)]


@pytest.mark.parametrize("name", TEACHERS)
def test_parameter_counts_and_output_shape(name: str):
    for num_classes in (10, 100):
        model = create_model(name, num_classes=num_classes, activation="relu")
        count = count_parameters(model)
        assert count == PARAMETER_COUNTS[name, num_classes]
        assert round(count / 1e6, 2) == ESNAC_MILLIONS[name, num_classes]
    assert count - PARAMETER_COUNTS[name, 10] == 90 * (model.fc.in_features + 1)
    with torch.no_grad():  # the 10-class output is checked against the traced model below
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_models_are_registered():
    assert all(is_model(name) for name in TEACHERS + ["resnet10"])
    assert list_models("vgg*") == ["vgg19"] and list_models("shufflenet*") == ["shufflenet_g2"]


@pytest.mark.parametrize("name", TEACHERS)
def test_symbolic_trace_has_one_node_per_layer_and_distinct_relus(name: str):
    torch.manual_seed(0)
    model = create_model(name).eval()
    traced = fx.symbolic_trace(model)
    modules = dict(model.named_modules())
    called = [node.target for node in traced.graph.nodes if node.op == "call_module"]
    assert len(called) == len(set(called))  # every layer its own module, each called once
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len({id(m) for m in relus}) == len(relus)
    assert sum(isinstance(modules[target], nn.ReLU) for target in called) == len(relus)
    leaves = [n for n, m in model.named_modules() if not list(m.children()) and not isinstance(m, Concat)]
    assert sorted(called) == sorted(leaves)  # no layer is skipped or applied functionally
    calls = [node for node in traced.graph.nodes if node.op == "call_function"]
    assert sum(node.target is operator.add for node in calls) == ADD_NODES[name]
    assert all(node.target in (operator.add, torch.cat) for node in calls)  # Concat's cat is the only other op
    assert modules[called[-1]] is model.fc and isinstance(modules[called[-2]], nn.Flatten)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 10) and torch.equal(traced(x), out)


def test_resnet_call_order():
    traced = fx.symbolic_trace(create_model("resnet18"))
    called = [node.target for node in traced.graph.nodes if node.op == "call_module"]
    block = ["conv1", "bn1", "relu1", "conv2", "bn2"]
    assert called[:3] == ["conv1", "bn1", "relu1"]
    assert called[3:9] == [f"layer1.0.{layer}" for layer in block + ["relu2"]]
    assert called[15:23] == [f"layer2.0.{layer}" for layer in block + ["shortcut.0", "shortcut.1", "relu2"]]
    assert called[-3:] == ["avgpool", "flatten", "fc"]
    assert len(called) == 3 + 8 * 6 + 3 * 2 + 3


def test_shufflenet_shortcut_convs_are_at_esnac_layer_indices():
    model = create_model("shufflenet_g2")
    shortcut = [f"layers.{stage}.0.shortcut_conv" for stage in range(3)]
    # a tracer that keeps Concat a module call: one call_module node per layer
    graph = _ConcatLeafTracer().trace(model)
    called = [node.target for node in graph.nodes if node.op == "call_module"]
    assert [called.index(target) for target in shortcut] == SHORTCUT_CONV_INDICES
    concats = [node for node in graph.nodes if node.op == "call_module" and node.target.endswith("concat")]
    assert len(concats) == 3 and all(isinstance(node.args[0], list) and len(node.args[0]) == 2 for node in concats)
    # plain symbolic_trace: the same order once the inlined cat is counted
    layers = _layer_nodes(fx.symbolic_trace(model).graph)
    assert [i for i, node in enumerate(layers) if node.target in shortcut] == SHORTCUT_CONV_INDICES
    # forward hooks, as ESNAC's graph.py reads the layers
    order: list[str] = []
    for name, module in model.named_modules():
        if not list(module.children()):
            module.register_forward_hook(lambda *_, name=name: order.append(name))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert [order.index(target) for target in shortcut] == SHORTCUT_CONV_INDICES
    assert len(order) == len(called) == 3 + 3 * 12 + 13 * 9 + 3


def test_shufflenet_block_structure():
    model = create_model("shufflenet_g2")
    for stage, (in_planes, out_planes) in enumerate([(24, 200), (200, 400), (400, 800)]):
        block = model.layers[stage][0]
        assert block.conv1.out_channels == (out_planes - in_planes) // 4  # mid of the branch, not of out_planes
        assert block.conv1.groups == (1 if in_planes == 24 else 2) == block.shuffle.groups
        assert block.conv2.groups == block.conv2.out_channels and block.conv2.stride == (2, 2)
        assert block.conv3.out_channels == out_planes - in_planes and block.conv3.groups == 2
        conv = block.shortcut_conv
        assert (conv.in_channels, conv.out_channels, conv.groups, conv.bias) == (in_planes, in_planes, 2, None)
        assert not any(isinstance(m, nn.BatchNorm2d) for n, m in block.named_modules() if "shortcut" in n)
        later = model.layers[stage][1]
        assert later.conv1.out_channels == out_planes // 4 and not hasattr(later, "shortcut_conv")


def test_pytorch_default_initialisation():
    torch.manual_seed(0)
    model = create_model("resnet18")
    conv = model.layer3[1].conv1.weight  # Conv2d default: uniform within 1 / sqrt(fan-in)
    bound = 1 / math.sqrt(256 * 9)
    assert conv.abs().max().item() <= bound and conv.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    first = create_model("vgg19").features[0]
    assert first.bias is not None and first.weight.abs().max().item() <= 1 / math.sqrt(27)


def test_demo_resnet10_width_8():
    model = create_model("resnet10", num_classes=10, activation="relu", width=8)
    assert count_parameters(model) == 78_002
    assert model.fc.in_features == 64 and model.num_blocks == (1, 1, 1, 1)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", TEACHERS + ["resnet10"])
def test_only_relu_is_supported(name: str):
    with pytest.raises(ValueError, match=f"{name}.*only activation 'relu'.*'lma4'"):
        create_model(name, activation="lma4")


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    kwargs = {"num_classes": 10, "activation": "relu", "width": 8}
    model = create_model("resnet10", **kwargs).train()
    model(torch.randn(8, 3, 32, 32))  # move the BN running statistics
    model.eval()
    save_model(tmp_path / "model.pt", model, "resnet10", kwargs)
    loaded, payload = load_model(tmp_path / "model.pt")
    loaded.eval()
    assert payload["kwargs"] == kwargs
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
