"""ESNAC's architecture space (seeds.md §3.3-3.4): the teachers' layer graphs, the 272-number layer encoding, the
three compression operators (removal, channel-group shrinkage with sliced weights, skip addition), the random
proposal distribution, and a property test over random actions on the four teachers."""

from __future__ import annotations

import copy
import math
import random
import statistics

import pytest
import torch
from torch import nn

from compresslib.esnac.space import (Action, Architecture, build_student, compress, encode, extract_graph,
                                     parameter_count, random_action, shrunk_width)
from compresslib.models import count_parameters, create_model, load_model, save_model
from compresslib.models.graph_layers import Concat, Layer

TEACHERS = ["vgg19", "resnet18", "resnet34", "shufflenet_g2"]
# seeds.md §3.3: the one-hot position is the layer type's index in this list
KINDS = ["identity", "flatten", "concat", "shuffle", "conv", "maxpool", "avgpool", "relu", "bn", "linear"]
MAX_OFFSET = 128
BATCH = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: one thread is faster and repeatable


def _teacher(name: str) -> nn.Module:
    """A 10-class teacher with non-trivial BatchNorm affine parameters and running statistics, so that slicing
    and "fresh statistics" are observable."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(0.5 + torch.rand(c, generator=generator))
                module.bias.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                module.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.fixture(scope="module")
def teachers() -> dict:
    """name -> (teacher, graph), each built once per module."""
    return {name: (model, extract_graph(model)) for name, model in ((n, _teacher(n)) for n in TEACHERS)}


def _identity_action(graph) -> Action:
    return Action((), tuple(0.0 for _ in graph.group_widths), ())


def _expected_width(width: int, ratio: float, multiple: int) -> int:
    """seeds.md §3.4's F' = max(1, int((1 - r) F)), kept a multiple of m: max(m, m * floor((1 - r) F / m))."""
    return max(multiple, multiple * math.floor((1.0 - ratio) * width / multiple))


def _direct_count(net: nn.Module) -> int:
    """Parameters counted from the modules' settings (conv: out * in / groups * k * k + bias; BN: 2C; linear)."""
    total = 0
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += module.out_channels * module.in_channels // module.groups * kh * kw
            total += module.out_channels if module.bias is not None else 0
        elif isinstance(module, nn.BatchNorm2d):
            total += 2 * module.num_features
        elif isinstance(module, nn.Linear):
            total += module.out_features * module.in_features + (module.out_features if module.bias is not None else 0)
    return total


