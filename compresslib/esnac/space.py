"""ESNAC's architecture space: a teacher's layer graph, the compression actions on it and their encoding.

Paper: Cao, Wang, Kitani, "Learnable Embedding Space for Efficient Neural Architecture Compression", ICLR 2019
(seeds.md §3.3-3.4); re-implemented from the paper's description of the released code.

- **Layer graph** (:func:`extract_graph`). A ``torch.fx`` trace of the teacher: every module call is a layer,
  in call order; an addition becomes summed inputs of the layer that consumes it; a ``Concat`` layer takes its
  inputs as an ordered list. Shapes come from one forward pass of a single 3x32x32 input.
- **Actions** (:class:`Action`). (1) remove a layer whose input shape equals its output shape (it becomes an
  identity); (2) one shrink ratio r per *channel group*, new width ``max(m, m*floor((1-r)F/m))`` (m = 1 unless
  group convolutions or channel shuffles need a multiple); (3) add a skip connection i -> j for pairs with
  out_shape(i) = in_shape(j), effective only if j is kept. A group is every tensor of one channel count F,
  as ESNAC's scan finds them (the network's input and output excluded).
- **Widths are propagated**, not patched layer by layer: a convolution or linear layer's output takes its
  group's width, every other layer keeps its input's width, and a ``Concat`` takes its group's width with its
  first branch's last convolution given the remainder (ESNAC's ShuffleNet path re-derives these widths by
  hand; here one rule serves every teacher). An added skip whose two ends end up with different widths (a
  concatenation's branch) is dropped.
- **Encoding** (:func:`encode`): per layer 272 numbers: a one-hot over the 10 layer kinds, kernel size,
  stride, padding, groups, in and out channels (channels for convolution and linear layers only), then
  ``in[128]`` with a 1 at i - j for each edge j -> i and ``out[128]`` with a 1 at j - i for each edge i -> j.
- **Students** (:func:`build_student`): the compressed layer list as an :class:`ArchNet`, with the teacher's
  weights sliced (first filters and input channels), BatchNorm affine parameters sliced and fresh running
  statistics. ``ArchNet`` is the registered model ``esnac_net``: its architecture is its keyword arguments,
  so a model file rebuilds it like any other model.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import torch
from torch import fx, nn

from compresslib.models.graph_layers import LAYER_KINDS, ArchNet, Concat, Layer, gather_inputs

__all__ = ["MAX_OFFSET", "FEATURE_SIZE", "LayerGraph", "Action", "Architecture", "extract_graph", "random_action",
           "shrunk_width", "compress", "encode", "parameter_count", "build_student"]

MAX_OFFSET = 128  # ESNAC's ar_max_layers: the width of the in/out edge parts of a layer's features
DESCRIPTOR_SIZE = len(LAYER_KINDS) + 6
FEATURE_SIZE = DESCRIPTOR_SIZE + 2 * MAX_OFFSET  # 272
REMOVAL_PROBABILITIES = (0.3, 0.4, 0.5, 0.6, 0.7)  # ar_p1: one drawn per proposal
SKIP_PROBABILITIES = (0.003, 0.005, 0.01, 0.03, 0.05)  # ar_p3: one drawn per proposal
SHRINK_RATIO_CAP_WITH_CONCAT = 0.9  # ESNAC's ShuffleNet path caps r at 0.9

_CHANNEL_PRESERVING = frozenset({"identity", "shuffle", "maxpool", "avgpool", "relu", "bn"})


@dataclass
class LayerGraph:
    """A teacher as ESNAC sees it: layers in call order, each layer's sources (empty: the network input)."""

    layers: list[Layer]
    inputs: list[tuple[int, ...]]
    in_shapes: list[tuple[int, ...]]  # per sample, e.g. (64, 32, 32); a Concat's is its output's
    out_shapes: list[tuple[int, ...]]
    modules: list[nn.Module]  # the teacher's module behind each layer (weights to slice)
    group_widths: list[int] = field(default_factory=list)  # the channel count F of each shrink group
    group_multiples: list[int] = field(default_factory=list)  # widths of a group stay multiples of this
    removable: list[int] = field(default_factory=list)  # layers whose input shape equals their output shape
    skip_pairs: list[tuple[int, int]] = field(default_factory=list)  # (i, j) a skip may connect
    derived: dict[int, int] = field(default_factory=dict)  # conv layer -> the Concat whose remainder it gets

    @property
    def size(self) -> int:
        return len(self.layers)

    @cached_property
    def allowed(self) -> tuple[frozenset, frozenset]:
        """The removable layers and the allowed skips as sets, to check actions against."""
        return frozenset(self.removable), frozenset(self.skip_pairs)

    @property
    def shrink_cap(self) -> float:
        """Largest shrink ratio a random proposal draws (ESNAC caps ShuffleNet's, the teacher with Concats)."""
        return SHRINK_RATIO_CAP_WITH_CONCAT if any(layer.kind == "concat" for layer in self.layers) else 1.0


