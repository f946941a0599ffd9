"""Conv encoders with named stages, shared by perception nets, SB3 policies and fine-tuning.

Every architecture is a sequence of stages named ``stage1``, ``stage2``, ... from the input, so
"freeze the lower k stages" means the same thing for every network of the project, and weights
move between networks by parameter name (``stages.stage1.0.weight``).

An `Encoder` takes normalised images (N, 3, H, W) float32 and returns features (N, feature_dim).
Its linear layers are sized with one dummy forward pass (as SB3's NatureCNN does), so the same
architecture builds at any input size that is large enough. An SB3 ``BaseFeaturesExtractor`` can
wrap one directly: ``features_dim = encoder.feature_dim``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

InputShape = tuple[int, int, int]


class Encoder(nn.Module):
    """Stages applied in order, then an optional pooling, then flattening.

    ``stages`` is an ``nn.ModuleDict`` whose keys are ``stage1``.. ``stageK`` from the input;
    ``pool`` (parameter-free) reduces the last stage's map before flattening.
    """

    def __init__(
        self,
        architecture: str,
        input_shape: InputShape,
        stages: list[nn.Module],
        pool: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not stages:
            raise ValueError("an encoder needs at least one stage")
        self.architecture = architecture
        self.input_shape = tuple(int(v) for v in input_shape)
        self.stages = nn.ModuleDict(
            OrderedDict((f"stage{i}", stage) for i, stage in enumerate(stages, start=1))
        )
        self.pool = pool if pool is not None else nn.Identity()
        self.feature_dim = self._dummy_feature_dim()

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Stage names from the input: ("stage1", "stage2", ...)."""
        return tuple(self.stages.keys())

    def _dummy_feature_dim(self) -> int:
        shape = _conv_out(self.input_shape, [*self.stages.values(), self.pool], self.architecture)
        return int(shape.numel())

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each stage's output for normalised input (N, 3, H, W), keyed by stage name."""
        outputs: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            outputs[name] = x
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (N, 3, H, W) float32 -> features (N, feature_dim)."""
        for stage in self.stages.values():
            x = stage(x)
        return torch.flatten(self.pool(x), start_dim=1)


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, padding: int = 0) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _conv_out(shape: InputShape, stages: list[nn.Module], architecture: str) -> torch.Size:
    """Output shape (C, H, W) of `stages` applied to a zero image of `shape`."""
    x = torch.zeros(1, *shape)
    with torch.no_grad():
        for stage in stages:
            was_training = stage.training
            stage.eval()
            try:
                x = stage(x)
            except RuntimeError as exc:
                raise ValueError(
                    f"input size {shape} is too small for encoder {architecture!r}: {exc}"
                ) from None
            finally:
                stage.train(was_training)
    return x.shape[1:]


def build_pilotnet(input_shape: InputShape) -> Encoder:
    """DonkeyCar's default (KerasLinear) / NVIDIA PilotNet trunk: five convs, each a stage.

    24@5x5/2, 32@5x5/2, 64@5x5/2, 64@3x3/1, 64@3x3/1 ('valid' padding), with BatchNorm,
    flattened. 64x128 input -> 64x1x9 = 576 features; 120x160 -> 64x8x13 = 6656.
    """
    c = input_shape[0]
    stages = [
        _conv_bn_relu(c, 24, 5, 2),
        _conv_bn_relu(24, 32, 5, 2),
        _conv_bn_relu(32, 64, 5, 2),
        _conv_bn_relu(64, 64, 3, 1),
        _conv_bn_relu(64, 64, 3, 1),
    ]
    return Encoder("pilotnet", input_shape, stages)


def build_nature_cnn(input_shape: InputShape, features: int = 512) -> Encoder:
    """SB3's NatureCNN (Mnih et al. 2015): 32@8x8/4, 64@4x4/2, 64@3x3/1, then linear+ReLU.

    No BatchNorm, as in SB3. The linear projection is the last stage (``stage4``), so freezing
    "all" stages leaves only the head trainable.
    """
    c = input_shape[0]
    convs: list[nn.Module] = [
        nn.Sequential(nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(inplace=True)),
        nn.Sequential(nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(inplace=True)),
        nn.Sequential(nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(inplace=True)),
    ]
    n_flatten = int(torch.Size(_conv_out(input_shape, convs, "nature_cnn")).numel())
    projection = nn.Sequential(nn.Flatten(), nn.Linear(n_flatten, features), nn.ReLU(inplace=True))
    return Encoder("nature_cnn", input_shape, [*convs, projection])


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BatchNorm and a (projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def build_resnet_small(input_shape: InputShape) -> Encoder:
    """A small ResNet: a 5x5/2 stem and three strided basic blocks (32, 64, 128 channels).

    The last map is average-pooled to a 2x4 grid (keeping coarse position, which steering
    needs), so features are 128x2x4 = 1024 at any input size of at least 32x32.
    """
    c = input_shape[0]
    stages = [
        _conv_bn_relu(c, 24, 5, 2, padding=2),
        BasicBlock(24, 32, 2),
        BasicBlock(32, 64, 2),
        BasicBlock(64, 128, 2),
    ]
    return Encoder("resnet_small", input_shape, stages, pool=nn.AdaptiveAvgPool2d((2, 4)))


ENCODERS: dict[str, Callable[[InputShape], Encoder]] = {
    "pilotnet": build_pilotnet,
    "nature_cnn": build_nature_cnn,
    "resnet_small": build_resnet_small,
}
"""Architecture name -> builder taking the input shape (3, H, W)."""


def check_architecture(name: str) -> str:
    """`name` when it is a registered encoder, else ValueError listing the known ones."""
    if name not in ENCODERS:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return name


def build_encoder(name: str, input_shape: InputShape = (3, 64, 128)) -> Encoder:
    """Build the registered encoder `name` for inputs of `input_shape` (3, H, W), or (3k, H, W)
    for k frames stacked as channels (`sim2real.agents.temporal`)."""
    check_architecture(name)
    if len(input_shape) != 3 or input_shape[0] % 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (3, H, W), got {tuple(input_shape)}")
    return ENCODERS[name](tuple(int(v) for v in input_shape))


def pool_stage(output: torch.Tensor) -> torch.Tensor:
    """A stage's output (N, C, h, w) -> (N, C) by the mean over h and w; (N, C) is kept."""
    if output.dim() == 4:
        return output.mean(dim=(2, 3))
    if output.dim() == 2:
        return output
    raise ValueError(f"cannot pool a stage output of shape {tuple(output.shape)}")