def _output_widths(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """The network's output and every layer's actual output channel count (from forward hooks)."""
    widths: dict[int, int] = {}
    handles = [layer.register_forward_hook(lambda m, i, o, k=k: widths.__setitem__(k, o.shape[1]))
               for k, layer in enumerate(net.layers)]
    try:
        with torch.no_grad():
            out = net.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return out, [widths[k] for k in range(len(net.layers))]


# --- graph extraction ------------------------------------------------------------------------------------------

def _resnet_structure(blocks: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """(kind, sources) per layer in module-call order, written out from seeds.md §3.3."""
    layers = [("conv", ()), ("bn", (0,)), ("relu", (1,))]
    previous = 2
    for stage, count in enumerate(blocks):
        for block in range(count):
            base = len(layers)
            layers += [("conv", (previous,)), ("bn", (base,)), ("relu", (base + 1,)), ("conv", (base + 2,)),
                       ("bn", (base + 3,))]
            shortcut = previous
            if stage > 0 and block == 0:  # the 1x1 conv + BN downsampling
                layers += [("conv", (previous,)), ("bn", (base + 5,))]
                shortcut = base + 6
            layers.append(("relu", tuple(sorted((base + 4, shortcut)))))
            previous = len(layers) - 1
    return layers + [("avgpool", (previous,)), ("flatten", (previous + 1,)), ("linear", (previous + 2,))]


@pytest.mark.parametrize(("name", "blocks"), [("resnet18", (2, 2, 2, 2)), ("resnet34", (3, 4, 6, 3))])
def test_resnet_graph_follows_module_call_order_and_sums_residuals(teachers, name, blocks):
    model, graph = teachers[name]
    assert [(layer.kind, sources) for layer, sources in zip(graph.layers, graph.inputs)] == _resnet_structure(blocks)
    assert graph.size == (60 if name == "resnet18" else 108)
    assert graph.inputs[8] == (2, 7)  # block 1's relu2: its bn2 and the stem's ReLU
    if name == "resnet18":  # layer2's first block: conv1 15, bn1 16, relu1 17, conv2 18, bn2 19, shortcut 20-21
        assert graph.inputs[20] == (14,) and graph.inputs[15] == (14,) and graph.inputs[22] == (19, 21)
        assert (graph.layers[20].kernel_size, graph.layers[20].stride) == (1, 2)
    assert graph.group_widths == [64, 128, 256, 512] and graph.group_multiples == [1, 1, 1, 1]
    assert graph.layers[0] == Layer("conv", 3, 64, kernel_size=3, stride=1, padding=1, groups=1, bias=False)
    assert graph.layers[-1] == Layer("linear", 512, 10, bias=True)
    assert graph.in_shapes[0] == (3, 32, 32) and graph.out_shapes[-1] == (10,)
    assert all(module is dict(model.named_modules())[key] for module, key in
               zip(graph.modules[:3], ("conv1", "bn1", "relu1")))
    assert graph.derived == {} and graph.shrink_cap == 1.0


def test_vgg_is_a_pure_chain(teachers):
    _, graph = teachers["vgg19"]
    assert graph.size == 16 * 3 + 5 + 2 == 55
    assert graph.inputs[0] == () and all(graph.inputs[i] == (i - 1,) for i in range(1, graph.size))
    kinds = [layer.kind for layer in graph.layers]
    assert kinds.count("conv") == 16 and kinds.count("maxpool") == 5 and kinds[-2:] == ["flatten", "linear"]
    assert kinds[:7] == ["conv", "bn", "relu", "conv", "bn", "relu", "maxpool"]
    assert graph.group_widths == [64, 128, 256, 512]
    assert all(graph.layers[i].bias for i in range(graph.size) if kinds[i] == "conv")  # VGG's convs have biases
    assert graph.out_shapes[kinds.index("flatten")] == (512,)


def test_shufflenet_concats_take_their_branches_in_order(teachers):
    _, graph = teachers["shufflenet_g2"]
    assert graph.size == 159
    concats = [i for i, layer in enumerate(graph.layers) if layer.kind == "concat"]
    assert concats == [13, 52, 127]
    assert [graph.inputs[i] for i in concats] == [(10, 12), (49, 51), (124, 126)]  # [main branch, shortcut]
    for concat, width in zip(concats, (200, 400, 800)):
        main, shortcut = graph.inputs[concat]
        assert graph.layers[main].kind == "bn" and graph.layers[shortcut].kind == "avgpool"
        assert graph.layers[concat].out_channels == width == graph.out_shapes[concat][0]
        assert graph.out_shapes[main][0] + graph.out_shapes[shortcut][0] == width
    # ESNAC's hard-coded stride-2 shortcut convs (seeds.md §3.4) are the layers before the shortcut pools
    assert [graph.inputs[i + 1] for i in (11, 50, 125)] == [(11,), (50,), (125,)]
    assert all(graph.layers[i].kind == "conv" and graph.layers[i].groups == 2 for i in (11, 50, 125))
    assert graph.derived == {9: 13, 48: 52, 123: 127}  # each Concat's main-branch conv3 gets the remainder
    assert graph.group_widths == [24, 44, 200, 50, 400, 100, 800] and set(graph.group_multiples) == {2}
    assert graph.shrink_cap == 0.9
    depthwise = graph.layers[7]
    assert depthwise.kind == "conv" and depthwise.groups == depthwise.in_channels == depthwise.out_channels == 44
    assert graph.layers[6].kind == "shuffle" and graph.layers[6].groups == 1  # the first block's conv1 is ungrouped
    assert graph.layers[18].kind == "shuffle" and graph.layers[18].groups == 2
    assert graph.inputs[23] == (14, 22)  # a stride-1 block's relu3 sums its bn3 and the block input


def test_removable_layers_keep_their_shape_and_skips_join_equal_shapes(teachers):
    for name in TEACHERS:
        _, graph = teachers[name]
        n = graph.size
        assert graph.removable == [i for i in range(n - 1) if graph.in_shapes[i] == graph.out_shapes[i]
                                   and graph.layers[i].kind != "concat"], name
        assert set(graph.skip_pairs) == {(i, j) for j in range(n) for i in range(max(0, j - MAX_OFFSET + 1), j)
                                         if graph.out_shapes[i] == graph.in_shapes[j]
                                         and graph.layers[j].kind != "concat" and i not in graph.inputs[j]}, name


@pytest.mark.parametrize("name", TEACHERS)
def test_the_identity_action_rebuilds_the_teacher(teachers, name):
    model, graph = teachers[name]
    architecture = compress(graph, _identity_action(graph))
    assert architecture.removed == () and architecture.skips == ()
    assert architecture.layers == tuple(graph.layers) and architecture.inputs == tuple(graph.inputs)
    net = build_student(graph, architecture)
    assert parameter_count(architecture) == count_parameters(net) == count_parameters(model)
    reference = copy.deepcopy(model)  # the student starts with fresh BatchNorm statistics: so does the reference
    for module in reference.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
    with torch.no_grad():
        expected = reference.eval()(BATCH)
        actual = net.eval()(BATCH)
    assert actual.shape == (2, 10)
    assert torch.allclose(actual, expected, rtol=1e-4, atol=1e-5)


# --- encoding ---------------------------------------------------------------------------------------------------

def _independent_encoding(architecture: Architecture) -> torch.Tensor:
    n = len(architecture.layers)
    features = torch.zeros(n, 16 + 2 * MAX_OFFSET)
    for i, layer in enumerate(architecture.layers):
        features[i, KINDS.index(layer.kind)] = 1
        features[i, 10:14] = torch.tensor([layer.kernel_size, layer.stride, layer.padding, layer.groups],
                                          dtype=torch.float32)
        if layer.kind in ("conv", "linear"):
            features[i, 14:16] = torch.tensor([layer.in_channels, layer.out_channels], dtype=torch.float32)
    for i, sources in enumerate(architecture.inputs):
        for j in sources:
            features[i, 16 + i - j] = 1
            features[j, 16 + MAX_OFFSET + i - j] = 1
    return features


@pytest.mark.parametrize("name", TEACHERS)
def test_encoding_matches_an_independent_computation(teachers, name):
    _, graph = teachers[name]
    rng = random.Random(5)
    for _ in range(3):
        action = random_action(graph, rng)
        architecture = compress(graph, action)
        features = encode(architecture)
        assert features.shape == (graph.size, 272)
        assert torch.equal(features, _independent_encoding(architecture))
        for i in action.remove:  # a removed layer encodes as an identity (one-hot 0, no settings)
            assert features[i, 0] == 1 and features[i, 1:16].abs().sum() == 0
    assert torch.equal(encode(compress(graph, _identity_action(graph))),
                       _independent_encoding(compress(graph, _identity_action(graph))))


def test_encoding_of_resnet18_by_hand(teachers):
    _, graph = teachers["resnet18"]
    features = encode(compress(graph, Action((), (0.5, 0.0, 0.0, 0.0), ())))
    assert features.shape == (60, 272) and features.dtype == torch.float32
    assert features[0].sum() == 1 + (3 + 1 + 1 + 1) + (3 + 32) + 1  # one-hot, settings, channels, edge 0 -> 1
    stem = features[0]
    assert stem[KINDS.index("conv")] == 1 and stem[:10].sum() == 1
    assert stem[10:16].tolist() == [3, 1, 1, 1, 3, 32]  # kernel, stride, padding, groups, in, out (shrunk)
    bn = features[1]
    assert bn[KINDS.index("bn")] == 1 and bn[10:16].abs().sum() == 0  # channels only for conv/linear
    relu2 = features[8]  # reads layers 2 and 7: in[1] and in[6]
    assert relu2[KINDS.index("relu")] == 1 and relu2[10:16].abs().sum() == 0
    assert torch.nonzero(relu2[16:16 + MAX_OFFSET]).flatten().tolist() == [1, 6]
    assert torch.nonzero(relu2[16 + MAX_OFFSET:]).flatten().tolist() == [1, 6]  # to 9 (conv1) and 14 (relu2)
    stem_relu = features[2]  # feeds 3 (offset 1) and 8 (offset 6)
    assert torch.nonzero(stem_relu[16 + MAX_OFFSET:]).flatten().tolist() == [1, 6]
    assert torch.nonzero(stem[16:16 + MAX_OFFSET]).numel() == 0  # reads the network input: no edge
    fc = features[59]
    assert fc[KINDS.index("linear")] == 1 and fc[14:16].tolist() == [512, 10]
    assert torch.nonzero(fc[16 + MAX_OFFSET:]).numel() == 0  # the output feeds nothing
    pool = features[57]
    assert pool[KINDS.index("avgpool")] == 1 and pool[10:14].tolist() == [4, 4, 0, 0]


def test_encoding_of_a_skip_and_of_shufflenet_settings(teachers):
    _, graph = teachers["resnet18"]
    assert (2, 5) in graph.skip_pairs
    architecture = compress(graph, Action((), (0.0,) * 4, ((2, 5),)))
    features = encode(architecture)
    assert architecture.inputs[5] == (2, 4)
    assert features[5, 16 + 3] == 1 and features[2, 16 + MAX_OFFSET + 3] == 1
    _, graph = teachers["shufflenet_g2"]
    features = encode(compress(graph, _identity_action(graph)))
    assert features[18, KINDS.index("shuffle")] == 1 and features[18, 13] == 2  # shuffle groups
    assert features[7, 10:16].tolist() == [3, 2, 1, 44, 44, 44]  # the stride-2 depthwise conv
    assert features[13, KINDS.index("concat")] == 1
    assert torch.nonzero(features[13, 16:16 + MAX_OFFSET]).flatten().tolist() == [1, 3]  # concat 13 reads 12, 10


# --- operators --------------------------------------------------------------------------------------------------

def test_removing_a_layer_makes_it_an_identity_and_keeps_the_shapes(teachers):
    _, graph = teachers["resnet18"]
    for layer in (3, 4, 5, 8, 21):  # a conv, a BN, a ReLU, a summing ReLU, a shortcut BN
        assert layer in graph.removable
        architecture = compress(graph, Action((layer,), (0.0,) * 4, ()))
        assert architecture.removed == (layer,)
        assert architecture.layers[layer].kind == "identity"
        assert architecture.inputs[layer] == graph.inputs[layer]  # an identity still sums its inputs
        net = build_student(graph, architecture)
        shapes = {}
        net.layers[layer].register_forward_hook(lambda m, i, o: shapes.__setitem__("out", tuple(o.shape[1:])))
        with torch.no_grad():
            assert net.eval()(BATCH).shape == (2, 10)
        assert shapes["out"] == graph.out_shapes[layer]
        removed = graph.layers[layer]
        params = (removed.out_channels * removed.in_channels * removed.kernel_size ** 2 if removed.kind == "conv"
                  else 2 * removed.out_channels if removed.kind == "bn" else 0)
        assert parameter_count(architecture) == count_parameters(teachers["resnet18"][0]) - params


def test_layers_whose_shape_changes_cannot_be_removed(teachers):
    _, graph = teachers["resnet18"]
    for layer in (0, 15, 20, 57, 58, 59):  # stem conv (3->64), stride-2 convs, avgpool, flatten, final linear
        assert layer not in graph.removable
        with pytest.raises(ValueError, match="cannot be removed"):
            compress(graph, Action((layer,), (0.0,) * 4, ()))
    _, graph = teachers["shufflenet_g2"]
    with pytest.raises(ValueError, match="cannot be removed"):
        compress(graph, Action((13,), (0.0,) * 7, ()))  # a Concat


def test_actions_are_checked(teachers):
    _, graph = teachers["resnet18"]
    with pytest.raises(ValueError, match="3 ratios"):
        compress(graph, Action((), (0.0,) * 3, ()))
    for pair in ((5, 2), (2, 16), (7, 8)):  # backwards, shapes differ, already an edge
        assert pair not in graph.skip_pairs
        with pytest.raises(ValueError, match="skips"):
            compress(graph, Action((), (0.0,) * 4, (pair,)))
    action = random_action(graph, random.Random(3))
    assert Action.from_dict(action.to_dict()) == action


def test_shrunk_width_formula():
    assert shrunk_width(64, 0.0, 1) == 64
    assert shrunk_width(64, 0.5, 1) == 32
    assert shrunk_width(64, 0.51, 1) == 31  # floor
    assert shrunk_width(64, 1.0, 1) == 1  # never empty
    assert shrunk_width(44, 0.3, 2) == 30
    assert shrunk_width(50, 0.5, 2) == 24  # floor(12.5) * 2
    assert shrunk_width(44, 1.0, 2) == 2 and shrunk_width(44, 0.99, 2) == 2
    assert shrunk_width(7, 0.5, 1) == 3
    rng = random.Random(0)
    for _ in range(500):
        width, ratio, multiple = rng.randint(1, 1000), rng.random(), rng.choice((1, 2, 4))
        assert shrunk_width(width, ratio, multiple) == _expected_width(width, ratio, multiple)


def test_shrinking_slices_the_teachers_weights(teachers):
    model, graph = teachers["resnet18"]
    ratios = (0.5, 0.25, 0.0, 0.75)  # 64 -> 32, 128 -> 96, 256 -> 256, 512 -> 128
    architecture = compress(graph, Action((), ratios, ()))
    net = build_student(graph, architecture)
    widths = {64: 32, 128: 96, 256: 256, 512: 128}
    stem = net.layers[0]
    assert stem.weight.shape == (32, 3, 3, 3) and torch.equal(stem.weight, model.conv1.weight[:32])
    conv = net.layers[15]  # layer2.0.conv1: 64 -> 128, stride 2
    assert (conv.in_channels, conv.out_channels, conv.stride) == (32, 96, (2, 2))
    assert torch.equal(conv.weight, model.layer2[0].conv1.weight[:96, :32])
    downsample = net.layers[20]
    assert torch.equal(downsample.weight, model.layer2[0].shortcut[0].weight[:96, :32])
    bn = net.layers[16]
    teacher_bn = model.layer2[0].bn1
    assert torch.equal(bn.weight, teacher_bn.weight[:96]) and torch.equal(bn.bias, teacher_bn.bias[:96])
    assert not torch.equal(teacher_bn.running_mean[:96], torch.zeros(96))  # the teacher's statistics are not fresh
    assert torch.equal(bn.running_mean, torch.zeros(96)) and torch.equal(bn.running_var, torch.ones(96))
    assert bn.num_batches_tracked.item() == 0
    fc = net.layers[-1]
    assert fc.weight.shape == (10, widths[512])
    assert torch.equal(fc.weight, model.fc.weight[:, :widths[512]]) and torch.equal(fc.bias, model.fc.bias)
    for i, layer in enumerate(architecture.layers):
        if layer.kind == "conv":
            assert layer.out_channels == widths[graph.layers[i].out_channels]
    with torch.no_grad():
        assert net.eval()(BATCH).shape == (2, 10)
    # VGG's convolutions have biases: they are sliced too
    model, graph = teachers["vgg19"]
    net = build_student(graph, compress(graph, Action((), (0.5, 0.5, 0.5, 0.5), ())))
    first = net.layers[0]
    assert torch.equal(first.bias, model.features[0].bias[:32])
    assert torch.equal(first.weight, model.features[0].weight[:32])
    assert torch.equal(net.layers[3].weight, model.features[3].weight[:32, :32])


def test_shufflenet_depthwise_convs_stay_depthwise_and_concat_remainders(teachers):
    model, graph = teachers["shufflenet_g2"]
    ratios = (0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)  # 24 -> 12, 44 -> 22, 200 -> 100, 50 -> 24, 400 -> 200, ...
    architecture = compress(graph, Action((), ratios, ()))
    layers = architecture.layers
    assert (layers[7].in_channels, layers[7].out_channels, layers[7].groups) == (22, 22, 22)
    assert (layers[19].in_channels, layers[19].out_channels, layers[19].groups) == (24, 24, 24)
    assert layers[9].out_channels == 100 - 12 and layers[11].out_channels == 12  # remainder + shortcut = group
    assert layers[13].out_channels == 100 and layers[13].in_channels == 100
    net = build_student(graph, architecture)
    assert torch.equal(net.layers[7].weight, graph.modules[7].weight[:22])  # (out, 1, 3, 3) depthwise filters
    out, widths = _output_widths(net, BATCH)
    assert out.shape == (2, 10) and widths[13] == 100 and widths[52] == 200 and widths[127] == 400


@pytest.mark.parametrize(("ratios", "concats"), [
    # the stem group shrunk to 2: the main branch would need 198 > 176 filters, so the Concat's group grows to 178,
    # which then pushes the next two Concats past their branches' widths as well
    ((0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), (178, 378, 778)),
    # the 200 group shrunk to 10 < 24 + 2: the Concat keeps 2 main-branch filters (26); the 400 group then needs
    # 374 > 200 main-branch filters and moves to 226, and the 800 group to 626
    ((0.0, 0.0, 0.95, 0.0, 0.0, 0.0, 0.0), (26, 226, 626)),
])
def test_shufflenet_concat_widths_are_fitted_to_the_branches(teachers, ratios, concats):
    _, graph = teachers["shufflenet_g2"]
    architecture = compress(graph, Action((), ratios, ()))
    net = build_student(graph, architecture)
    out, widths = _output_widths(net, BATCH)
    assert out.shape == (2, 10)
    assert tuple(widths[i] for i in (13, 52, 127)) == concats
    assert architecture.layers[-1].in_channels == concats[-1]
    assert parameter_count(architecture) == count_parameters(net) == _direct_count(net)


def test_added_skips_join_the_sum_and_change_the_output(teachers):
    _, graph = teachers["resnet18"]
    plain = build_student(graph, compress(graph, _identity_action(graph)))
    pairs = ((2, 5), (17, 19))  # stem ReLU -> block 1's relu1; layer2.0's relu1 -> its bn2 (both 128 x 16 x 16)
    assert all(pair in graph.skip_pairs for pair in pairs)
    architecture = compress(graph, Action((), (0.3, 0.3, 0.0, 0.0), pairs))
    assert architecture.skips == pairs
    assert architecture.inputs[5] == (2, 4) and architecture.inputs[19] == (17, 18)
    assert [sources for i, sources in enumerate(architecture.inputs) if i not in (5, 19)] == \
        [sources for i, sources in enumerate(graph.inputs) if i not in (5, 19)]
    skipped = build_student(graph, architecture)
    shrunk = build_student(graph, compress(graph, Action((), (0.3, 0.3, 0.0, 0.0), ())))
    with torch.no_grad():
        with_skips, without = skipped.eval()(BATCH), shrunk.eval()(BATCH)
        assert not torch.allclose(with_skips, without)
        # by hand: layer 5 of the skipped network gets relu(bn1(conv1(x)) + stem output)
        outputs = {}
        hooks = [skipped.layers[k].register_forward_hook(lambda m, i, o, k=k: outputs.__setitem__(k, o))
                 for k in (2, 4, 5)]
        skipped(BATCH)
        for hook in hooks:
            hook.remove()
        assert torch.equal(outputs[5], torch.relu(outputs[4] + outputs[2]))
    assert parameter_count(architecture) == count_parameters(skipped)  # a skip adds no parameters
    assert plain(BATCH).shape == (2, 10)


def test_a_skip_into_a_removed_layer_has_no_effect(teachers):
    _, graph = teachers["resnet18"]
    assert (2, 5) in graph.skip_pairs and 5 in graph.removable
    with_skip = compress(graph, Action((5,), (0.0,) * 4, ((2, 5),)))
    without = compress(graph, Action((5,), (0.0,) * 4, ()))
    assert with_skip == without and with_skip.skips == () and with_skip.inputs[5] == (4,)
    assert torch.equal(encode(with_skip), encode(without))


def _concat_teacher() -> nn.Module:
    """A toy network whose Concat's main-branch conv (4 of 8 channels) has the shape of another group's tensor
    (the shortcut's 4 channels), so a skip can join tensors that end up with different widths."""

    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.stem_relu = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
            self.branch = nn.Conv2d(8, 4, 1)  # the main branch: gets the remainder
            self.shortcut, self.shortcut_bn = nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4)
            self.concat, self.relu = Concat(), nn.ReLU()
            self.pool, self.flatten, self.fc = nn.AvgPool2d(32), nn.Flatten(), nn.Linear(8, 10)

        def forward(self, x):
            x = self.stem_relu(self.stem(x))
            out = self.concat([self.branch(x), self.shortcut_bn(self.shortcut(x))])
            return self.fc(self.flatten(self.pool(self.relu(out))))

    torch.manual_seed(0)
    return Toy().eval()


def test_a_skip_between_a_concat_branch_and_another_group_is_dropped_when_widths_differ():
    graph = extract_graph(_concat_teacher())
    assert [layer.kind for layer in graph.layers] == ["conv", "relu", "conv", "conv", "bn", "concat", "relu",
                                                      "avgpool", "flatten", "linear"]
    assert graph.derived == {2: 5} and graph.group_widths == [8, 4]
    assert (2, 4) in graph.skip_pairs  # branch conv (4 x 32 x 32) -> shortcut BN (4 x 32 x 32)
    kept = compress(graph, Action((), (0.0, 0.0), ((2, 4),)))  # 8 = 4 + 4: the branch keeps 4
    assert kept.skips == ((2, 4),) and kept.inputs[4] == (2, 3)
    # the shortcut shrinks to 2; the branch would need 8 - 2 = 6 > 4 filters, keeps its 4, and the Concat is 6
    dropped = compress(graph, Action((), (0.0, 0.5), ((2, 4),)))
    assert dropped.skips == () and dropped.inputs[4] == (3,)
    assert [dropped.layers[i].out_channels for i in (2, 3, 5)] == [4, 2, 6]
    for architecture in (kept, dropped):
        with torch.no_grad():
            assert build_student(graph, architecture).eval()(BATCH).shape == (2, 10)


def test_graph_extraction_refuses_what_it_cannot_represent():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    with pytest.raises(ValueError, match="ESNAC graph"):
        extract_graph(Functional())


# --- the random proposal distribution ---------------------------------------------------------------------------

def test_random_proposals_follow_esnacs_distribution(teachers):
    _, graph = teachers["resnet18"]
    rng = random.Random(0)
    actions = [random_action(graph, rng) for _ in range(300)]
    assert actions == [random_action(graph, r) for r in [random.Random(0)] for _ in range(300)]  # deterministic
    removable = set(graph.removable)
    removed_fractions, skip_fractions, ratios = [], [], []
    for action in actions:
        assert set(action.remove) <= removable and list(action.remove) == sorted(set(action.remove))
        assert len(action.ratios) == 4 and all(0.0 <= r < 1.0 for r in action.ratios)
        assert set(action.skips) <= set(graph.skip_pairs) and len(set(action.skips)) == len(action.skips)
        assert not {j for _, j in action.skips} & set(action.remove)  # no skip into a removed layer
        removed_fractions.append(len(action.remove) / len(removable))
        eligible = [pair for pair in graph.skip_pairs if pair[1] not in action.remove]
        skip_fractions.append(len(action.skips) / len(eligible))
        ratios += action.ratios
    # p1 uniform over {0.3, ..., 0.7} per proposal: mean 0.5, and the per-proposal fractions spread (p1 varies)
    assert abs(statistics.mean(removed_fractions) - 0.5) < 0.05
    assert statistics.pstdev(removed_fractions) > 0.1
    assert 0.1 < min(removed_fractions) and max(removed_fractions) < 0.9
    # ratios U(0, 1)
    assert abs(statistics.mean(ratios) - 0.5) < 0.05 and min(ratios) < 0.05 and max(ratios) > 0.95
    # p3 from {0.003, 0.005, 0.01, 0.03, 0.05}: mean 0.0196
    assert abs(statistics.mean(skip_fractions) - 0.0196) < 0.004
    assert max(skip_fractions) < 0.1
    assert min(len(action.skips) for action in actions) == 0 and max(len(action.skips) for action in actions) > 5
    # a different seed gives different proposals
    assert random_action(graph, random.Random(1)) != actions[0]


def test_shufflenet_proposals_cap_the_ratios(teachers):
    _, graph = teachers["shufflenet_g2"]
    rng = random.Random(0)
    ratios = [r for _ in range(200) for r in random_action(graph, rng).ratios]
    assert all(0.0 <= r <= 0.9 for r in ratios) and max(ratios) > 0.85
    assert abs(statistics.mean(ratios) - 0.45) < 0.05


# --- property test: random actions on the four teachers ---------------------------------------------------------

def _check_compressed(graph, action: Action) -> None:
    """Build and run the action's network; check widths, removals, skips and the parameter count."""
    architecture = compress(graph, action)
    net = build_student(graph, architecture)
    out, widths = _output_widths(net, BATCH)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    n = graph.size
    expected = {width: _expected_width(width, ratio, multiple)
                for width, ratio, multiple in zip(graph.group_widths, action.ratios, graph.group_multiples)}
    # a Concat's group: its main branch gets the rest of the group's width, which must lie between the group's
    # multiple and the teacher's branch width; where it cannot, the Concat's width is what the branch allows
    for conv, concat in sorted(graph.derived.items()):
        main, shortcut = graph.inputs[concat]
        multiple = graph.group_multiples[graph.group_widths.index(graph.layers[concat].out_channels)]
        other = widths[shortcut]
        rest = min(max(expected[graph.layers[concat].out_channels] - other, multiple), graph.layers[conv].out_channels)
        expected[graph.layers[concat].out_channels] = rest + other
        assert widths[conv] == widths[main] == rest and rest % multiple == 0
        assert widths[concat] == widths[main] + widths[shortcut] == architecture.layers[concat].out_channels
    for i, layer in enumerate(architecture.layers):
        teacher = graph.layers[i]
        if i in action.remove:
            assert layer.kind == "identity" and widths[i] == widths[graph.inputs[i][0]]
            continue
        assert layer.kind == teacher.kind
        assert widths[i] == (layer.out_channels if layer.kind != "flatten" else widths[i])
        if layer.kind in ("conv", "linear", "concat") and i != n - 1 and i not in graph.derived:
            assert layer.out_channels == widths[i] == expected[teacher.out_channels], (i, layer)
        if layer.kind == "conv" and teacher.groups > 1 and teacher.groups == teacher.in_channels:
            assert layer.groups == layer.in_channels == layer.out_channels  # depthwise stays depthwise
        elif layer.kind == "conv":
            assert layer.groups == teacher.groups
    assert architecture.layers[-1].out_channels == 10
    assert architecture.removed == tuple(sorted(action.remove))
    assert set(architecture.skips) == set(action.skips)  # no proposed skip ends in a removed layer
    for i, j in action.skips:
        assert i in architecture.inputs[j]
    count = parameter_count(architecture)
    assert count == sum(p.numel() for p in net.parameters()) == _direct_count(net)


def _property(teachers, name: str, count: int, seed: int) -> None:
    _, graph = teachers[name]
    rng = random.Random(seed)
    for _ in range(count):
        _check_compressed(graph, random_action(graph, rng))


@pytest.mark.parametrize("name", TEACHERS)
def test_random_actions_give_runnable_networks_of_the_implied_widths(teachers, name):
    _property(teachers, name, 30, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("name", TEACHERS)
def test_hundreds_of_random_actions_give_runnable_networks_of_the_implied_widths(teachers, name):
    _property(teachers, name, 200, seed=12)


# --- esnac_net model files --------------------------------------------------------------------------------------

def test_esnac_net_round_trips_through_a_model_file(teachers, tmp_path):
    _, graph = teachers["shufflenet_g2"]
    architecture = compress(graph, random_action(graph, random.Random(4)))
    net = build_student(graph, architecture).eval()
    kwargs = {**architecture.model_kwargs(), "num_classes": 10, "activation": "relu"}
    save_model(tmp_path / "arch.pt", net, "esnac_net", kwargs, extra={"dataset": "cifar10"})
    loaded, meta = load_model(tmp_path / "arch.pt")
    assert meta["name"] == "esnac_net" and meta["kwargs"] == kwargs and meta["dataset"] == "cifar10"
    state = net.state_dict()
    assert loaded.state_dict().keys() == state.keys()
    assert all(torch.equal(value, state[key]) for key, value in loaded.state_dict().items())
    with torch.no_grad():
        assert torch.equal(loaded.eval()(BATCH), net(BATCH))
    assert [layer.kind for layer in architecture.layers] == loaded.kinds
    with pytest.raises(ValueError, match="10 outputs, the dataset 100 classes"):
        create_model("esnac_net", **{**kwargs, "num_classes": 100})
    with pytest.raises(ValueError, match="ReLU only"):
        create_model("esnac_net", **{**kwargs, "activation": "gelu"})