@dataclass(frozen=True)
class Action:
    """A compression: layers to remove, one shrink ratio per group, skip connections (pairs) to add."""

    remove: tuple[int, ...]
    ratios: tuple[float, ...]
    skips: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict:
        return {"remove": list(self.remove), "ratios": list(self.ratios), "skips": [list(p) for p in self.skips]}

    @classmethod
    def from_dict(cls, data: dict) -> Action:
        return cls(tuple(data["remove"]), tuple(float(r) for r in data["ratios"]),
                   tuple(tuple(p) for p in data["skips"]))


@dataclass(frozen=True)
class Architecture:
    """A compressed network: its layers (removed ones as identities) and each layer's sources."""

    layers: tuple[Layer, ...]
    inputs: tuple[tuple[int, ...], ...]
    removed: tuple[int, ...] = ()
    skips: tuple[tuple[int, int], ...] = ()  # the added skips that took effect

    def model_kwargs(self) -> dict:
        """The ``esnac_net`` keyword arguments that rebuild this network."""
        return {"layers": [layer.to_dict() for layer in self.layers], "inputs": [list(s) for s in self.inputs]}


# ---------------------------------------------------------------------------------------------------------
# Graph extraction


def extract_graph(teacher: nn.Module, input_shape: Sequence[int] = (3, 32, 32)) -> LayerGraph:
    """The layer graph of a traceable teacher (module calls, ``+`` and ``Concat`` only)."""
    traced = fx.GraphModule(teacher, _LayerTracer().trace(teacher))
    layers: list[Layer] = []
    inputs: list[tuple[int, ...]] = []
    modules: list[nn.Module] = []
    index_of: dict[fx.Node, int] = {}

    def sources(node: Any) -> list[int]:
        if isinstance(node, fx.Node) and node.op == "placeholder":
            return []
        if isinstance(node, fx.Node) and node in index_of:
            return [index_of[node]]
        if isinstance(node, fx.Node) and node.op == "call_function" and node.target in (operator.add, torch.add):
            left, right = (sources(arg) for arg in node.args[:2])
            if not left or not right:
                raise ValueError(f"ESNAC graph: {node.name} adds the network input to a layer; not supported")
            return left + right
        raise ValueError(f"ESNAC graph: operation {node!r} is neither a module call, an addition nor a Concat "
                         "input; write it as a module so it becomes a layer")

    output_node = None
    for node in traced.graph.nodes:
        if node.op == "call_module":
            module = traced.get_submodule(node.target)
            if isinstance(module, Concat):
                branches = [sources(arg) for arg in node.args[0]]
                if any(len(branch) != 1 for branch in branches):
                    raise ValueError(f"ESNAC graph: every input of {node.target} must be one layer's output")
                layer_inputs = tuple(branch[0] for branch in branches)
            else:
                layer_inputs = tuple(sorted(sources(node.args[0])))
            index_of[node] = len(layers)
            layers.append(_describe(module, node.target))
            inputs.append(layer_inputs)
            modules.append(module)
        elif node.op == "output":
            output_node = node.args[0]
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            continue  # folded into its consumer by sources()
        elif node.op != "placeholder":
            raise ValueError(f"ESNAC graph: unsupported operation {node.op} {node.target} in {type(teacher).__name__}")
    if not layers or index_of.get(output_node) != len(layers) - 1:
        raise ValueError("ESNAC graph: the network's output must be its last layer call")
    in_shapes, out_shapes = _trace_shapes(modules, inputs, layers, input_shape)
    layers = [_with_channels(layer, in_shape, out_shape) for layer, in_shape, out_shape in
              zip(layers, in_shapes, out_shapes)]
    graph = LayerGraph(layers, inputs, in_shapes, out_shapes, modules)
    _analyse(graph)
    return graph


class _LayerTracer(fx.Tracer):
    """fx keeps torch.nn modules as leaves; Concat (ours) must be one too, so it stays one layer."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, Concat) or super().is_leaf_module(module, qualified_name)


def _describe(module: nn.Module, name: str) -> Layer:
    if isinstance(module, nn.Conv2d):
        if module.dilation != (1, 1) or module.kernel_size[0] != module.kernel_size[1]:
            raise ValueError(f"ESNAC graph: {name}: only square, undilated convolutions are supported")
        return Layer("conv", module.in_channels, module.out_channels, module.kernel_size[0], module.stride[0],
                     _first(module.padding), module.groups, module.bias is not None)
    if isinstance(module, nn.Linear):
        return Layer("linear", module.in_features, module.out_features, bias=module.bias is not None)
    if isinstance(module, nn.BatchNorm2d):
        return Layer("bn", module.num_features, module.num_features)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "maxpool" if isinstance(module, nn.MaxPool2d) else "avgpool"
        return Layer(kind, 0, 0, _first(module.kernel_size), _first(module.stride), _first(module.padding))
    if isinstance(module, nn.ChannelShuffle):
        return Layer("shuffle", 0, 0, groups=module.groups)
    kinds = {nn.ReLU: "relu", nn.Identity: "identity", nn.Flatten: "flatten", Concat: "concat"}
    if type(module) in kinds:
        return Layer(kinds[type(module)], 0, 0)
    raise ValueError(f"ESNAC graph: {name} is a {type(module).__name__}; supported layers: "
                     "Conv2d, Linear, BatchNorm2d, MaxPool2d, AvgPool2d, ReLU, ChannelShuffle, Identity, Flatten, "
                     "Concat")


def _first(value: int | Sequence[int]) -> int:
    return value if isinstance(value, int) else value[0]


def _trace_shapes(modules: list[nn.Module], inputs: list[tuple[int, ...]], layers: list[Layer],
                  input_shape: Sequence[int]) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    was_training = [module.training for module in modules]
    outputs: list[torch.Tensor] = []
    in_shapes, out_shapes = [], []
    with torch.no_grad():
        x = torch.zeros(1, *input_shape)
        for module, sources, layer in zip(modules, inputs, layers):
            module.eval()
            value = gather_inputs(x, outputs, sources, layer.kind)
            out = module(value)
            outputs.append(out)
            in_shapes.append(tuple(out.shape[1:]) if layer.kind == "concat" else tuple(value.shape[1:]))
            out_shapes.append(tuple(out.shape[1:]))
    for module, training in zip(modules, was_training):
        module.train(training)
    return in_shapes, out_shapes


def _with_channels(layer: Layer, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Layer:
    if layer.kind in ("conv", "linear", "bn"):
        return layer
    return replace(layer, in_channels=in_shape[0], out_channels=out_shape[0])


def _analyse(graph: LayerGraph) -> None:
    """Groups, removable layers, skip candidates and the Concat remainders of a freshly extracted graph."""
    layers, n = graph.layers, graph.size
    consumers = [[] for _ in range(n)]
    for i, sources in enumerate(graph.inputs):
        for j in sources:
            consumers[j].append(i)
    for concat, layer in enumerate(layers):
        if layer.kind == "concat":
            graph.derived[_branch_conv(graph, graph.inputs[concat][0], consumers)] = concat
    # One group per channel count that a convolution, linear layer or Concat produces, in order of appearance;
    # the network's output (the classes) and the derived remainders are not groups.
    multiples: dict[int, int] = {}
    for i, layer in enumerate(layers):
        if layer.kind in ("conv", "linear", "concat") and i != n - 1 and i not in graph.derived:
            multiples.setdefault(layer.out_channels, 1)
    for layer in layers:  # group convolutions and shuffles need widths divisible by their groups
        needs = layer.groups if (layer.kind == "shuffle" or (layer.kind == "conv" and not _depthwise(layer))) else 1
        for channels in (layer.in_channels, layer.out_channels):
            if channels in multiples and needs > 1:
                multiples[channels] = math.lcm(multiples[channels], needs)
    graph.group_widths = list(multiples)
    graph.group_multiples = [multiples[width] for width in graph.group_widths]
    graph.removable = [i for i in range(n) if graph.in_shapes[i] == graph.out_shapes[i]
                       and layers[i].kind != "concat" and i != n - 1]
    graph.skip_pairs = [(i, j) for j in range(1, n) for i in range(max(0, j - MAX_OFFSET + 1), j)
                        if graph.out_shapes[i] == graph.in_shapes[j] and layers[j].kind != "concat"
                        and i not in graph.inputs[j]]


def _branch_conv(graph: LayerGraph, start: int, consumers: list[list[int]]) -> int:
    """The convolution that ends a Concat's first branch (through BN/ReLU-like layers)."""
    i = start
    while graph.layers[i].kind in _CHANNEL_PRESERVING and len(graph.inputs[i]) == 1 and len(consumers[i]) == 1:
        i = graph.inputs[i][0]
    if graph.layers[i].kind != "conv" or len(consumers[i]) != 1:
        raise ValueError(f"ESNAC graph: the first input of the Concat fed by layer {start} must end a branch that "
                         "starts at a convolution")
    return i


def _depthwise(layer: Layer) -> bool:
    return layer.kind == "conv" and layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels


# ---------------------------------------------------------------------------------------------------------
# Actions


def random_action(graph: LayerGraph, rng: random.Random) -> Action:
    """ESNAC's random proposal: drop each removable layer with p1, ratios U(0, cap), add each skip with p3."""
    p_remove = rng.choice(REMOVAL_PROBABILITIES)
    remove = tuple(i for i in graph.removable if rng.random() < p_remove)
    cap = graph.shrink_cap
    ratios = tuple(rng.uniform(0.0, cap) for _ in graph.group_widths)
    p_skip = rng.choice(SKIP_PROBABILITIES)
    removed = set(remove)
    skips = tuple(pair for pair in _bernoulli_subset(graph.skip_pairs, p_skip, rng) if pair[1] not in removed)
    return Action(remove, ratios, skips)


def _bernoulli_subset(items: Sequence, p: float, rng: random.Random) -> list:
    """Each item kept with probability p, drawn by geometric jumps between kept items: the same distribution as
    a coin per item, at a cost proportional to the number kept (ResNet-34 has thousands of skip candidates)."""
    kept, position, log_miss = [], -1, math.log1p(-p)
    while True:
        position += 1 + int(math.log(1.0 - rng.random()) / log_miss)
        if position >= len(items):
            return kept
        kept.append(items[position])


def shrunk_width(width: int, ratio: float, multiple: int) -> int:
    """``max(m, m*floor((1-r)*F/m))``: ESNAC's ``max(1, int((1-r)F))`` kept a multiple of m."""
    return max(multiple, multiple * int((1.0 - ratio) * width / multiple))


def compress(graph: LayerGraph, action: Action) -> Architecture:
    """The architecture an action gives (no weights): widths propagated, removals and effective skips applied."""
    if len(action.ratios) != len(graph.group_widths):
        raise ValueError(f"action has {len(action.ratios)} ratios, the teacher has {len(graph.group_widths)} groups")
    removed = set(action.remove)
    removable, allowed_skips = graph.allowed
    if not removed <= removable:
        raise ValueError(f"action removes layers that cannot be removed: {sorted(removed - removable)}")
    if not set(action.skips) <= allowed_skips:
        raise ValueError(f"action adds skips the teacher does not allow: {sorted(set(action.skips) - allowed_skips)}")
    group_width = {width: shrunk_width(width, ratio, multiple) for width, ratio, multiple in
                   zip(graph.group_widths, action.ratios, graph.group_multiples)}
    wanted_skips = {j: [i for i, jj in action.skips if jj == j] for j in {j for _, j in action.skips} - removed}
    widths = _widths(graph, group_width)
    layers, inputs, skips = [], [], []
    for i, layer in enumerate(graph.layers):
        sources = list(graph.inputs[i])
        in_width = sum(widths[j] for j in sources) if layer.kind == "concat" else (
            widths[sources[0]] if sources else layer.in_channels)
        for j_source in wanted_skips.get(i, ()):
            if widths[j_source] == in_width:  # both ends in one group: the skip is a valid sum
                sources.append(j_source)
                skips.append((j_source, i))
        if i in removed:
            layers.append(Layer("identity", in_width, in_width))
        else:
            layers.append(_resized(layer, in_width, widths[i]))
        inputs.append(tuple(sources) if layer.kind == "concat" else tuple(sorted(sources)))
    return Architecture(tuple(layers), tuple(inputs), tuple(sorted(removed)), tuple(sorted(skips)))


def _widths(graph: LayerGraph, group_width: dict[int, int]) -> list[int]:
    """Every layer's output width. A Concat's first-branch convolution gets the Concat's group width minus the
    other inputs (which never depend on that branch). Where that remainder falls outside [the group's multiple,
    the teacher's width of that convolution] (it can neither be empty nor inherit filters the teacher lacks),
    the Concat's group moves by the difference. A move only affects later Concats, in the same direction, so
    the loop ends; ESNAC's ShuffleNet path re-derives these widths by hand."""
    for _ in range(len(graph.derived) + 1):
        widths = _propagate(graph, group_width, {})
        remainders, move = {}, None
        for conv, concat in sorted(graph.derived.items()):
            target = graph.layers[concat].out_channels
            multiple = graph.group_multiples[graph.group_widths.index(target)]
            remainder = group_width[target] - sum(widths[j] for j in graph.inputs[concat][1:])
            fitted = min(max(remainder, multiple), graph.layers[conv].out_channels)
            if fitted != remainder:
                move = (target, fitted - remainder)
                break
            remainders[conv] = remainder
        if move is None:
            return _propagate(graph, group_width, remainders)
        group_width[move[0]] += move[1]
    raise ValueError("ESNAC: the widths around the Concat layers did not settle")


def _propagate(graph: LayerGraph, group_width: dict[int, int], remainders: dict[int, int]) -> list[int]:
    widths: list[int] = []
    last = graph.size - 1
    for i, layer in enumerate(graph.layers):
        sources = graph.inputs[i]
        if i in graph.derived:
            widths.append(remainders.get(i, layer.out_channels))
        elif layer.kind in ("conv", "linear"):
            widths.append(layer.out_channels if i == last else group_width[layer.out_channels])
        elif layer.kind == "concat":  # its group's width: the first branch's remainder makes the sum match
            widths.append(group_width[layer.out_channels])
        elif layer.kind == "flatten":
            widths.append(widths[sources[0]] * math.prod(graph.in_shapes[i][1:]) if sources else layer.out_channels)
        else:
            widths.append(widths[sources[0]] if sources else layer.out_channels)
    return widths


def _resized(layer: Layer, in_width: int, out_width: int) -> Layer:
    if _depthwise(layer):  # stays depthwise: as many groups as channels
        if in_width != out_width:
            raise ValueError("a depthwise convolution's input and output widths diverged")
        return replace(layer, in_channels=in_width, out_channels=out_width, groups=in_width)
    return replace(layer, in_channels=in_width, out_channels=out_width)


# ---------------------------------------------------------------------------------------------------------
# Encoding and parameter count


def encode(architecture: Architecture) -> torch.Tensor:
    """The ``(n, 272)`` sequence the kernel's bi-LSTM reads (seeds.md §3.3)."""
    layers, n = architecture.layers, len(architecture.layers)
    features = torch.zeros(n, FEATURE_SIZE)
    rows = torch.arange(n)
    features[rows, torch.tensor([LAYER_KINDS.index(layer.kind) for layer in layers])] = 1.0
    base = len(LAYER_KINDS)
    features[:, base:DESCRIPTOR_SIZE] = torch.tensor(
        [[layer.kernel_size, layer.stride, layer.padding, layer.groups,
          *((layer.in_channels, layer.out_channels) if layer.kind in ("conv", "linear") else (0, 0))]
         for layer in layers], dtype=torch.float32)
    edges = torch.tensor([(i, j) for i, sources in enumerate(architecture.inputs) for j in sources],
                         dtype=torch.long).reshape(-1, 2)
    consumer, source = edges[:, 0], edges[:, 1]
    features[consumer, DESCRIPTOR_SIZE + consumer - source] = 1.0
    features[source, DESCRIPTOR_SIZE + MAX_OFFSET + consumer - source] = 1.0
    return features


def parameter_count(architecture: Architecture) -> int:
    """Parameters the architecture has, from its layer settings (BatchNorm affine included, running stats not)."""
    total = 0
    for layer in architecture.layers:
        if layer.kind == "conv":
            total += layer.out_channels * (layer.in_channels // layer.groups) * layer.kernel_size ** 2
            total += layer.out_channels if layer.bias else 0
        elif layer.kind == "linear":
            total += layer.out_channels * layer.in_channels + (layer.out_channels if layer.bias else 0)
        elif layer.kind == "bn":
            total += 2 * layer.out_channels
    return total


def build_student(graph: LayerGraph, architecture: Architecture) -> ArchNet:
    """The compressed network with the teacher's weights sliced into it (first filters, first input channels)."""
    net = ArchNet(architecture.layers, architecture.inputs)
    with torch.no_grad():
        for i, (layer, module) in enumerate(zip(architecture.layers, net.layers)):
            teacher = graph.modules[i]
            if layer.kind == "conv":
                module.weight.copy_(teacher.weight[:layer.out_channels, :layer.in_channels // layer.groups])
                if layer.bias:
                    module.bias.copy_(teacher.bias[:layer.out_channels])
            elif layer.kind == "linear":
                module.weight.copy_(teacher.weight[:layer.out_channels, :layer.in_channels])
                if layer.bias:
                    module.bias.copy_(teacher.bias[:layer.out_channels])
            elif layer.kind == "bn":  # affine parameters sliced; running statistics start fresh
                module.weight.copy_(teacher.weight[:layer.out_channels])
                module.bias.copy_(teacher.bias[:layer.out_channels])
    return net
